"""Adapts the metadata registry to what ingress routing asks: kinds and handlers by name."""

from __future__ import annotations

from engine.ingress.routing import HandlerInfo, HandlerNotFound, ServiceNotFound
from engine.metadata import errors as metadata_errors
from engine.metadata.model import HandlerType
from engine.metadata.store import MetadataStore
from engine.metadata.view import MetadataView
from engine.metadata.targets import call_target, handler_kind, service_kind
from engine.wal.records import ServiceKind

class MetadataResolver:
    """Ingress lookups answered from the process's materialized metadata."""

    def __init__(self, store: MetadataStore) -> None:
        self._store = store
        # HandlerInfo by (service, handler) for one metadata view: a view never changes
        # (a new registration publishes a new one), and building the info takes ~10 us
        # of every call (settings, three retention durations).
        self._view: object = None
        self._infos: dict[tuple[str, str], HandlerInfo] = {}

    def service_kind(self, service: str) -> ServiceKind | None:
        found = self._store.view.find_service(service)
        return None if found is None else service_kind(found.ty)

    def service_names(self) -> list[str]:
        return [s.name for s in self._store.view.list_services()]

    def workflow_handler(self, name: str) -> str | None:
        found = self._store.view.find_service(name)
        if found is None:
            return None
        return next((h.name for h in found.definition.handlers if h.ty is HandlerType.WORKFLOW), None)

    def resolve(self, service: str, handler: str) -> HandlerInfo:
        view = self._store.view
        if view is not self._view:
            self._view, self._infos = view, {}
        info = self._infos.get((service, handler))
        if info is None:
            info = self._infos[(service, handler)] = self._build(view, service, handler)
        return info

    @staticmethod
    def _build(view: MetadataView, service: str, handler: str) -> HandlerInfo:
        try:
            resolved = view.resolve(service, handler)
        except metadata_errors.HandlerNotFound:
            raise HandlerNotFound(handler) from None
        except metadata_errors.ServiceNotFound:
            raise ServiceNotFound(service) from None
        meta = resolved.handler
        return HandlerInfo(
            service=service,
            service_kind=service_kind(resolved.service.ty),
            handler=handler,
            handler_kind=handler_kind(resolved),
            public=resolved.settings.public,
            input_content_type=meta.input.content_type,
            output_content_type=meta.output.content_type or "application/json",
            target_info=call_target(resolved),
        )
