"""Journal entries as Restate's ``sys_journal`` shows them: type names and JSON.

``entry_type`` is ``Command: <Name>`` or ``Notification: <Name>``. ``entry_json`` is the
decoded protobuf message (fields that are set; bytes as arrays of numbers, as Restate's
serde output has them) under ``{"Command": {<Name>: ...}}`` or
``{"Notification": {<Name>: ...}}``; ``entry_lite_json`` the same without payloads.
Commands take the shape of Restate's ``journal_v2`` serde output for the fields the
restate CLI reads (:func:`_restate_shape`); completions sit under ``Completion`` with
their ``result`` (:func:`_restate_notification`), signals stay the decoded protobuf.
"""

from __future__ import annotations

import json
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from engine.ids import InvocationId
from engine.metadata.view import MetadataView
from engine.query.call_request import call_request
from engine.sensitive_headers import REDACTED, is_sensitive_header
from restate_protocol import JournalEntry
from restate_protocol import service_protocol_pb2 as pb
from restate_protocol.messages import SPECS_BY_ID, MessageKind, kind_of, message_name

__all__ = ["entry_json", "entry_name", "entry_raw", "entry_type"]


def _short(type_id: int) -> tuple[str, str]:
    name = message_name(type_id)
    if kind_of(type_id) is MessageKind.COMMAND:
        return "Command", name.removesuffix("Command")
    return "Notification", name.removesuffix("Notification").removesuffix("Completion")


def entry_type(type_id: int) -> str:
    """``Command: Run``, ``Notification: Call``..."""
    kind, name = _short(type_id)
    return f"{kind}: {name}"


def _decode(entry: JournalEntry) -> Message | None:
    spec = SPECS_BY_ID.get(entry.message_type)
    if spec is None:
        return None
    message = spec.cls()
    try:
        message.ParseFromString(entry.message)
    except DecodeError:
        return None
    return message


def entry_name(entry: JournalEntry) -> str | None:
    """A command's name (``""`` when unnamed); null for notifications."""
    if kind_of(entry.message_type) is not MessageKind.COMMAND:
        return None
    message = _decode(entry)
    return "" if message is None else str(getattr(message, "name", "") or "")


def _value(field: FieldDescriptor, value: Any, lite: bool) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _fields(value, lite)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return None if lite else list(value)
    return value


def _fields(message: Message, lite: bool) -> dict[str, Any]:
    if message.DESCRIPTOR.full_name == "logstrate.protocol.Header":
        # Credentials in headers (Authorization, Cookie, ...) are kept, never shown.
        key = str(getattr(message, "key", ""))
        return {"key": key, "value": REDACTED if is_sensitive_header(key) else getattr(message, "value", "")}
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.is_repeated:
            items = [_value(field, item, lite) for item in value]
            if not lite:
                out[field.name] = items
        else:
            rendered = _value(field, value, lite)
            if rendered is not None:
                out[field.name] = rendered
    return out


_RENAMED: Final = {"result_completion_id": "completion_id", "invocation_id_notification_idx": "invocation_id_completion_id"}
_KEEP_RESULT_ID: Final = frozenset({"Call"})
"""Commands that keep ``result_completion_id`` (they have two completion ids)."""


def _restate_shape(name: str, fields: dict[str, Any], lite: bool) -> dict[str, Any]:
    """A command's protobuf fields in the shape of Restate's ``journal_v2`` serde output
    (what the restate CLI parses ``entry_json`` as): ``completion_id`` for
    ``result_completion_id``, payloads (``Value`` messages) as their bytes, ``Input``'s
    as ``payload``, headers as ``{name, value}``, state keys as text; the lite form leaves
    out names, payloads and headers."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _RENAMED and not (key == "result_completion_id" and name in _KEEP_RESULT_ID):
            key = _RENAMED[key]
        if isinstance(value, dict) and set(value) <= {"content"}:
            if "content" not in value:
                continue  # a payload the lite form leaves out
            value = value["content"]
            if name == "Input" and key == "value":
                key = "payload"
        elif key == "headers" and isinstance(value, list):
            value = [{"name": h.get("key", ""), "value": h.get("value", "")} for h in value]
        elif key == "key" and isinstance(value, list):
            value = bytes(value).decode(errors="replace")
        out[key] = value
    if lite:
        out.pop("name", None)
    else:
        out.setdefault("name", "")
    return out


def _restate_notification(fields: dict[str, Any], lite: bool) -> dict[str, Any]:
    """A completion's fields as Restate shows them: the result under ``result``
    (``{"Success": bytes}``, ``{"Failure": {code, message}}`` or ``"Void"``)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "value" and isinstance(value, dict):
            if "content" in value:
                out["result"] = {"Success": value["content"]}
        elif key == "failure" and isinstance(value, dict):
            out["result"] = {"Failure": value}
        elif key == "void":
            out["result"] = "Void"
        else:
            out[key] = value
    return out


_REQUEST_FIELDS: Final = frozenset({"service_name", "handler_name", "key", "parameter", "headers", "idempotency_key"})


def entry_json(
    entry: JournalEntry, caller: InvocationId | None = None, index: int | None = None,
    view: MetadataView | None = None,
) -> tuple[str | None, str | None]:
    """``(entry_json, entry_lite_json)`` of one entry; nulls when it cannot be decoded.
    With the entry's invocation and index, a call's target and callee are shown as
    Restate's ``request`` (:mod:`engine.query.call_request`; ``view`` names the kinds)."""
    message = _decode(entry)
    if message is None:
        return None, None
    kind, name = _short(entry.message_type)
    full, lite = _fields(message, False), _fields(message, True)
    if kind == "Notification" and "completion_id" in full:
        # Completions sit under "Completion" (signals keep their own shape).
        return (json.dumps({kind: {"Completion": {name: _restate_notification(full, False)}}}, separators=(",", ":")),
                json.dumps({kind: {"Completion": {name: _restate_notification(lite, True)}}}, separators=(",", ":")))
    if kind == "Command":
        full, lite = _restate_shape(name, full, False), _restate_shape(name, lite, True)
        if caller is not None and index is not None and isinstance(
                message, (pb.CallCommandMessage, pb.OneWayCallCommandMessage)):
            for shaped, is_lite in ((full, False), (lite, True)):
                for field in _REQUEST_FIELDS:
                    shaped.pop(field, None)
                shaped["request"] = call_request(caller, index, message, view, is_lite)
            full = {"request": full.pop("request"), **full}
            lite = {"request": lite.pop("request"), **lite}
    return (json.dumps({kind: {name: full}}, separators=(",", ":")),
            json.dumps({kind: {name: lite}}, separators=(",", ":")))


def entry_raw(entry: JournalEntry) -> bytes:
    """The entry's protocol message body for the ``raw`` column, with the values of
    sensitive headers (input and call commands) replaced by ``<redacted>``."""
    message = _decode(entry)
    if message is None or "headers" not in message.DESCRIPTOR.fields_by_name:
        return entry.message
    headers = getattr(message, "headers")
    if not any(is_sensitive_header(h.key) for h in headers):
        return entry.message
    for header in headers:
        if is_sensitive_header(header.key):
            header.value = REDACTED
    return bytes(message.SerializeToString())
