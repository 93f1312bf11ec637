"""Encoding Notify records into notification journal entries, and back."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message

from engine.ids import InvocationId, InvocationUuid, make_partition_key
from engine.journal.notifications import (
    ALLOWED_RESULTS,
    completion_types,
    decode_notification,
    encode_notification,
    journal_completion_types,
    notification_entry,
)
from restate_protocol import MessageType, ProtocolError, decode_frames, encode_raw_frame, pb
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

IID = InvocationId(make_partition_key(1), InvocationUuid(12345))
OTHER = InvocationId(make_partition_key(2), InvocationUuid(678))

SAMPLES: dict[type, NotificationResult] = {
    Void: Void(),
    Value: Value(b'{"a":1}'),
    Failure: Failure(409, "taken", (FailureMetadata("k", "v"),)),
    InvocationIdResult: InvocationIdResult(OTHER),
    StateKeys: StateKeys((b"a", b"b")),
}


def entry(message: Message, type_id: int) -> JournalEntry:
    return JournalEntry(type_id, message.SerializeToString())


def test_completion_types_per_command() -> None:
    call = pb.CallCommandMessage(service_name="S", invocation_id_notification_idx=3, result_completion_id=4)
    assert completion_types(MessageType.CALL_COMMAND, call.SerializeToString()) == {
        3: MessageType.CALL_INVOCATION_ID_COMPLETION,
        4: MessageType.CALL_COMPLETION,
    }
    send = pb.OneWayCallCommandMessage(invocation_id_notification_idx=5)
    assert completion_types(MessageType.ONE_WAY_CALL_COMMAND, send.SerializeToString()) == {
        5: MessageType.CALL_INVOCATION_ID_COMPLETION
    }
    sleep = pb.SleepCommandMessage(wake_up_time=10, result_completion_id=6, name="n")
    assert completion_types(MessageType.SLEEP_COMMAND, sleep.SerializeToString()) == {
        6: MessageType.SLEEP_COMPLETION
    }
    assert completion_types(MessageType.SET_STATE_COMMAND, b"") == {}
    assert completion_types(MessageType.OUTPUT_COMMAND, b"") == {}


def test_every_completable_command_maps_to_its_completion() -> None:
    # A completion's low byte matches its command's, except the call's invocation id.
    for command in (
        MessageType.GET_LAZY_STATE_COMMAND,
        MessageType.GET_LAZY_STATE_KEYS_COMMAND,
        MessageType.GET_PROMISE_COMMAND,
        MessageType.PEEK_PROMISE_COMMAND,
        MessageType.COMPLETE_PROMISE_COMMAND,
        MessageType.SLEEP_COMMAND,
        MessageType.RUN_COMMAND,
        MessageType.ATTACH_INVOCATION_COMMAND,
        MessageType.GET_INVOCATION_OUTPUT_COMMAND,
    ):
        body = pb.RunCommandMessage(result_completion_id=9).SerializeToString()
        assert completion_types(command, body) == {9: 0x8000 | (command & 0xFF)}


def test_corrupt_command_body_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="SleepCommand"):
        completion_types(MessageType.SLEEP_COMMAND, b"\xff\xff")


def test_journal_completion_types_rejects_reused_ids() -> None:
    run = entry(pb.RunCommandMessage(result_completion_id=1), MessageType.RUN_COMMAND)
    sleep = entry(pb.SleepCommandMessage(result_completion_id=1), MessageType.SLEEP_COMMAND)
    with pytest.raises(ProtocolError, match="completion id 1"):
        journal_completion_types([run, sleep])


@pytest.mark.parametrize("notification_type", sorted(ALLOWED_RESULTS), ids=lambda t: MessageType(t).name)
def test_every_allowed_result_round_trips(notification_type: int) -> None:
    nid: NotificationId
    for result_type in ALLOWED_RESULTS[notification_type]:
        result = SAMPLES[result_type]
        if notification_type == MessageType.SIGNAL_NOTIFICATION:
            nids: list[NotificationId] = [SignalIndex(17), SignalName("go")]
        else:
            nids = [CompletionId(3), CompletionId(0)]
        for nid in nids:
            encoded = encode_notification(Notify(IID, nid, result), notification_type)
            assert encoded.message_type == notification_type
            # The body parses as the concrete message type, not only as the template.
            frame = decode_frames(encode_raw_frame(encoded.message_type, encoded.message))[0]
            assert frame.message is not None
            assert decode_notification(encoded) == (nid, result)


def test_concrete_message_reads_what_the_template_wrote() -> None:
    encoded = encode_notification(Notify(IID, CompletionId(2), Value(b"x")), MessageType.RUN_COMPLETION)
    run = pb.RunCompletionNotificationMessage.FromString(encoded.message)
    assert (run.completion_id, run.value.content) == (2, b"x")
    call_id = encode_notification(
        Notify(IID, CompletionId(1), InvocationIdResult(OTHER)), MessageType.CALL_INVOCATION_ID_COMPLETION
    )
    decoded_id = pb.CallInvocationIdCompletionNotificationMessage.FromString(call_id.message)
    assert decoded_id.invocation_id == str(OTHER)
    sleep = encode_notification(Notify(IID, CompletionId(5), Void()), MessageType.SLEEP_COMPLETION)
    assert pb.SleepCompletionNotificationMessage.FromString(sleep.message).HasField("void")
    signal = encode_notification(Notify(IID, SignalName("s"), Failure(500, "no")))
    decoded = pb.SignalNotificationMessage.FromString(signal.message)
    assert (decoded.name, decoded.failure.code) == ("s", 500)


def test_empty_state_keys_survive_the_round_trip() -> None:
    encoded = encode_notification(
        Notify(IID, CompletionId(1), StateKeys(())), MessageType.GET_LAZY_STATE_KEYS_COMPLETION
    )
    assert decode_notification(encoded) == (CompletionId(1), StateKeys(()))


def test_result_kind_not_allowed_by_the_type_is_refused() -> None:
    with pytest.raises(ValueError, match="SleepCompletionNotification cannot carry a Value"):
        encode_notification(Notify(IID, CompletionId(1), Value(b"x")), MessageType.SLEEP_COMPLETION)


def test_completion_needs_a_completion_type_and_signals_a_signal_type() -> None:
    with pytest.raises(ValueError, match="needs the notification type"):
        encode_notification(Notify(IID, CompletionId(1), Void()))
    with pytest.raises(ValueError, match="cannot be sent as a SignalNotification"):
        encode_notification(Notify(IID, CompletionId(1), Void()), MessageType.SIGNAL_NOTIFICATION)
    with pytest.raises(ValueError, match="only be sent as a SignalNotification"):
        encode_notification(Notify(IID, SignalIndex(17), Void()), MessageType.SLEEP_COMPLETION)
    with pytest.raises(ValueError, match="not a notification type"):
        encode_notification(Notify(IID, CompletionId(1), Void()), MessageType.SLEEP_COMMAND)


def test_notification_entry_looks_the_type_up_in_the_journal() -> None:
    journal = [
        JournalEntry(MessageType.INPUT_COMMAND, b""),
        entry(
            pb.CallCommandMessage(invocation_id_notification_idx=1, result_completion_id=2),
            MessageType.CALL_COMMAND,
        ),
    ]
    types = journal_completion_types(journal)
    result = notification_entry(Notify(IID, CompletionId(2), Value(b"r")), types)
    assert result.message_type == MessageType.CALL_COMPLETION
    signal = notification_entry(Notify(IID, SignalIndex(1), Void()), types)
    assert signal.message_type == MessageType.SIGNAL_NOTIFICATION
    with pytest.raises(ValueError, match="no journal command allocated completion id 7"):
        notification_entry(Notify(IID, CompletionId(7), Void()), types)


def test_decoding_rejects_what_is_not_a_notification() -> None:
    with pytest.raises(ProtocolError, match="not a notification"):
        decode_notification(JournalEntry(MessageType.RUN_COMMAND, b""))
    with pytest.raises(ProtocolError, match="carries no result"):
        empty = pb.RunCompletionNotificationMessage(completion_id=1).SerializeToString()
        decode_notification(JournalEntry(MessageType.RUN_COMPLETION, empty))
    with pytest.raises(ProtocolError, match="neither a signal index nor a name"):
        decode_notification(JournalEntry(MessageType.SIGNAL_NOTIFICATION, b""))
    bad_id = pb.NotificationTemplate(invocation_id="inv_nope").SerializeToString()
    with pytest.raises(ProtocolError, match="invalid invocation id"):
        decode_notification(JournalEntry(MessageType.CALL_INVOCATION_ID_COMPLETION, bad_id))
