"""Notification ids and results, as the SDK sees them.

A notification is addressed by a :data:`Key`: ``("c", completion_id)`` for the answer
to a command, ``("s", signal_index)`` for a signal by index (awakeables, cancel), or
``("n", name)`` for a named signal. Its result is a :data:`Result`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import Message

from restate_protocol import pb
from restate_protocol.messages import MessageType
from sdk.errors import ProtocolViolation

__all__ = [
    "CANCEL_SIGNAL",
    "FIRST_USER_SIGNAL",
    "Failure",
    "InvocationIdResult",
    "Key",
    "Result",
    "StateKeysResult",
    "VOID",
    "Void",
    "completion_key",
    "named_signal_key",
    "parse_notification",
    "signal_key",
]

Key = tuple[str, int | str]
"""``("c", id)``, ``("s", index)`` or ``("n", name)``."""

#: Built-in signal index that cancels the receiving invocation.
CANCEL_SIGNAL = 1
#: Signal indexes below this are reserved for the runtime; awakeables start here.
FIRST_USER_SIGNAL = 17


def completion_key(completion_id: int) -> Key:
    """The key of the notification answering completion id ``completion_id``."""
    return ("c", completion_id)


def signal_key(index: int) -> Key:
    """The key of the signal with index ``index``."""
    return ("s", index)


def named_signal_key(name: str) -> Key:
    """The key of the named signal ``name``."""
    return ("n", name)


class Void:
    """The empty result (a sleep fired, a key is absent, a promise completed)."""

    def __repr__(self) -> str:
        return "VOID"


VOID = Void()


@dataclass(frozen=True)
class Failure:
    """A terminal failure carried by a notification or written by the SDK."""

    code: int
    message: str
    metadata: dict[str, str] = field(default_factory=dict)

    def to_pb(self) -> pb.Failure:
        """The protobuf form."""
        return pb.Failure(
            code=self.code,
            message=self.message,
            metadata=[pb.FailureMetadata(key=k, value=v) for k, v in self.metadata.items()],
        )

    @classmethod
    def from_pb(cls, failure: pb.Failure) -> Failure:
        """Read the protobuf form."""
        return cls(failure.code, failure.message, {m.key: m.value for m in failure.metadata})


@dataclass(frozen=True)
class InvocationIdResult:
    """A call's or send's callee invocation id."""

    invocation_id: str


@dataclass(frozen=True)
class StateKeysResult:
    """The state keys of an object."""

    keys: tuple[bytes, ...]


Result = Void | bytes | Failure | InvocationIdResult | StateKeysResult
"""A value is plain ``bytes``."""


def _result_of(message: Message, field_name: str | None) -> Result:
    if field_name is None or field_name == "void":
        return VOID
    if field_name == "value":
        value = getattr(message, "value")
        assert isinstance(value, pb.Value)
        return bytes(value.content)
    if field_name == "failure":
        failure = getattr(message, "failure")
        assert isinstance(failure, pb.Failure)
        return Failure.from_pb(failure)
    if field_name == "invocation_id":
        return InvocationIdResult(str(getattr(message, "invocation_id")))
    if field_name == "state_keys":
        keys = getattr(message, "state_keys")
        assert isinstance(keys, pb.StateKeys)
        return StateKeysResult(tuple(bytes(k) for k in keys.keys))
    raise ProtocolViolation(f"unknown notification result {field_name!r}")


def parse_notification(type_id: int, message: Message) -> tuple[Key, Result]:
    """The key and result of one notification message.

    Raises:
        ProtocolViolation: a signal without an id.
    """
    if type_id == MessageType.SIGNAL_NOTIFICATION:
        assert isinstance(message, pb.SignalNotificationMessage)
        which = message.WhichOneof("signal_id")
        if which == "idx":
            key = signal_key(message.idx)
        elif which == "name":
            key = named_signal_key(message.name)
        else:
            raise ProtocolViolation("signal notification without a signal id")
        return key, _result_of(message, message.WhichOneof("result"))
    completion_id = int(getattr(message, "completion_id"))
    key = completion_key(completion_id)
    if type_id == MessageType.SLEEP_COMPLETION:
        return key, VOID
    if type_id == MessageType.CALL_INVOCATION_ID_COMPLETION:
        return key, _result_of(message, "invocation_id")
    if type_id == MessageType.GET_LAZY_STATE_KEYS_COMPLETION:
        return key, _result_of(message, "state_keys")
    return key, _result_of(message, message.WhichOneof("result"))
