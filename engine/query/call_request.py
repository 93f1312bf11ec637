"""The ``request`` of a call or one-way call command in ``entry_json``, as Restate shows it.

Restate's journal keeps a call's whole request: the callee's id and target with its
kinds; the restate CLI shows ``Command: Call QCounter/bob/add inv_...`` from it. The
protocol command carries the service, handler, key, parameter, headers and idempotency
key; the callee id is the one the state machine derives from the caller and the entry
index (:func:`~engine.partition.state_machine.journal_commands.callee_invocation_id`),
and the service and handler kinds come from the service's current registration (a
service no longer registered: its target is named without kinds). No trace context is
recorded, so ``span_context`` is the empty one restate-server shows without tracing.
Sensitive header values are shown as ``<redacted>``, as everywhere in ``sys_journal``. The
retention durations are the callee service's settings (0 where the engine default
applies); the restate CLI needs them present to read the entry.
"""

from __future__ import annotations

from typing import Any, Final

from engine.ids import InvocationId
from engine.metadata.targets import resolve_call_target
from engine.metadata.view import MetadataView
from engine.partition.state_machine.journal_commands import callee_invocation_id
from engine.sensitive_headers import REDACTED, is_sensitive_header
from engine.wal.records import HandlerKind, ServiceKind
from restate_protocol import service_protocol_pb2 as pb

__all__ = ["call_request"]

_TARGET_KIND: Final = {
    ServiceKind.SERVICE: "Service", ServiceKind.VIRTUAL_OBJECT: "VirtualObject", ServiceKind.WORKFLOW: "Workflow",
}
_HANDLER_KIND: Final = {HandlerKind.EXCLUSIVE: "Exclusive", HandlerKind.SHARED: "Shared",
                        HandlerKind.WORKFLOW: "Workflow"}
_EMPTY_SPAN: Final = {
    "span_context": {"trace_id": [0] * 16, "span_id": [0] * 8, "trace_flags": 0, "is_remote": False,
                     "trace_state": ""},
    "cause": None,
}


def _duration(ms: int | None) -> dict[str, int]:
    """Restate's serde of a duration; ``None`` (the engine default applies) shows as 0."""
    ms = ms or 0
    return {"secs": ms // 1000, "nanos": (ms % 1000) * 1_000_000}


def call_request(
    caller: InvocationId, index: int, message: pb.CallCommandMessage | pb.OneWayCallCommandMessage,
    view: MetadataView | None, lite: bool,
) -> dict[str, Any]:
    """Restate's ``request`` object of the call at ``index`` of ``caller``'s journal."""
    key = message.key or None
    idempotency_key = message.idempotency_key if message.HasField("idempotency_key") else None
    callee = callee_invocation_id(caller, index, message.service_name, key, message.handler_name, idempotency_key)
    target: dict[str, Any] = {"name": message.service_name}
    kind = "Service" if key is None else "VirtualObject"
    if key is not None:
        target["key"] = key
    target["handler"] = message.handler_name
    resolved = None
    if view is not None:
        try:
            resolved = resolve_call_target(view, message.service_name, message.handler_name)
        except LookupError:
            pass
        if resolved is not None:
            kind = _TARGET_KIND[resolved.service_kind]
            if resolved.handler_kind is not None:
                target["handler_ty"] = _HANDLER_KIND[resolved.handler_kind]
    target["scope"] = None
    completion_ms = journal_ms = None
    if resolved is not None:
        completion_ms = resolved.completion_retention_ms(idempotency_key is not None)
        journal_ms = resolved.journal_retention_ms
    request: dict[str, Any] = {"invocation_id": str(callee), "invocation_target": {kind: target}}
    if not lite:
        request["span_context"] = _EMPTY_SPAN
        request["parameter"] = list(message.parameter)
        request["headers"] = [{"name": h.key, "value": REDACTED if is_sensitive_header(h.key) else h.value}
                              for h in message.headers]
        request["idempotency_key"] = idempotency_key
        request["completion_retention_duration"] = _duration(completion_ms)
        request["journal_retention_duration"] = _duration(journal_ms)
    return request
