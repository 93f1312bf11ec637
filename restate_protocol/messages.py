"""The one table that maps service protocol message type ids to protobuf classes.

Every frame on the wire starts with a 16-bit type id; the id alone decides how the body
is parsed. The id space is split in ranges, and the range says what a message is:

=================  =============================================================
``0x0000-0x03FF``  control messages (start, suspension, error, end, acks, ...)
``0x0400-0x7FFF``  commands: journal entries the SDK produces
``0x8000-0xFBFF``  notifications: journal entries the runtime produces (completions
                   of commands, and signals at ``0xFBFF``)
``0xFC00-0xFFFF``  custom entries: opaque bytes an SDK may journal; the runtime
                   stores and replays them without looking inside
=================  =============================================================

Nothing else in the engine should hard-code a type id: look it up here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from google.protobuf.message import Message

from restate_protocol import service_protocol_pb2 as pb
from restate_protocol.errors import ProtocolError

COMMAND_RANGE_START = 0x0400
NOTIFICATION_RANGE_START = 0x8000
CUSTOM_RANGE_START = 0xFC00
MAX_TYPE_ID = 0xFFFF


class MessageType(enum.IntEnum):
    """Type ids of every message logstrate knows, as sent in the frame header."""

    # Control messages.
    START = 0x0000
    SUSPENSION = 0x0001
    ERROR = 0x0002
    END = 0x0003
    COMMAND_ACK = 0x0004
    PROPOSE_RUN_COMPLETION = 0x0005
    AWAITING_ON = 0x0006
    PROPOSE_RUN_COMPLETION_ACK = 0x0007

    # Commands. 0x040F is not assigned in any version logstrate speaks.
    INPUT_COMMAND = 0x0400
    OUTPUT_COMMAND = 0x0401
    GET_LAZY_STATE_COMMAND = 0x0402
    SET_STATE_COMMAND = 0x0403
    CLEAR_STATE_COMMAND = 0x0404
    CLEAR_ALL_STATE_COMMAND = 0x0405
    GET_LAZY_STATE_KEYS_COMMAND = 0x0406
    GET_EAGER_STATE_COMMAND = 0x0407
    GET_EAGER_STATE_KEYS_COMMAND = 0x0408
    GET_PROMISE_COMMAND = 0x0409
    PEEK_PROMISE_COMMAND = 0x040A
    COMPLETE_PROMISE_COMMAND = 0x040B
    SLEEP_COMMAND = 0x040C
    CALL_COMMAND = 0x040D
    ONE_WAY_CALL_COMMAND = 0x040E
    SEND_SIGNAL_COMMAND = 0x0410
    RUN_COMMAND = 0x0411
    ATTACH_INVOCATION_COMMAND = 0x0412
    GET_INVOCATION_OUTPUT_COMMAND = 0x0413
    COMPLETE_AWAKEABLE_COMMAND = 0x0414

    # Notifications. A completion's low byte matches its command's low byte, except
    # the call's invocation-id notification, which takes the free 0x800E slot.
    GET_LAZY_STATE_COMPLETION = 0x8002
    GET_LAZY_STATE_KEYS_COMPLETION = 0x8006
    GET_PROMISE_COMPLETION = 0x8009
    PEEK_PROMISE_COMPLETION = 0x800A
    COMPLETE_PROMISE_COMPLETION = 0x800B
    SLEEP_COMPLETION = 0x800C
    CALL_COMPLETION = 0x800D
    CALL_INVOCATION_ID_COMPLETION = 0x800E
    RUN_COMPLETION = 0x8011
    ATTACH_INVOCATION_COMPLETION = 0x8012
    GET_INVOCATION_OUTPUT_COMPLETION = 0x8013
    SIGNAL_NOTIFICATION = 0xFBFF


class MessageKind(enum.Enum):
    """What a type id's range says about the message."""

    CONTROL = "control"
    COMMAND = "command"
    NOTIFICATION = "notification"
    CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """Everything the codec knows about one message type.

    Attributes:
        type_id: The id written in the frame header.
        cls: The protobuf class of the frame body.
        name: A short name for logs, e.g. ``"RunCommand"`` or ``"Start"``.
        kind: The range the id falls in.
        since_version: First protocol version in which the message exists.
        allows_ack: Whether the REQUESTED_ACK header flag means something for it (every
            command, and ``ProposeRunCompletion``), see :mod:`.framing`.
    """

    type_id: int
    cls: type[Message]
    name: str
    kind: MessageKind
    since_version: int
    allows_ack: bool


