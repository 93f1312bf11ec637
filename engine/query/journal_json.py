"""Journal entries as Restate's ``sys_journal`` shows them: type names and JSON.

``entry_type`` is ``Command: <Name>`` or ``Notification: <Name>``. ``entry_json`` is the
decoded protobuf message (fields that are set; bytes as arrays of numbers, as Restate's
serde output has them) under ``{"Command": {<Name>: ...}}`` or
``{"Notification": {<Name>: ...}}``; ``entry_lite_json`` the same without payloads.
The exact serde shapes of Restate's ``journal_v2::Entry`` are not reproduced yet.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from engine.sensitive_headers import REDACTED, is_sensitive_header
from restate_protocol import JournalEntry
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


def entry_json(entry: JournalEntry) -> tuple[str | None, str | None]:
    """``(entry_json, entry_lite_json)`` of one entry; nulls when it cannot be decoded."""
    message = _decode(entry)
    if message is None:
        return None, None
    kind, name = _short(entry.message_type)
    full, lite = _fields(message, False), _fields(message, True)
    if kind == "Command":
        full.setdefault("name", "")
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
