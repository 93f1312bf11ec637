"""The type id registry, and the wire facts our .proto must share with Restate."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message

from restate_protocol import (
    MessageKind,
    MessageType,
    ProtocolError,
    allows_ack,
    is_command,
    is_control,
    is_custom,
    is_notification,
    kind_of,
    message_name,
    pb,
    spec_for_id,
    spec_for_message,
)
from restate_protocol.messages import PAYLOAD_TYPES, SPECS_BY_CLASS, SPECS_BY_ID


def _param_id(value: object) -> str:
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, int):
        return f"{value:#06x}"
    return str(value)


def _all_top_level_classes() -> set[type[Message]]:
    return {getattr(pb, name) for name in pb.DESCRIPTOR.message_types_by_name}


def test_every_proto_message_is_a_frame_or_a_payload_type() -> None:
    classes = _all_top_level_classes()
    frames = set(SPECS_BY_CLASS)
    assert frames | PAYLOAD_TYPES == classes
    assert not frames & PAYLOAD_TYPES


def test_every_frame_class_has_exactly_one_id() -> None:
    ids_per_class: dict[type[Message], list[int]] = {}
    for type_id, spec in SPECS_BY_ID.items():
        ids_per_class.setdefault(spec.cls, []).append(type_id)
    assert all(len(ids) == 1 for ids in ids_per_class.values()), ids_per_class
    assert set(ids_per_class) == set(SPECS_BY_CLASS)


def test_ids_are_unique_and_match_the_enum() -> None:
    assert len({int(t) for t in MessageType}) == len(MessageType)
    assert set(SPECS_BY_ID) == {int(t) for t in MessageType}


# The protocol's message type ids (the part that must match Restate byte for byte).
EXPECTED_IDS: dict[type[Message], int] = {
    pb.StartMessage: 0x0000,
    pb.SuspensionMessage: 0x0001,
    pb.ErrorMessage: 0x0002,
    pb.EndMessage: 0x0003,
    pb.CommandAckMessage: 0x0004,
    pb.ProposeRunCompletionMessage: 0x0005,
    pb.AwaitingOnMessage: 0x0006,
    pb.ProposeRunCompletionAckMessage: 0x0007,
    pb.InputCommandMessage: 0x0400,
    pb.OutputCommandMessage: 0x0401,
    pb.GetLazyStateCommandMessage: 0x0402,
    pb.SetStateCommandMessage: 0x0403,
    pb.ClearStateCommandMessage: 0x0404,
    pb.ClearAllStateCommandMessage: 0x0405,
    pb.GetLazyStateKeysCommandMessage: 0x0406,
    pb.GetEagerStateCommandMessage: 0x0407,
    pb.GetEagerStateKeysCommandMessage: 0x0408,
    pb.GetPromiseCommandMessage: 0x0409,
    pb.PeekPromiseCommandMessage: 0x040A,
    pb.CompletePromiseCommandMessage: 0x040B,
    pb.SleepCommandMessage: 0x040C,
    pb.CallCommandMessage: 0x040D,
    pb.OneWayCallCommandMessage: 0x040E,
    pb.SendSignalCommandMessage: 0x0410,
    pb.RunCommandMessage: 0x0411,
    pb.AttachInvocationCommandMessage: 0x0412,
    pb.GetInvocationOutputCommandMessage: 0x0413,
    pb.CompleteAwakeableCommandMessage: 0x0414,
    pb.GetLazyStateCompletionNotificationMessage: 0x8002,
    pb.GetLazyStateKeysCompletionNotificationMessage: 0x8006,
    pb.GetPromiseCompletionNotificationMessage: 0x8009,
    pb.PeekPromiseCompletionNotificationMessage: 0x800A,
    pb.CompletePromiseCompletionNotificationMessage: 0x800B,
    pb.SleepCompletionNotificationMessage: 0x800C,
    pb.CallCompletionNotificationMessage: 0x800D,
    pb.CallInvocationIdCompletionNotificationMessage: 0x800E,
    pb.RunCompletionNotificationMessage: 0x8011,
    pb.AttachInvocationCompletionNotificationMessage: 0x8012,
    pb.GetInvocationOutputCompletionNotificationMessage: 0x8013,
    pb.SignalNotificationMessage: 0xFBFF,
}


@pytest.mark.parametrize("cls,type_id", EXPECTED_IDS.items(), ids=_param_id)
def test_type_ids_match_the_protocol(cls: type[Message], type_id: int) -> None:
    assert spec_for_message(cls()).type_id == type_id
    assert spec_for_id(type_id).cls is cls


def test_expected_table_is_complete() -> None:
    assert set(EXPECTED_IDS) == set(SPECS_BY_CLASS)


def test_kinds_follow_the_ranges_and_names() -> None:
    for type_id, spec in SPECS_BY_ID.items():
        assert spec.kind is kind_of(type_id)
        name = spec.cls.DESCRIPTOR.name
        if spec.kind is MessageKind.COMMAND:
            assert is_command(type_id) and name.endswith("CommandMessage")
            assert spec.allows_ack
        elif spec.kind is MessageKind.NOTIFICATION:
            assert is_notification(type_id) and name.endswith("NotificationMessage")
            assert not spec.allows_ack
        else:
            assert spec.kind is MessageKind.CONTROL and is_control(type_id)
            assert spec.allows_ack == (type_id == MessageType.PROPOSE_RUN_COMPLETION)
        assert not is_custom(type_id)


def test_range_predicates_at_the_boundaries() -> None:
    assert is_control(0x03FF) and not is_command(0x03FF)
    assert is_command(0x0400) and is_command(0x7FFF)
    assert is_notification(0x8000) and is_notification(0xFBFF)
    assert is_custom(0xFC00) and is_custom(0xFFFF)
    assert not is_notification(0xFC00)
    assert kind_of(0xFC00) is MessageKind.CUSTOM
    with pytest.raises(ValueError):
        kind_of(0x10000)


def test_names_for_logging() -> None:
    assert message_name(0x0000) == "Start"
    assert message_name(0x0411) == "RunCommand"
    assert message_name(0x800E) == "CallInvocationIdCompletionNotification"
    assert message_name(0xFBFF) == "SignalNotification"
    assert message_name(0xFC07) == "Custom(0xfc07)"
    assert message_name(0x0415) == "Unknown(0x0415)"


def test_allows_ack() -> None:
    assert allows_ack(MessageType.CALL_COMMAND)
    assert allows_ack(MessageType.PROPOSE_RUN_COMPLETION)
    assert allows_ack(0xFC01)
    assert not allows_ack(MessageType.START)
    assert not allows_ack(MessageType.CALL_COMPLETION)
    assert not allows_ack(0x0415)


def test_versions_of_late_messages() -> None:
    assert spec_for_id(MessageType.AWAITING_ON).since_version == 7
    assert spec_for_id(MessageType.PROPOSE_RUN_COMPLETION_ACK).since_version == 7
    assert spec_for_id(MessageType.RUN_COMMAND).since_version == 5


def test_unknown_id_lookup_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="0x0415"):
        spec_for_id(0x0415)
    with pytest.raises(ProtocolError):
        spec_for_id(0xFC00)  # custom entries have no class


# Field numbers that carry the protocol's meaning (a renumbering here would silently
# break interop with every SDK): (message, field name, number).
FIELD_NUMBERS: list[tuple[type[Message], str, int]] = [
    (pb.StartMessage, "id", 1),
    (pb.StartMessage, "debug_id", 2),
    (pb.StartMessage, "known_entries", 3),
    (pb.StartMessage, "state_map", 4),
    (pb.StartMessage, "partial_state", 5),
    (pb.StartMessage, "key", 6),
    (pb.StartMessage, "retry_count_since_last_stored_entry", 7),
    (pb.StartMessage, "duration_since_last_stored_entry", 8),
    (pb.StartMessage, "random_seed", 9),
    (pb.StartMessage, "scope", 10),
    (pb.StartMessage, "limit_key", 11),
    (pb.StartMessage, "idempotency_key", 12),
    (pb.SuspensionMessage, "waiting_completions", 1),
    (pb.SuspensionMessage, "waiting_signals", 2),
    (pb.SuspensionMessage, "waiting_named_signals", 3),
    (pb.SuspensionMessage, "awaiting_on", 4),
    (pb.ErrorMessage, "next_retry_delay", 8),
    (pb.ErrorMessage, "behavior", 9),
    (pb.ProposeRunCompletionMessage, "result_completion_id", 1),
    (pb.ProposeRunCompletionMessage, "value", 14),
    (pb.ProposeRunCompletionMessage, "failure", 15),
    (pb.InputCommandMessage, "headers", 1),
    (pb.InputCommandMessage, "value", 14),
    (pb.OutputCommandMessage, "value", 14),
    (pb.OutputCommandMessage, "failure", 15),
    (pb.GetEagerStateCommandMessage, "void", 13),
    (pb.GetEagerStateCommandMessage, "value", 14),
    (pb.SetStateCommandMessage, "value", 3),
    (pb.CallCommandMessage, "key", 5),
    (pb.CallCommandMessage, "idempotency_key", 6),
    (pb.CallCommandMessage, "invocation_id_notification_idx", 10),
    (pb.CallCommandMessage, "result_completion_id", 11),
    (pb.OneWayCallCommandMessage, "invoke_time", 4),
    (pb.OneWayCallCommandMessage, "headers", 5),
    (pb.OneWayCallCommandMessage, "idempotency_key", 7),
    (pb.SendSignalCommandMessage, "entry_name", 12),
    (pb.CallInvocationIdCompletionNotificationMessage, "invocation_id", 16),
    (pb.GetLazyStateKeysCompletionNotificationMessage, "state_keys", 17),
    (pb.CompleteAwakeableCommandMessage, "value", 2),
    (pb.SignalNotificationMessage, "idx", 2),
    (pb.SignalNotificationMessage, "name", 3),
    (pb.Failure, "metadata", 3),
]


@pytest.mark.parametrize(
    "cls,field,number", FIELD_NUMBERS, ids=[f"{cls.__name__}.{field}" for cls, field, _ in FIELD_NUMBERS]
)
def test_field_numbers(cls: type[Message], field: str, number: int) -> None:
    assert cls.DESCRIPTOR.fields_by_name[field].number == number


def test_every_command_and_notification_names_its_entry_or_completion() -> None:
    # Commands carry an entry name at 12 (SendSignal calls it entry_name); completion
    # notifications carry completion_id at 1. The runtime relies on both positions.
    for spec in SPECS_BY_ID.values():
        fields = spec.cls.DESCRIPTOR.fields_by_number
        if spec.kind is MessageKind.COMMAND:
            assert 12 in fields, spec.name
        elif spec.kind is MessageKind.NOTIFICATION and spec.type_id != MessageType.SIGNAL_NOTIFICATION:
            assert fields[1].name == "completion_id", spec.name
