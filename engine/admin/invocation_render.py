"""JSON renderings of invocation status rows, journals and raw payloads (pure functions).

Shapes (documented in docs/ARCHITECTURE.md, "Admin: invocations and state"):

* A byte payload is ``{"utf8": text}`` when the bytes are UTF-8 text (no control
  characters), else ``{"base64": text}``: lossless, and readable for the JSON most
  handlers exchange.
* An invocation is a flat object whose field names follow Restate's ``sys_invocation``
  SQL table where one exists (``target_service_name``, ``retry_count``,
  ``pinned_deployment_id``, ``completion_result`` ...); times are RFC 3339 UTC.
* A journal entry is ``{"index", "kind", "type", "name"?, "entry"}`` where ``entry`` is
  the decoded protobuf message with default fields left out, nested messages as
  objects, enums by name and bytes as payloads.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from engine.ids import InvocationId
from engine.sensitive_headers import REDACTED, is_sensitive_header
from restate_protocol.messages import SPECS_BY_ID, kind_of, message_name
from engine.storage.invocation_status import InvocationStatus, LastFailure, StatusKind
from restate_protocol import JournalEntry
from engine.wal import records as r

__all__ = [
    "MAX_RENDERED_PAYLOAD",
    "bytes_json",
    "command_type_name",
    "invocation_json",
    "iso_duration_ms",
    "journal_entry_json",
    "journal_json",
    "message_json",
    "state_key_text",
    "timestamp_ms",
]

_CONTROL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

MAX_RENDERED_PAYLOAD: Final = 64 * 1024
"""Payloads in journals and results longer than this are cut (``"truncated": true``)."""


def timestamp_ms(ms: int | None) -> str | None:
    """Milliseconds since the Unix epoch as RFC 3339 UTC (``2024-05-01T12:00:00.123Z``)."""
    if ms is None:
        return None
    value = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def bytes_json(raw: bytes, limit: int | None = None) -> dict[str, Any]:
    """``{"utf8": ...}`` or ``{"base64": ...}``; with ``limit``, longer input is cut.

    Text is used only for valid UTF-8 without control characters other than tab and
    line breaks (binary data that happens to decode stays base64).
    """
    truncated = limit is not None and len(raw) > limit
    if truncated:
        raw = raw[:limit]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not _CONTROL.search(text):
        out: dict[str, Any] = {"utf8": text}
    else:
        out = {"base64": base64.b64encode(raw).decode("ascii")}
    if truncated:
        out["truncated"] = True
    return out


def state_key_text(key: bytes) -> str:
    """A state key as a JSON object key: its UTF-8 text, or ``base64:`` + base64 if not UTF-8."""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(key).decode("ascii")


def _field_value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_json(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return bytes_json(value, MAX_RENDERED_PAYLOAD)
    if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        enum_value = field.enum_type.values_by_number.get(value)
        return value if enum_value is None else enum_value.name
    return value


_HEADER_MESSAGE: Final = "logstrate.protocol.Header"


def message_json(message: Message) -> dict[str, Any]:
    """A protobuf message as a compact JSON object (only the fields that are set); the
    value of a sensitive header (:mod:`engine.sensitive_headers`) is redacted."""
    if message.DESCRIPTOR.full_name == _HEADER_MESSAGE:
        key = getattr(message, "key", "")
        return {"key": key, "value": REDACTED if is_sensitive_header(key) else getattr(message, "value", "")}
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.is_repeated:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                out[field.name] = {str(k): _field_value(value_field, v) for k, v in value.items()}
            else:
                out[field.name] = [_field_value(field, item) for item in value]
        else:
            out[field.name] = _field_value(field, value)
    return out


def journal_entry_json(index: int, entry: JournalEntry) -> dict[str, Any]:
    """One journal entry: index, kind (command/notification/custom), type name, name, body."""
    out: dict[str, Any] = {
        "index": index,
        "kind": kind_of(entry.message_type).value,
        "type": message_name(entry.message_type),
    }
    spec = SPECS_BY_ID.get(entry.message_type)
    if spec is None:
        out["entry"] = bytes_json(entry.message, MAX_RENDERED_PAYLOAD)
        return out
    message = spec.cls()
    try:
        message.ParseFromString(entry.message)
    except DecodeError as exc:
        out["entry"] = bytes_json(entry.message, MAX_RENDERED_PAYLOAD)
        out["decode_error"] = str(exc)
        return out
    body = message_json(message)
    name = body.pop("name", None) or body.pop("entry_name", None)
    if name:
        out["name"] = name
    out["entry"] = body
    return out


def _failure_json(failure: r.Failure) -> dict[str, Any]:
    out: dict[str, Any] = {"code": failure.code, "message": failure.message}
    if failure.metadata:
        out["metadata"] = {m.key: m.value for m in failure.metadata}
    return out


def invoked_by(status: InvocationStatus, *, unknown: str = "unknown") -> dict[str, Any]:
    """Who started the invocation, as Restate's ``invoked_by*`` fields (admin answers and
    ``sys_invocation``); ``unknown`` names a source with no column of its own."""
    if status.restarted_from is not None:
        return {"invoked_by": "restart_as_new", "restarted_from": str(status.restarted_from)}
    source = status.source
    if isinstance(source, r.IngressSource):
        return {"invoked_by": "ingress"}
    if isinstance(source, r.InvocationSource):
        return {"invoked_by": "service", "invoked_by_id": str(source.invocation_id)}
    if isinstance(source, r.SubscriptionSource):
        return {"invoked_by": "subscription", "invoked_by_subscription_id": str(source.subscription_id)}
    return {"invoked_by": unknown}


def _notification_id_json(notification_id: r.NotificationId) -> dict[str, Any]:
    if isinstance(notification_id, r.CompletionId):
        return {"completion_id": notification_id.id}
    if isinstance(notification_id, r.SignalIndex):
        return {"signal_index": notification_id.index}
    return {"signal_name": notification_id.name}


def target_text(target: r.InvocationTarget) -> str:
    """``service/handler`` or ``service/key/handler``."""
    if target.key is None:
        return f"{target.service}/{target.handler}"
    return f"{target.service}/{target.key}/{target.handler}"


def invocation_json(invocation_id: InvocationId, status: InvocationStatus) -> dict[str, Any]:
    """The status row of one invocation (no journal)."""
    target = status.target
    out: dict[str, Any] = {
        "id": str(invocation_id),
        "status": status.kind.value,
        "target": target_text(target),
        "target_service_name": target.service,
        "target_service_key": target.key,
        "target_handler_name": target.handler,
        "target_service_ty": target.service_kind.value.lower(),
        "target_handler_ty": None if target.handler_kind is None else target.handler_kind.value.lower(),
        "idempotency_key": status.idempotency_key,
        **invoked_by(status),
        "created_at": timestamp_ms(status.created_at_ms),
        "modified_at": timestamp_ms(status.modified_at_ms),
        "scheduled_start_at": timestamp_ms(status.execute_at_ms),
        "retry_count": status.attempt,
        "last_failure": None,
        "pinned_deployment_id": None if status.deployment_id is None else str(status.deployment_id),
        "pinned_service_protocol_version": status.protocol_version,
        "journal_size": status.journal_length,
        "journal_commands_size": status.commands,
        "completion_retention": iso_duration_ms(status.completion_retention_ms),
        "journal_retention": iso_duration_ms(status.journal_retention_ms),
    }
    if status.last_failure is not None:
        failure = status.last_failure
        out["last_failure"] = {"code": failure.code, "message": failure.message}
        out.update(_related_command_json(failure))
        if status.kind is StatusKind.INVOKED:
            out["next_retry_at"] = timestamp_ms(failure.retry_at_ms)
    if status.kind is StatusKind.SUSPENDED:
        out["waiting_for"] = [_notification_id_json(n) for n in status.waiting_for]
    if status.kind is StatusKind.INBOXED:
        out["inbox_sequence"] = status.inbox_sequence
    if status.kind is StatusKind.COMPLETED:
        out.update(_completion_json(status))
    return out


def command_type_name(type_id: int) -> str:
    """A command's type as restate-server's ``sys_invocation`` names it (``Run``,
    ``Call``, ``SetState``...): the message name without ``Command``."""
    return message_name(type_id).removesuffix("Command")


def _related_command_json(failure: LastFailure) -> dict[str, Any]:
    """Restate's ``last_failure_related_command_index|name|type``, where known."""
    out: dict[str, Any] = {}
    if failure.related_command_index is not None:
        out["last_failure_related_command_index"] = failure.related_command_index
    if failure.related_command_name:
        out["last_failure_related_command_name"] = failure.related_command_name
    if failure.related_command_type is not None:
        out["last_failure_related_command_type"] = command_type_name(failure.related_command_type)
    return out


def iso_duration_ms(ms: int | None) -> str | None:
    """Milliseconds as an ISO 8601 duration in seconds, as restate-server's SQL renders
    retention: ``PT2S``, ``PT0.5S``, ``PT86400S``."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    return f"PT{seconds}S" if millis == 0 else f"PT{seconds}.{millis:03d}".rstrip("0") + "S"


def _completion_json(status: InvocationStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"completion_retention_until": timestamp_ms(status.cleanup_at_ms)}
    result = status.result
    if isinstance(result, r.Value):
        out["completion_result"] = "success"
        out["completion_value"] = bytes_json(result.content, MAX_RENDERED_PAYLOAD)
    elif isinstance(result, r.Failure):
        out["completion_result"] = "failure"
        out["completion_failure"] = _failure_json(result)
    return out


def journal_json(entries: Iterable[tuple[int, JournalEntry]]) -> list[dict[str, Any]]:
    """A whole journal, entry by entry."""
    return [journal_entry_json(index, entry) for index, entry in entries]
