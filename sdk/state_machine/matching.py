"""Comparing a replayed command with the one the handler issues now.

Replay is deterministic when, command by command, the handler asks for the same thing
it asked for the first time. Each command type lists the fields that must agree; a few
fields legitimately differ between attempts (a sleep's absolute wake-up time, a send's
invoke time) and are left out, as are results the journal itself carries (eager state
reads).
"""

from __future__ import annotations

from google.protobuf.message import Message

from restate_protocol.messages import MessageType, message_name

__all__ = ["describe_command", "differences"]

_T = MessageType

#: Fields (or oneof groups) compared per command type.
_COMPARED: dict[int, tuple[str, ...]] = {
    _T.OUTPUT_COMMAND: ("result",),
    _T.GET_LAZY_STATE_COMMAND: ("key", "result_completion_id"),
    _T.SET_STATE_COMMAND: ("key", "value"),
    _T.CLEAR_STATE_COMMAND: ("key",),
    _T.CLEAR_ALL_STATE_COMMAND: (),
    _T.GET_LAZY_STATE_KEYS_COMMAND: ("result_completion_id",),
    _T.GET_EAGER_STATE_COMMAND: ("key",),
    _T.GET_EAGER_STATE_KEYS_COMMAND: (),
    _T.GET_PROMISE_COMMAND: ("key", "result_completion_id"),
    _T.PEEK_PROMISE_COMMAND: ("key", "result_completion_id"),
    _T.COMPLETE_PROMISE_COMMAND: ("key", "completion", "result_completion_id"),
    _T.SLEEP_COMMAND: ("name", "result_completion_id"),
    _T.CALL_COMMAND: (
        "service_name",
        "handler_name",
        "key",
        "parameter",
        "headers",
        "idempotency_key",
        "name",
        "invocation_id_notification_idx",
        "result_completion_id",
    ),
    _T.ONE_WAY_CALL_COMMAND: (
        "service_name",
        "handler_name",
        "key",
        "parameter",
        "headers",
        "idempotency_key",
        "name",
        "invocation_id_notification_idx",
    ),
    _T.SEND_SIGNAL_COMMAND: ("target_invocation_id", "signal_id", "result"),
    _T.RUN_COMMAND: ("name", "result_completion_id"),
    _T.ATTACH_INVOCATION_COMMAND: ("target", "result_completion_id"),
    _T.GET_INVOCATION_OUTPUT_COMMAND: ("target", "result_completion_id"),
    _T.COMPLETE_AWAKEABLE_COMMAND: ("awakeable_id", "result"),
}

_ONEOFS = frozenset({"result", "completion", "signal_id", "target"})
_MAX_SHOWN = 80


def _field_value(message: Message, name: str) -> object:
    if name in _ONEOFS:
        which = message.WhichOneof(name)
        return None if which is None else (which, getattr(message, which))
    value = getattr(message, name)
    if hasattr(value, "__len__") and not isinstance(value, (str, bytes)):
        return list(value)
    return value


def _show(value: object) -> str:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        value = f"{value[0]}={_show(value[1])}"
    elif isinstance(value, Message):
        value = " ".join(str(value).split())
    elif isinstance(value, list):
        value = "[" + ", ".join(_show(v) for v in value) + "]"
    elif isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            pass
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def differences(type_id: int, journaled: Message, issued: Message) -> list[str]:
    """The compared fields whose values differ, as ``field: journal=... handler=...``."""
    out: list[str] = []
    for name in _COMPARED.get(type_id, ()):
        a, b = _field_value(journaled, name), _field_value(issued, name)
        if a != b:
            out.append(f"{name}: journal has {_show(a)!s}, handler now gives {_show(b)!s}")
    return out


def describe_command(type_id: int, message: Message | None) -> str:
    """A short description: ``Run(name='charge')``, ``SetState(key='count')``."""
    name = message_name(type_id)
    if message is None:
        return name
    parts: list[str] = []
    for field_name in ("name", "key", "service_name", "handler_name"):
        if field_name in _COMPARED.get(type_id, ()) or field_name == "name":
            try:
                value = getattr(message, field_name)
            except AttributeError:
                continue
            if value:
                parts.append(f"{field_name}={_show(value)!r}")
    return f"{name}({', '.join(parts)})"
