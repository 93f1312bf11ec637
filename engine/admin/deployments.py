"""``/deployments``: register endpoints by discovery, list, inspect and delete them.

``POST /deployments`` takes Restate's ``RegisterDeploymentRequest``::

    {"uri": "http://host:9080", "additional_headers": {...}, "use_http_11": false,
     "force": false, "breaking": false, "dry_run": false, "metadata": {...}}

and answers 201 with ``{"id", "services", ...}`` for a new deployment. Re-registering a
URI follows :mod:`engine.admin.versions` (200 unchanged / overwritten, or 409 / 201 on
``/v2``). ``dry_run`` runs discovery and every check, and answers what would be
registered without writing anything. The Lambda variant (``arn``) is refused with 400:
logstrate invokes endpoints over HTTP only.

``DELETE /deployments/{id}`` answers 202 once the deployment is deleted. Invocations
pinned to a deployment replay on it until they complete, so deleting it while some are
in flight (started, not completed) would leave them unable to finish: without
``?force=true`` that is refused with 409, naming them (kill them, wait for them, or
force). With nothing in flight the deployment is deleted without ``force`` (a logstrate
extension: restate-server supports forced deletion only and answers 501 otherwise).
The invocations of WAL partitions another engine process leads are asked of it (a
fresh listing, :func:`engine.admin.invocation_list.ask_leaders`); when a partition's
leader cannot be asked, only ``force=true`` deletes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web

from engine.admin.errors import (
    AdminError,
    check_headers,
    optional_bool,
    optional_string,
    optional_string_map,
    read_json_object,
)
from engine.admin.render import deployment_json, detailed_deployment_json, register_json
from engine.admin.partitions import APPLY_WAIT_S
from engine.admin.invocation_list import ask_leaders
from engine.admin.state import DEFAULT_RETRY, DISCOVERY, FORWARDER, METADATA, PARTITIONS
from engine.admin.versions import api_version
from engine.ids import DeploymentId, IdParseError
from engine.logs import get_logger
from engine.metadata.changes import RegistrationOutcome, RegistrationPlan, plan_registration, unchanged_registration
from engine.metadata.discovery import normalize_endpoint_uri
from engine.metadata.store import MetadataWrite, PutDeployment
from engine.metadata.view import MetadataView

__all__ = ["add_routes"]

log = get_logger(__name__)


def add_routes(router: web.UrlDispatcher, prefix: str = "") -> None:
    """Register the deployment routes under ``prefix``."""
    router.add_get(f"{prefix}/deployments", list_deployments)
    router.add_post(f"{prefix}/deployments", create_deployment)
    router.add_get(f"{prefix}/deployments/{{deployment}}", get_deployment)
    router.add_delete(f"{prefix}/deployments/{{deployment}}", delete_deployment)


async def list_deployments(request: web.Request) -> web.Response:
    """``ListDeploymentsResponse``, newest deployment first."""
    view = request.app[METADATA].view
    return web.json_response({"deployments": [deployment_json(d) for d in view.list_deployments()]})


async def get_deployment(request: web.Request) -> web.Response:
    """``DetailedDeploymentResponse``; 404 for an unknown id, 400 for a malformed one."""
    deployment_id = _deployment_id(request)
    return web.json_response(detailed_deployment_json(request.app[METADATA].view.get_deployment(deployment_id), request.app[DEFAULT_RETRY]))


async def delete_deployment(request: web.Request) -> web.Response:
    """Delete a deployment (202); 409 while invocations pinned to it are in flight, unless
    ``force=true`` (see the module docstring)."""
    deployment_id = _deployment_id(request)
    force = request.query.get("force", "false").lower()
    if force not in ("true", "false"):
        raise AdminError(400, f"the query parameter 'force' must be true or false, got {force!r}")
    if force != "true":
        request.app[METADATA].view.get_deployment(deployment_id)  # 404 for an unknown id first
        await _refuse_if_in_flight(request, deployment_id)
    deleted = await request.app[METADATA].delete_deployment(deployment_id)
    log.info("deployment deleted", deployment=str(deployment_id), uri=deleted.uri)
    return web.Response(status=202)


async def create_deployment(request: web.Request) -> web.Response:
    """Discover the endpoint and register what it serves (see the module docstring)."""
    body = await read_json_object(request)
    version = api_version(request)
    raw_uri = optional_string(body, "uri")
    if raw_uri is None:
        if body.get("arn") is not None:
            raise AdminError(
                400,
                "Lambda deployments (\"arn\") are not supported by logstrate: it invokes endpoints over HTTP. "
                "Serve the handlers over HTTP and register them with {\"uri\": \"http://host:port\"}",
            )
        raise AdminError(422, "the request body must name the endpoint to register: {\"uri\": \"http://host:port\"}")
    if body.get("auth") is not None:
        raise AdminError(400, "per-deployment \"auth\" is not supported by logstrate; pass credentials in additional_headers")
    uri = normalize_endpoint_uri(raw_uri)
    headers = optional_string_map(body, "additional_headers")
    check_headers(headers, "additional_headers")
    metadata = optional_string_map(body, "metadata")
    use_http_11 = bool(optional_bool(body, "use_http_11", False))
    force = bool(optional_bool(body, "force", version.legacy_registration))
    breaking = bool(optional_bool(body, "breaking", False))
    dry_run = bool(optional_bool(body, "dry_run", False))
    store = request.app[METADATA]

    if not force:
        # Restate answers an already registered URI without asking the endpoint again.
        unchanged = unchanged_registration(store.view, uri)
        if unchanged is not None:
            return _registered(request, unchanged)

    discovered = await request.app[DISCOVERY].discover(uri, additional_headers=headers, use_http_11=use_http_11)

    def plan(view: MetadataView) -> tuple[MetadataWrite | None, RegistrationPlan]:
        result = plan_registration(
            view,
            discovered,
            new_id=DeploymentId.generate(),
            now=datetime.now(UTC),
            additional_headers=headers,
            metadata=metadata,
            use_http_11=use_http_11,
            force=force,
            breaking=breaking,
        )
        write = PutDeployment(result.deployment) if result.needs_write and not dry_run else None
        return write, result

    result = await store.modify(plan)
    log.info(
        "deployment dry run" if dry_run else "deployment registered",
        deployment=str(result.deployment.id),
        uri=uri,
        outcome=result.outcome.value,
        services={s.name: s.revision for s in result.deployment.services},
    )
    return _registered(request, result)


def _registered(request: web.Request, result: RegistrationPlan) -> web.Response:
    legacy = api_version(request).legacy_registration
    deployment = result.deployment
    if result.outcome is RegistrationOutcome.CREATED:
        status = 201
    elif result.outcome is RegistrationOutcome.UNCHANGED:
        if legacy:
            raise AdminError(
                409,
                f"deployment {deployment.id} already exists for {deployment.uri}; register with \"force\": true "
                "to discover it again and overwrite it",
            )
        status = 200
    else:
        status = 201 if legacy else 200
    return web.json_response(
        register_json(deployment, request.app[DEFAULT_RETRY]), status=status, headers={"Location": f"deployments/{deployment.id}"}
    )


_LISTED_IN_FLIGHT = 5


async def _refuse_if_in_flight(request: web.Request, deployment_id: DeploymentId) -> None:
    """409 when invocations pinned to the deployment are started and not completed, or
    when that cannot be checked here."""
    access = request.app.get(PARTITIONS)
    if access is None:
        raise AdminError(
            409,
            f"cannot check whether invocations still run on deployment {deployment_id} (this admin API runs "
            "without WAL partitions); delete it with ?force=true if none do",
        )
    # Just after start-up a partition may not be led yet, here or elsewhere: give that a moment.
    forwarder = request.app.get(FORWARDER)

    def unled() -> list[int]:
        return [
            p for p in range(access.partition_count)
            if not access.is_local(p) and (forwarder is None or forwarder.leader(p) is None)
        ]

    deadline = asyncio.get_running_loop().time() + APPLY_WAIT_S
    while unled() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    not_local = [p for p in range(access.partition_count) if not access.is_local(p)]
    # The other processes' partitions: asked of their leaders, as a listing.
    query = {
        "deployment": str(deployment_id), "status": "invoked,suspended,paused", "limit": str(_LISTED_IN_FLIGHT),
        "fresh": "true",
    }
    remote = await ask_leaders(request, not_local, query)
    unanswered = set(not_local)
    in_flight: list[str] = []
    more = False
    for answer, partitions in remote:
        unanswered.difference_update(partitions)
        unanswered.update(int(p) for p in answer["not_local_partitions"])
        in_flight.extend(str(row["id"]) for row in answer["invocations"])
        more = more or bool(answer["truncated"])
    if unanswered:
        raise AdminError(
            409,
            f"cannot check whether invocations still run on deployment {deployment_id}: WAL partitions "
            f"{sorted(unanswered)} are led by other engine processes that did not answer; delete it with "
            "?force=true if none do",
        )

    for partition in access.local_partitions():
        # Records accepted a moment ago (a first attempt's pin) must be seen.
        await access.catch_up(partition)

    def scan() -> list[str]:
        found: list[str] = []
        for partition in access.local_partitions():
            rows = access.read_any(
                partition,
                lambda t: [
                    str(i) for i, s in t.status.scan() if s.deployment_id == deployment_id and s.in_flight
                ],
            )
            found.extend(rows)
        return found

    in_flight.extend(await asyncio.to_thread(scan))
    if in_flight:
        shown = ", ".join(in_flight[:_LISTED_IN_FLIGHT]) + (", ..." if len(in_flight) > _LISTED_IN_FLIGHT else "")
        count = f"at least {len(in_flight)}" if more else str(len(in_flight))
        raise AdminError(
            409,
            f"deployment {deployment_id} still has {count} in-flight invocation(s) pinned to it "
            f"({shown}); they replay on this deployment and could not finish without it. Wait for them to "
            "complete or kill them, or delete anyway with DELETE /deployments/{id}?force=true",
        )


def _deployment_id(request: web.Request) -> DeploymentId:
    text = request.match_info["deployment"]
    try:
        return DeploymentId.parse(text)
    except IdParseError as exc:
        raise AdminError(400, f"{exc}; deployment ids look like dp_1 followed by 22 letters and digits") from None
