"""What kind of target a registered handler is, in the WAL's terms.

Ingress (for requests) and partition leaders (for calls made by handlers) both record
the service and handler kind on the invocation target, and the target's retention
settings on the ``Invoke`` (through :class:`~engine.wal.records.CallTarget`), so the
state machine never has to consult the metadata, which may change between append and
apply. The retention is resolved when an invocation is created, as restate-server
does: changing a service's retention (``PATCH /services/{name}``, a new revision)
applies to invocations created afterwards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from engine.egress import EGRESS_HANDLER, is_egress
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
    """The kinds and retention settings recorded on a call command's ``JournalAppend``
    (and used by the ingress for the ``Invoke`` of a request).

    The journal retention is passed only when the service or handler sets one: by
    default a completed invocation's journal is dropped at once (the engine default
    deliberately differs from restate-server's one day).
    """
    settings = resolved.settings
    workflow = settings.workflow_completion_retention
    journal = resolved.handler.options.journal_retention
    if journal is None:
        journal = resolved.service.options.journal_retention
    return CallTarget(
        service_kind(resolved.service.ty),
        handler_kind(resolved),
        idempotency_retention_ms=_ms(settings.idempotency_retention),
        workflow_retention_ms=None if workflow is None else _ms(workflow),
        journal_retention_ms=None if journal is None else _ms(journal),
    )


def _ms(duration: timedelta) -> int:
    return max(0, int(duration / timedelta(milliseconds=1)))


def resolve_call_target(view: MetadataView, service: str, handler: str) -> CallTarget:
    """The kinds of ``service/handler`` in the latest registration.

    The built-in egress service (:mod:`engine.egress`) is known without a deployment: a
    plain service whose only handler is ``publish``.

    Raises:
        LookupError: nothing registered under that name (the message says what).
    """
    if is_egress(service):
        if handler != EGRESS_HANDLER:
            raise LookupError(f"the built-in service {service} has no handler {handler!r} (only {EGRESS_HANDLER!r})")
        return CallTarget(ServiceKind.SERVICE, None)
    try:
        return call_target(view.resolve(service, handler))
    except NotFoundError as exc:
        raise LookupError(str(exc)) from exc
