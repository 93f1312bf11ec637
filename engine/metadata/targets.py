"""What kind of target a registered handler is, in the WAL's terms.

Ingress (for requests) and partition leaders (for calls made by handlers) both record
the service and handler kind on the invocation target, so the state machine never has
to consult the metadata, which may change between append and apply.
"""

from __future__ import annotations

from typing import Final

from engine.metadata.errors import NotFoundError
from engine.metadata.model import HandlerType, ResolvedHandler, ServiceType
from engine.metadata.view import MetadataView
from engine.wal.records import CallTarget, HandlerKind, ServiceKind

__all__ = ["call_target", "handler_kind", "resolve_call_target", "service_kind"]

_SERVICE_KINDS: Final = {
    ServiceType.SERVICE: ServiceKind.SERVICE,
    ServiceType.VIRTUAL_OBJECT: ServiceKind.VIRTUAL_OBJECT,
    ServiceType.WORKFLOW: ServiceKind.WORKFLOW,
}
_HANDLER_KINDS: Final = {
    HandlerType.EXCLUSIVE: HandlerKind.EXCLUSIVE,
    HandlerType.SHARED: HandlerKind.SHARED,
    HandlerType.WORKFLOW: HandlerKind.WORKFLOW,
}


def service_kind(ty: ServiceType) -> ServiceKind:
    """The WAL's name for a manifest service type."""
    return _SERVICE_KINDS[ty]


def handler_kind(resolved: ResolvedHandler) -> HandlerKind | None:
    """How the handler holds its key; ``None`` for plain services.

    A handler without a declared type is exclusive on a virtual object and shared on a
    workflow (the manifest's defaults, as restate-server applies them).
    """
    kind = service_kind(resolved.service.ty)
    if kind is ServiceKind.SERVICE:
        return None
    default = HandlerType.EXCLUSIVE if kind is ServiceKind.VIRTUAL_OBJECT else HandlerType.SHARED
    return _HANDLER_KINDS[resolved.handler.ty or default]


def call_target(resolved: ResolvedHandler) -> CallTarget:
    """The kinds recorded on a call command's ``JournalAppend``."""
    return CallTarget(service_kind(resolved.service.ty), handler_kind(resolved))


def resolve_call_target(view: MetadataView, service: str, handler: str) -> CallTarget:
    """The kinds of ``service/handler`` in the latest registration.

    Raises:
        LookupError: nothing registered under that name (the message says what).
    """
    try:
        return call_target(view.resolve(service, handler))
    except NotFoundError as exc:
        raise LookupError(str(exc)) from exc
