"""Turning :class:`~engine.wal.records.Notify` records into journal notification frames.

A ``Notify`` record says *what* completed (a completion id, a signal index or name) and
*with what* (value, failure, void, an invocation id, state keys). The journal entry the
SDK replays must also have the right *message type*: a completion id answered with a
value is a ``RunCompletionNotification`` when a ``RunCommand`` allocated it and a
``CallCompletionNotification`` when a ``CallCommand`` did. So encoding needs the journal's
map from completion id to notification type, built from its commands with
:func:`completion_types` / :func:`journal_completion_types`.

Every concrete notification message follows the protocol's ``NotificationTemplate``
shape (same field numbers for the id and the result), so encoding and decoding go
through that one template class; the per-type table below only checks which results a
type may carry.

The partition state machine uses this module when it journals a notification, the
invoker when it reads a failure out of an entry, the admin API when it checks a journal
prefix; it lives outside both the state machine and the invoker so that neither imports
the other (``tests/test_import_directions.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from google.protobuf.message import DecodeError

from engine.ids import IdParseError, InvocationId
from restate_protocol import MessageType, ProtocolError, message_name, pb
from restate_protocol import JournalEntry
from engine.wal.records import (
    CompletionId,
    Failure,
    FailureMetadata,
    InvocationIdResult,
    NotificationId,
    NotificationResult,
    Notify,
    SignalIndex,
    SignalName,
    StateKeys,
    Value,
    Void,
)

__all__ = [
    "ALLOWED_RESULTS",
    "completion_types",
    "decode_notification",
    "encode_notification",
    "failure_of",
    "journal_completion_types",
    "notification_entry",
]

_T = MessageType

#: Which result kinds each notification type may carry (the protocol reserves the others).
ALLOWED_RESULTS: Mapping[int, frozenset[type]] = MappingProxyType(
    {
        _T.GET_LAZY_STATE_COMPLETION: frozenset({Void, Value}),
        _T.GET_LAZY_STATE_KEYS_COMPLETION: frozenset({StateKeys}),
        _T.GET_PROMISE_COMPLETION: frozenset({Value, Failure}),
        _T.PEEK_PROMISE_COMPLETION: frozenset({Void, Value, Failure}),
        _T.COMPLETE_PROMISE_COMPLETION: frozenset({Void, Failure}),
        _T.SLEEP_COMPLETION: frozenset({Void}),
        _T.CALL_COMPLETION: frozenset({Value, Failure}),
        _T.CALL_INVOCATION_ID_COMPLETION: frozenset({InvocationIdResult}),
        _T.RUN_COMPLETION: frozenset({Value, Failure}),
        _T.ATTACH_INVOCATION_COMPLETION: frozenset({Value, Failure}),
        _T.GET_INVOCATION_OUTPUT_COMPLETION: frozenset({Void, Value, Failure}),
        _T.SIGNAL_NOTIFICATION: frozenset({Void, Value, Failure}),
    }
)


# Command type -> (its notification type, how to read its result_completion_id).
_SINGLE_COMPLETION: Mapping[int, tuple[int, Callable[[bytes], int]]] = MappingProxyType(
    {
        _T.GET_LAZY_STATE_COMMAND: (
            _T.GET_LAZY_STATE_COMPLETION,
            lambda b: pb.GetLazyStateCommandMessage.FromString(b).result_completion_id,
        ),
        _T.GET_LAZY_STATE_KEYS_COMMAND: (
            _T.GET_LAZY_STATE_KEYS_COMPLETION,
            lambda b: pb.GetLazyStateKeysCommandMessage.FromString(b).result_completion_id,
        ),
        _T.GET_PROMISE_COMMAND: (
            _T.GET_PROMISE_COMPLETION,
            lambda b: pb.GetPromiseCommandMessage.FromString(b).result_completion_id,
        ),
        _T.PEEK_PROMISE_COMMAND: (
            _T.PEEK_PROMISE_COMPLETION,
            lambda b: pb.PeekPromiseCommandMessage.FromString(b).result_completion_id,
        ),
        _T.COMPLETE_PROMISE_COMMAND: (
            _T.COMPLETE_PROMISE_COMPLETION,
            lambda b: pb.CompletePromiseCommandMessage.FromString(b).result_completion_id,
        ),
        _T.SLEEP_COMMAND: (
            _T.SLEEP_COMPLETION,
            lambda b: pb.SleepCommandMessage.FromString(b).result_completion_id,
        ),
        _T.RUN_COMMAND: (
            _T.RUN_COMPLETION,
            lambda b: pb.RunCommandMessage.FromString(b).result_completion_id,
        ),
        _T.ATTACH_INVOCATION_COMMAND: (
            _T.ATTACH_INVOCATION_COMPLETION,
            lambda b: pb.AttachInvocationCommandMessage.FromString(b).result_completion_id,
        ),
        _T.GET_INVOCATION_OUTPUT_COMMAND: (
            _T.GET_INVOCATION_OUTPUT_COMPLETION,
            lambda b: pb.GetInvocationOutputCommandMessage.FromString(b).result_completion_id,
        ),
    }
)


def completion_types(message_type: int, message: bytes) -> dict[int, int]:
    """The completion ids a command allocates, each mapped to its notification type.

    A call allocates two (the callee's invocation id, then its result); commands that
    complete synchronously (state writes, eager reads, output, ...) allocate none.

    Raises:
        ProtocolError: ``message`` is not a valid body for ``message_type``.
    """
    try:
        if message_type == _T.CALL_COMMAND:
            call = pb.CallCommandMessage.FromString(message)
            return {
                call.invocation_id_notification_idx: _T.CALL_INVOCATION_ID_COMPLETION,
                call.result_completion_id: _T.CALL_COMPLETION,
            }
        if message_type == _T.ONE_WAY_CALL_COMMAND:
            send = pb.OneWayCallCommandMessage.FromString(message)
            return {send.invocation_id_notification_idx: _T.CALL_INVOCATION_ID_COMPLETION}
        single = _SINGLE_COMPLETION.get(message_type)
        if single is None:
            return {}
        notification_type, read_completion_id = single
        completion_id = read_completion_id(message)
    except DecodeError as exc:
        raise ProtocolError(
            f"{message_name(message_type)} journal entry is not a valid protobuf message: {exc}"
        ) from exc
    return {completion_id: notification_type}


def journal_completion_types(journal: Iterable[JournalEntry]) -> dict[int, int]:
    """:func:`completion_types` of every command in ``journal``, merged.

    Raises:
        ProtocolError: a command body does not parse, or two commands allocate the same
            completion id (the SDK's ids are unique per invocation, so this is a corrupt
            journal).
    """
    merged: dict[int, int] = {}
    for entry in journal:
        for completion_id, notification_type in completion_types(
            entry.message_type, entry.message
        ).items():
            if completion_id in merged:
                raise ProtocolError(
                    f"completion id {completion_id} is allocated by two journal commands"
                )
            merged[completion_id] = notification_type
    return merged


def encode_notification(notify: Notify, notification_type: int | None = None) -> JournalEntry:
    """The journal entry that delivers ``notify`` to the SDK.

    Args:
        notify: The record to encode.
        notification_type: The notification message type for a :class:`CompletionId`
            (see :func:`completion_types`). Signals always use ``SignalNotification``, so
            for them it may be omitted.

    Raises:
        ValueError: the type is missing for a completion, names a signal type for a
            completion (or vice versa), or cannot carry the record's result kind.
    """
    nid = notify.notification_id
    if isinstance(nid, CompletionId):
        if notification_type is None:
            raise ValueError(
                f"completion id {nid.id} needs the notification type of the command that "
                "allocated it"
            )
        if notification_type == _T.SIGNAL_NOTIFICATION:
            raise ValueError(f"completion id {nid.id} cannot be sent as a SignalNotification")
    elif notification_type is None:
        notification_type = _T.SIGNAL_NOTIFICATION
    elif notification_type != _T.SIGNAL_NOTIFICATION:
        raise ValueError(f"signal {nid!r} can only be sent as a SignalNotification")
    allowed = ALLOWED_RESULTS.get(notification_type)
    if allowed is None:
        raise ValueError(f"{message_name(notification_type)} is not a notification type")
    if type(notify.result) not in allowed:
        raise ValueError(
            f"{message_name(notification_type)} cannot carry a "
            f"{type(notify.result).__name__} result"
        )
    template = pb.NotificationTemplate()
    if isinstance(nid, CompletionId):
        template.completion_id = nid.id
    elif isinstance(nid, SignalIndex):
        template.signal_id = nid.index
    else:
        template.signal_name = nid.name
    _set_result(template, notify.result)
    return JournalEntry(notification_type, template.SerializeToString())


def notification_entry(notify: Notify, types: Mapping[int, int]) -> JournalEntry:
    """:func:`encode_notification`, looking a completion's type up in ``types``.

    Raises:
        ValueError: no command allocated the completion id, or as
            :func:`encode_notification`.
    """
    nid = notify.notification_id
    if isinstance(nid, CompletionId):
        notification_type = types.get(nid.id)
        if notification_type is None:
            raise ValueError(f"no journal command allocated completion id {nid.id}")
        return encode_notification(notify, notification_type)
    return encode_notification(notify)


def decode_notification(entry: JournalEntry) -> tuple[NotificationId, NotificationResult]:
    """The id and result a notification journal entry carries (inverse of encoding).

    Raises:
        ProtocolError: the entry is not a notification type, does not parse, or lacks
            its id or result.
    """
    allowed = ALLOWED_RESULTS.get(entry.message_type)
    if allowed is None:
        raise ProtocolError(f"{message_name(entry.message_type)} is not a notification")
    try:
        template = pb.NotificationTemplate.FromString(entry.message)
    except DecodeError as exc:
        raise ProtocolError(
            f"{message_name(entry.message_type)} body is not a valid protobuf message: {exc}"
        ) from exc
    nid = _id_of(entry.message_type, template)
    result = _result_of(entry.message_type, template)
    if type(result) not in allowed:
        raise ProtocolError(
            f"{message_name(entry.message_type)} carries a {type(result).__name__} result"
        )
    return nid, result


def _set_result(template: pb.NotificationTemplate, result: NotificationResult) -> None:
    if isinstance(result, Void):
        template.void.SetInParent()
    elif isinstance(result, Value):
        template.value.content = result.content
    elif isinstance(result, Failure):
        template.failure.code = result.code
        template.failure.message = result.message
        template.failure.metadata.extend(
            pb.FailureMetadata(key=m.key, value=m.value) for m in result.metadata
        )
    elif isinstance(result, InvocationIdResult):
        template.invocation_id = str(result.invocation_id)
    else:
        # Marked present even when empty: "no keys" is still an answer.
        template.state_keys.SetInParent()
        template.state_keys.keys.extend(result.keys)


def _id_of(message_type: int, template: pb.NotificationTemplate) -> NotificationId:
    which = template.WhichOneof("id")
    if message_type == _T.SIGNAL_NOTIFICATION:
        if which == "signal_id":
            return SignalIndex(template.signal_id)
        if which == "signal_name":
            return SignalName(template.signal_name)
        raise ProtocolError("SignalNotification has neither a signal index nor a name")
    # proto3 leaves a zero completion id off the wire, so an absent id reads as 0.
    if which not in (None, "completion_id"):
        raise ProtocolError(f"{message_name(message_type)} is addressed by {which}")
    return CompletionId(template.completion_id)


def failure_of(failure: pb.Failure) -> Failure:
    """The WAL form of a protocol ``Failure`` (code, message and metadata)."""
    return Failure(
        failure.code,
        failure.message,
        tuple(FailureMetadata(m.key, m.value) for m in failure.metadata),
    )


def _result_of(message_type: int, template: pb.NotificationTemplate) -> NotificationResult:
    which = template.WhichOneof("result")
    if which == "void":
        return Void()
    if which == "value":
        return Value(template.value.content)
    if which == "failure":
        return failure_of(template.failure)
    if which == "invocation_id":
        try:
            return InvocationIdResult(InvocationId.parse(template.invocation_id))
        except IdParseError as exc:
            raise ProtocolError(f"{message_name(message_type)}: {exc}") from exc
    if which == "state_keys":
        return StateKeys(tuple(template.state_keys.keys))
    if message_type == _T.GET_LAZY_STATE_KEYS_COMPLETION:
        # An empty key list has nothing on the wire at all.
        return StateKeys(())
    raise ProtocolError(f"{message_name(message_type)} carries no result")
