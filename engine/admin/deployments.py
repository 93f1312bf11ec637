"""``/deployments``: register endpoints by discovery, list, inspect and delete them.

``POST /deployments`` takes Restate's ``RegisterDeploymentRequest``::

    {"uri": "http://host:9080", "additional_headers": {...}, "use_http_11": false,
     "force": false, "breaking": false, "dry_run": false, "metadata": {...}}

and answers 201 with ``{"id", "services", ...}`` for a new deployment. Re-registering a
URI follows :mod:`engine.admin.versions` (200 unchanged / overwritten, or 409 / 201 on
``/v2``). ``dry_run`` runs discovery and every check, and answers what would be
registered without writing anything. The Lambda variant (``arn``) is refused with 400:
logstrate invokes endpoints over HTTP only.

``DELETE /deployments/{id}`` requires ``?force=true`` and answers 202, like restate-server,
which supports only forced deletion: in-flight invocations of the deleted deployment
cannot finish. Without ``force=true`` the answer is 501.
"""

from __future__ import annotations

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
from engine.admin.state import DISCOVERY, METADATA
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
    return web.json_response(detailed_deployment_json(request.app[METADATA].view.get_deployment(deployment_id)))


async def delete_deployment(request: web.Request) -> web.Response:
    """Forced deletion only (202); 501 without ``force=true``."""
    deployment_id = _deployment_id(request)
    force = request.query.get("force", "false").lower()
    if force not in ("true", "false"):
        raise AdminError(400, f"the query parameter 'force' must be true or false, got {force!r}")
    if force != "true":
        raise AdminError(
            501,
            "only forced deletion is supported: DELETE /deployments/{id}?force=true removes the deployment "
            "at once, and invocations still running on it can no longer finish",
        )
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
        register_json(deployment), status=status, headers={"Location": f"deployments/{deployment.id}"}
    )


def _deployment_id(request: web.Request) -> DeploymentId:
    text = request.match_info["deployment"]
    try:
        return DeploymentId.parse(text)
    except IdParseError as exc:
        raise AdminError(400, f"{exc}; deployment ids look like dp_1 followed by 22 letters and digits") from None
