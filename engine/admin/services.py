"""``/services``: the latest revision of each service and its handlers; service options.

``PATCH /services/{name}`` takes Restate's ``ModifyServiceRequest`` (``public``,
``idempotency_retention``, ``workflow_completion_retention``, ``journal_retention``,
``inactivity_timeout``, ``abort_timeout``; durations like ``"1h 30m"`` or ``"PT1H"``;
``null`` or absent leaves a setting as it is). The change applies to the latest
revision; registering a new revision starts again from what the endpoint declares.
"""

from __future__ import annotations

from aiohttp import web

from engine.admin.errors import AdminError, optional_bool, optional_duration, read_json_object
from engine.admin.render import handler_json, service_json
from engine.admin.state import DEFAULT_RETRY, METADATA
from engine.logs import get_logger
from engine.metadata.changes import ServicePatch, patch_service
from engine.metadata.model import EffectiveRetryPolicy, ServiceMetadata
from engine.metadata.store import MetadataWrite, PutDeployment
from engine.metadata.view import MetadataView

__all__ = ["add_routes"]

log = get_logger(__name__)

_PATCHABLE = (
    "public",
    "idempotency_retention",
    "workflow_completion_retention",
    "journal_retention",
    "inactivity_timeout",
    "abort_timeout",
)


def add_routes(router: web.UrlDispatcher, prefix: str = "") -> None:
    """Register the service and handler routes under ``prefix``."""
    router.add_get(f"{prefix}/services", list_services)
    router.add_get(f"{prefix}/services/{{service}}", get_service)
    router.add_patch(f"{prefix}/services/{{service}}", modify_service)
    router.add_get(f"{prefix}/services/{{service}}/handlers", list_handlers)
    router.add_get(f"{prefix}/services/{{service}}/handlers/{{handler}}", get_handler)


async def list_services(request: web.Request) -> web.Response:
    """``ListServicesResponse``: the latest revision of every service, by name."""
    view = request.app[METADATA].view
    return web.json_response({"services": [_service(view, s, request.app[DEFAULT_RETRY]) for s in view.list_services()]})


async def get_service(request: web.Request) -> web.Response:
    """``ServiceMetadata`` of the latest revision; 404 for an unknown name."""
    view = request.app[METADATA].view
    return web.json_response(_service(view, view.get_service(request.match_info["service"]), request.app[DEFAULT_RETRY]))


async def list_handlers(request: web.Request) -> web.Response:
    """``ListServiceHandlersResponse`` of the latest revision."""
    view = request.app[METADATA].view
    service = view.get_service(request.match_info["service"])
    protocol = view.deployment_of(service).protocol_type
    return web.json_response({"handlers": [handler_json(service, h, protocol) for h in service.handlers]})


async def get_handler(request: web.Request) -> web.Response:
    """``HandlerMetadata``; 404 for an unknown service or handler."""
    view = request.app[METADATA].view
    name, handler_name = request.match_info["service"], request.match_info["handler"]
    service = view.get_service(name)
    handler = view.get_handler(name, handler_name)
    return web.json_response(handler_json(service, handler, view.deployment_of(service).protocol_type))


async def modify_service(request: web.Request) -> web.Response:
    """Change service-level options of the latest revision; answers the updated ``ServiceMetadata``."""
    name = request.match_info["service"]
    body = await read_json_object(request)
    unknown = sorted(set(body) - set(_PATCHABLE))
    if unknown:
        raise AdminError(
            422, f"unknown field(s) {', '.join(unknown)}; a service can be changed in: {', '.join(_PATCHABLE)}"
        )
    patch = ServicePatch(
        public=optional_bool(body, "public"),
        idempotency_retention=optional_duration(body, "idempotency_retention"),
        workflow_completion_retention=optional_duration(body, "workflow_completion_retention"),
        journal_retention=optional_duration(body, "journal_retention"),
        inactivity_timeout=optional_duration(body, "inactivity_timeout"),
        abort_timeout=optional_duration(body, "abort_timeout"),
    )

    def plan(view: MetadataView) -> tuple[MetadataWrite, ServiceMetadata]:
        deployment, updated = patch_service(view, name, patch)
        return PutDeployment(deployment), updated

    store = request.app[METADATA]
    updated = await store.modify(plan)
    log.info("service modified", service=name, revision=updated.revision, changes=sorted(k for k in body if body[k] is not None))
    return web.json_response(_service(store.view, updated, request.app[DEFAULT_RETRY]))


def _service(view: MetadataView, service: ServiceMetadata, default_retry: EffectiveRetryPolicy | None) -> dict[str, object]:
    return service_json(service, view.deployment_of(service).protocol_type, default_retry)