def kind_of(type_id: int) -> MessageKind:
    """The kind of message a type id denotes, judged by its range alone.

    Raises:
        ValueError: ``type_id`` does not fit in 16 bits.
    """
    if not 0 <= type_id <= MAX_TYPE_ID:
        raise ValueError(f"message type id {type_id!r} does not fit in 16 bits")
    if type_id < COMMAND_RANGE_START:
        return MessageKind.CONTROL
    if type_id < NOTIFICATION_RANGE_START:
        return MessageKind.COMMAND
    if type_id < CUSTOM_RANGE_START:
        return MessageKind.NOTIFICATION
    return MessageKind.CUSTOM


def is_control(type_id: int) -> bool:
    """True when ``type_id`` lies in the control message range."""
    return 0 <= type_id < COMMAND_RANGE_START


def is_command(type_id: int) -> bool:
    """True when ``type_id`` lies in the command range (journal entries from the SDK)."""
    return COMMAND_RANGE_START <= type_id < NOTIFICATION_RANGE_START


def is_notification(type_id: int) -> bool:
    """True when ``type_id`` lies in the notification range (completions and signals)."""
    return NOTIFICATION_RANGE_START <= type_id < CUSTOM_RANGE_START


def is_custom(type_id: int) -> bool:
    """True when ``type_id`` is a custom entry, whose body is opaque to the runtime."""
    return CUSTOM_RANGE_START <= type_id <= MAX_TYPE_ID


def _short_name(cls: type[Message]) -> str:
    # "RunCompletionNotificationMessage" -> "RunCompletionNotification": the suffix is
    # noise in logs, and the result matches the names Restate's own logs use.
    name = cls.DESCRIPTOR.name
    return name.removesuffix("Message")


# (id, class, first version). The first version matters only for messages that
# appeared after v5, the oldest version logstrate speaks.
_TABLE: tuple[tuple[MessageType, type[Message], int], ...] = (
    (MessageType.START, pb.StartMessage, 5),
    (MessageType.SUSPENSION, pb.SuspensionMessage, 5),
    (MessageType.ERROR, pb.ErrorMessage, 5),
    (MessageType.END, pb.EndMessage, 5),
    (MessageType.COMMAND_ACK, pb.CommandAckMessage, 5),
    (MessageType.PROPOSE_RUN_COMPLETION, pb.ProposeRunCompletionMessage, 5),
    (MessageType.AWAITING_ON, pb.AwaitingOnMessage, 7),
    (MessageType.PROPOSE_RUN_COMPLETION_ACK, pb.ProposeRunCompletionAckMessage, 7),
    (MessageType.INPUT_COMMAND, pb.InputCommandMessage, 5),
    (MessageType.OUTPUT_COMMAND, pb.OutputCommandMessage, 5),
    (MessageType.GET_LAZY_STATE_COMMAND, pb.GetLazyStateCommandMessage, 5),
    (MessageType.SET_STATE_COMMAND, pb.SetStateCommandMessage, 5),
    (MessageType.CLEAR_STATE_COMMAND, pb.ClearStateCommandMessage, 5),
    (MessageType.CLEAR_ALL_STATE_COMMAND, pb.ClearAllStateCommandMessage, 5),
    (MessageType.GET_LAZY_STATE_KEYS_COMMAND, pb.GetLazyStateKeysCommandMessage, 5),
    (MessageType.GET_EAGER_STATE_COMMAND, pb.GetEagerStateCommandMessage, 5),
    (MessageType.GET_EAGER_STATE_KEYS_COMMAND, pb.GetEagerStateKeysCommandMessage, 5),
    (MessageType.GET_PROMISE_COMMAND, pb.GetPromiseCommandMessage, 5),
    (MessageType.PEEK_PROMISE_COMMAND, pb.PeekPromiseCommandMessage, 5),
    (MessageType.COMPLETE_PROMISE_COMMAND, pb.CompletePromiseCommandMessage, 5),
    (MessageType.SLEEP_COMMAND, pb.SleepCommandMessage, 5),
    (MessageType.CALL_COMMAND, pb.CallCommandMessage, 5),
    (MessageType.ONE_WAY_CALL_COMMAND, pb.OneWayCallCommandMessage, 5),
    (MessageType.SEND_SIGNAL_COMMAND, pb.SendSignalCommandMessage, 5),
    (MessageType.RUN_COMMAND, pb.RunCommandMessage, 5),
    (MessageType.ATTACH_INVOCATION_COMMAND, pb.AttachInvocationCommandMessage, 5),
    (MessageType.GET_INVOCATION_OUTPUT_COMMAND, pb.GetInvocationOutputCommandMessage, 5),
    (MessageType.COMPLETE_AWAKEABLE_COMMAND, pb.CompleteAwakeableCommandMessage, 5),
    (MessageType.GET_LAZY_STATE_COMPLETION, pb.GetLazyStateCompletionNotificationMessage, 5),
    (
        MessageType.GET_LAZY_STATE_KEYS_COMPLETION,
        pb.GetLazyStateKeysCompletionNotificationMessage,
        5,
    ),
    (MessageType.GET_PROMISE_COMPLETION, pb.GetPromiseCompletionNotificationMessage, 5),
    (MessageType.PEEK_PROMISE_COMPLETION, pb.PeekPromiseCompletionNotificationMessage, 5),
    (
        MessageType.COMPLETE_PROMISE_COMPLETION,
        pb.CompletePromiseCompletionNotificationMessage,
        5,
    ),
    (MessageType.SLEEP_COMPLETION, pb.SleepCompletionNotificationMessage, 5),
    (MessageType.CALL_COMPLETION, pb.CallCompletionNotificationMessage, 5),
    (
        MessageType.CALL_INVOCATION_ID_COMPLETION,
        pb.CallInvocationIdCompletionNotificationMessage,
        5,
    ),
    (MessageType.RUN_COMPLETION, pb.RunCompletionNotificationMessage, 5),
    (
        MessageType.ATTACH_INVOCATION_COMPLETION,
        pb.AttachInvocationCompletionNotificationMessage,
        5,
    ),
    (
        MessageType.GET_INVOCATION_OUTPUT_COMPLETION,
        pb.GetInvocationOutputCompletionNotificationMessage,
        5,
    ),
    (MessageType.SIGNAL_NOTIFICATION, pb.SignalNotificationMessage, 5),
)

#: Protobuf types that only ever appear inside other messages, never as a frame.
PAYLOAD_TYPES: frozenset[type[Message]] = frozenset(
    {
        pb.NotificationTemplate,
        pb.Future,
        pb.StateKeys,
        pb.Value,
        pb.Failure,
        pb.FailureMetadata,
        pb.Header,
        pb.WorkflowTarget,
        pb.IdempotentRequestTarget,
        pb.Void,
    }
)


def _build() -> tuple[Mapping[int, MessageSpec], Mapping[type[Message], MessageSpec]]:
    by_id: dict[int, MessageSpec] = {}
    by_cls: dict[type[Message], MessageSpec] = {}
    for type_id, cls, since in _TABLE:
        kind = kind_of(type_id)
        spec = MessageSpec(
            type_id=int(type_id),
            cls=cls,
            name=_short_name(cls),
            kind=kind,
            since_version=since,
            allows_ack=kind is MessageKind.COMMAND
            or type_id == MessageType.PROPOSE_RUN_COMPLETION,
        )
        # A duplicate would make decoding ambiguous; fail at import, not on the wire.
        if type_id in by_id or cls in by_cls:
            raise RuntimeError(f"duplicate registry entry for {type_id:#06x} / {cls.__name__}")
        by_id[spec.type_id] = spec
        by_cls[cls] = spec
    return MappingProxyType(by_id), MappingProxyType(by_cls)


#: Registry: type id -> spec, and protobuf class -> spec.
SPECS_BY_ID, SPECS_BY_CLASS = _build()


def spec_for_id(type_id: int) -> MessageSpec:
    """The spec of a known type id.

    Raises:
        ProtocolError: the id is not a message logstrate knows (custom entries included:
            they have no protobuf class; check :func:`is_custom` first).
    """
    spec = SPECS_BY_ID.get(type_id)
    if spec is None:
        raise ProtocolError(
            f"unknown service protocol message type {type_id:#06x} "
            f"({kind_of(type_id).value} range); the endpoint speaks a protocol "
            "revision logstrate does not implement"
        )
    return spec


def spec_for_message(message: Message) -> MessageSpec:
    """The spec of a protobuf message instance.

    Raises:
        TypeError: the message's class is not a frame type (e.g. ``Value``), which is a
            bug in the caller rather than bad input from a peer.
    """
    spec = SPECS_BY_CLASS.get(type(message))
    if spec is None:
        raise TypeError(
            f"{type(message).__name__} is not a service protocol frame; "
            "only the messages listed in restate_protocol.messages can be framed"
        )
    return spec


def message_name(type_id: int) -> str:
    """A short, human-readable name of a type id for logs; never raises.

    Known ids give their message name (``"OutputCommand"``); custom entries give
    ``"Custom(0xfc01)"``; anything else gives ``"Unknown(0x....)"``.
    """
    spec = SPECS_BY_ID.get(type_id)
    if spec is not None:
        return spec.name
    if is_custom(type_id):
        return f"Custom({type_id:#06x})"
    return f"Unknown({type_id:#06x})"


def allows_ack(type_id: int) -> bool:
    """Whether the REQUESTED_ACK header flag is meaningful for ``type_id``.

    True for every command and for ``ProposeRunCompletion``. Custom entries are
    journal entries too, so the runtime acknowledges them like commands.
    """
    spec = SPECS_BY_ID.get(type_id)
    if spec is not None:
        return spec.allows_ack
    return is_custom(type_id)
