"""What appended commands do: state, lazy reads, sleep timers, calls and sends."""

from __future__ import annotations

import dataclasses

import pytest

from engine.ids import InvocationId
from restate_protocol import MessageType
from engine.partition.actions import ForwardNotification, InvokeAction, RegisterTimer, SendOutbox
from engine.partition.state_machine.journal_commands import callee_invocation_id
from engine.storage.invocation_status import StatusKind
from engine.storage.outbox import OutboxMessage
from engine.wal import records as r
from engine.wal.partitioning import partition_key_for_key
from tests.engine.partition.harness import (
    T0,
    Partition,
    command,
    decode,
    entry,
    invoke,
    object_target,
    pb,
    service_target,
)


def start_object(part: Partition, key: str = "k1", n: int = 1) -> r.Invoke:
    record = invoke(object_target(key), n)
    part.apply(record)
    return record


def test_set_and_clear_state(part: Partition) -> None:
    inv = start_object(part).invocation_id
    assert (
        part.apply(
            command(pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1")), inv, 1)
        )
        == []
    )
    part.apply(command(pb.SetStateCommandMessage(key=b"b", value=pb.Value(content=b"2")), inv, 2))
    with part.read() as t:
        assert t.state.get("Counter", "k1", b"a") == b"1"
        assert t.state.keys("Counter", "k1") == [b"a", b"b"]
    part.apply(command(pb.ClearStateCommandMessage(key=b"a"), inv, 3))
    with part.read() as t:
        assert t.state.keys("Counter", "k1") == [b"b"]
    part.apply(command(pb.ClearAllStateCommandMessage(), inv, 4))
    with part.read() as t:
        assert t.state.keys("Counter", "k1") == []
    status = part.status(inv)
    assert status is not None and (status.journal_length, status.commands) == (5, 5)
    assert [e.message_type for e in part.journal(inv)] == [
        MessageType.INPUT_COMMAND,
        MessageType.SET_STATE_COMMAND,
        MessageType.SET_STATE_COMMAND,
        MessageType.CLEAR_STATE_COMMAND,
        MessageType.CLEAR_ALL_STATE_COMMAND,
    ]


def test_commands_are_stored_verbatim(part: Partition) -> None:
    inv = start_object(part).invocation_id
    record = command(
        pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1"), name="n"), inv, 1
    )
    part.apply(record)
    assert part.journal(inv)[1].message == record.message


def test_lazy_state_reads_complete_immediately(part: Partition) -> None:
    inv = start_object(part).invocation_id
    part.apply(command(pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1")), inv, 1))
    actions = part.apply(
        command(pb.GetLazyStateCommandMessage(key=b"a", result_completion_id=1), inv, 2)
    )
    assert actions == [ForwardNotification(inv, 3, r.CompletionId(1))]
    part.apply(command(pb.GetLazyStateCommandMessage(key=b"zz", result_completion_id=2), inv, 4))
    part.apply(command(pb.GetLazyStateKeysCommandMessage(result_completion_id=3), inv, 6))
    journal = part.journal(inv)
    assert journal[3] == entry(
        pb.GetLazyStateCompletionNotificationMessage(completion_id=1, value=pb.Value(content=b"1"))
    )
    assert journal[5] == entry(
        pb.GetLazyStateCompletionNotificationMessage(completion_id=2, void=pb.Void())
    )
    keys = decode(journal[7])
    assert isinstance(keys, pb.GetLazyStateKeysCompletionNotificationMessage)
    assert list(keys.state_keys.keys) == [b"a"]
    status = part.status(inv)
    assert status is not None and (status.journal_length, status.commands) == (8, 5)


def test_sleep_registers_a_timer_that_completes_the_sleep(part: Partition) -> None:
    inv = start_object(part).invocation_id
    wake = T0 + 5_000
    timer = r.TimerKey(wake, inv, r.TimerKind.SLEEP, 1)
    assert part.apply(
        command(pb.SleepCommandMessage(wake_up_time=wake, result_completion_id=1), inv, 1)
    ) == [RegisterTimer(timer)]
    with part.read() as t:
        assert list(t.timers.scan()) == [timer]
    part.apply(r.InvocationSuspended(inv, (r.CompletionId(1),)))
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.SUSPENDED
    assert part.apply(r.TimerFired(timer), at_ms=wake) == [InvokeAction(inv)]
    assert part.journal(inv)[2] == entry(
        pb.SleepCompletionNotificationMessage(completion_id=1, void=pb.Void())
    )
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.INVOKED and status.waiting_for == ()


def test_call_sends_invoke_with_deterministic_callee_and_journals_its_id(part: Partition) -> None:
    caller = start_object(part).invocation_id
    call = pb.CallCommandMessage(
        service_name="Inventory",
        handler_name="reserve",
        parameter=b'{"sku":1}',
        headers=[pb.Header(key="h", value="v")],
        key="sku-1",
        invocation_id_notification_idx=1,
        result_completion_id=2,
    )
    actions = part.apply(command(call, caller, 1))
    callee = callee_invocation_id(caller, 1, "Inventory", "sku-1", "reserve", None)
    assert callee.partition_key == partition_key_for_key("Inventory", "sku-1")
    assert callee != callee_invocation_id(caller, 2, "Inventory", "sku-1", "reserve", None)
    expected_invoke = r.Invoke(
        invocation_id=callee,
        # A v1 record carries no call target: a keyed callee is an exclusive handler.
        target=r.InvocationTarget(
            "Inventory", "reserve", "sku-1", r.ServiceKind.VIRTUAL_OBJECT, r.HandlerKind.EXCLUSIVE
        ),
        argument=b'{"sku":1}',
        headers=(r.Header("h", "v"),),
        source=r.InvocationSource(caller, 1),
        response_sink=r.InvocationSink(caller, 2),
    )
    assert actions == [
        SendOutbox(0, callee.partition_key, expected_invoke),
        ForwardNotification(caller, 2, r.CompletionId(1)),
    ]
    with part.read() as t:
        assert list(t.outbox.scan()) == [OutboxMessage(0, callee.partition_key, expected_invoke)]
        assert t.fsm.next_outbox_sequence() == 1
    assert part.journal(caller)[2] == entry(
        pb.CallInvocationIdCompletionNotificationMessage(completion_id=1, invocation_id=str(callee))
    )


@pytest.mark.parametrize(
    "target",
    [
        r.CallTarget(r.ServiceKind.VIRTUAL_OBJECT, r.HandlerKind.SHARED),
        r.CallTarget(r.ServiceKind.WORKFLOW, r.HandlerKind.WORKFLOW),
        r.CallTarget(r.ServiceKind.VIRTUAL_OBJECT, r.HandlerKind.EXCLUSIVE),
    ],
)
def test_call_records_the_resolved_target_kind(part: Partition, target: r.CallTarget) -> None:
    caller = start_object(part).invocation_id
    call = pb.CallCommandMessage(
        service_name="Inventory",
        handler_name="peek",
        key="sku-1",
        invocation_id_notification_idx=1,
        result_completion_id=2,
    )
    append = dataclasses.replace(command(call, caller, 1), call_target=target)
    [send, _] = part.apply(append)
    assert isinstance(send, SendOutbox) and isinstance(send.record, r.Invoke)
    assert send.record.target == r.InvocationTarget(
        "Inventory", "peek", "sku-1", target.service_kind, target.handler_kind
    )


def test_call_with_idempotency_key_targets_the_idempotent_id(part: Partition) -> None:
    caller = start_object(part).invocation_id
    call = pb.CallCommandMessage(
        service_name="Pay",
        handler_name="charge",
        idempotency_key="order-9",
        invocation_id_notification_idx=1,
        result_completion_id=2,
    )
    [send, _] = part.apply(command(call, caller, 1))
    assert isinstance(send, SendOutbox) and isinstance(send.record, r.Invoke)
    assert send.record.idempotency_key == "order-9"
    assert send.record.invocation_id == callee_invocation_id(
        caller, 7, "Pay", None, "charge", "order-9"
    )
    assert send.record.target.service_kind is r.ServiceKind.SERVICE


def test_one_way_call_with_delay(part: Partition) -> None:
    caller = start_object(part).invocation_id
    send = pb.OneWayCallCommandMessage(
        service_name="Mailer",
        handler_name="send",
        parameter=b"x",
        invoke_time=T0 + 90_000,
        invocation_id_notification_idx=1,
    )
    actions = part.apply(command(send, caller, 1))
    [outbox] = [a for a in actions if isinstance(a, SendOutbox)]
    assert isinstance(outbox.record, r.Invoke)
    assert outbox.record.execute_at_ms == T0 + 90_000
    assert outbox.record.response_sink is None
    callee = outbox.record.invocation_id
    assert decode(part.journal(caller)[2]) == pb.CallInvocationIdCompletionNotificationMessage(
        completion_id=1, invocation_id=str(callee)
    )
    # Delivered to this partition (one partition): the callee is scheduled, not started.
    assert part.apply(outbox.record, dedup_id=r.DedupId("outbox/0", 0)) == [
        RegisterTimer(r.TimerKey(T0 + 90_000, callee, r.TimerKind.DELAYED_INVOKE))
    ]
    one_way_now = pb.OneWayCallCommandMessage(
        service_name="Mailer", handler_name="send", invocation_id_notification_idx=2
    )
    [now_send, _] = part.apply(command(one_way_now, caller, 3))
    assert isinstance(now_send, SendOutbox) and isinstance(now_send.record, r.Invoke)
    assert now_send.record.execute_at_ms is None


def test_duplicate_journal_append_index_is_ignored(part: Partition) -> None:
    inv = start_object(part).invocation_id
    set_a = command(pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1")), inv, 1)
    part.apply(set_a)
    before = part.journal(inv)
    other = command(pb.SetStateCommandMessage(key=b"b", value=pb.Value(content=b"2")), inv, 1)
    assert part.apply(set_a) == []
    assert part.apply(other) == []
    assert part.journal(inv) == before
    with part.read() as t:
        assert t.state.keys("Counter", "k1") == [b"a"]
    # An index beyond the end is ignored too.
    assert part.apply(command(pb.ClearAllStateCommandMessage(), inv, 5)) == []
    assert part.journal(inv) == before


def test_append_after_engine_written_notifications_goes_to_the_end(part: Partition) -> None:
    """The invoker does not count the call's invocation-id notification; the append still lands."""
    inv = start_object(part).invocation_id
    call = pb.CallCommandMessage(
        service_name="S", handler_name="h", invocation_id_notification_idx=1, result_completion_id=2
    )
    part.apply(command(call, inv, 1))
    part.apply(command(pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1")), inv, 2))
    journal = part.journal(inv)
    assert [e.message_type for e in journal] == [
        MessageType.INPUT_COMMAND,
        MessageType.CALL_COMMAND,
        MessageType.CALL_INVOCATION_ID_COMPLETION,
        MessageType.SET_STATE_COMMAND,
    ]
    # ... and re-sending it is recognized as a duplicate.
    assert (
        part.apply(
            command(pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1")), inv, 2)
        )
        == []
    )
    assert len(part.journal(inv)) == 4


def _sends_then_call(inv: InvocationId, *, numbered: bool) -> list[r.JournalAppend]:
    """What the invoker emits for ``[send, send, call]`` in one attempt (issue 13): entry
    indexes 1, 2, 3 (it cannot know the invocation ids the state machine journals after
    each), command indexes 1, 2, 3 from schema v5 on."""
    messages = [
        pb.OneWayCallCommandMessage(
            service_name="Tally", handler_name="add", key="t", invocation_id_notification_idx=1
        ),
        pb.OneWayCallCommandMessage(
            service_name="Tally", handler_name="add", key="t", invocation_id_notification_idx=2
        ),
        pb.CallCommandMessage(
            service_name="Tally", handler_name="add", key="t",
            invocation_id_notification_idx=3, result_completion_id=4,
        ),
    ]
    appends = [command(message, inv, i) for i, message in enumerate(messages, start=1)]
    if numbered:
        appends = [dataclasses.replace(a, command_index=a.entry_index) for a in appends]
    return appends


def test_numbered_commands_land_after_the_notifications_of_earlier_ones(part: Partition) -> None:
    inv = start_object(part).invocation_id
    sent = []
    for append in _sends_then_call(inv, numbered=True):
        sent += [a.record for a in part.apply(append) if isinstance(a, SendOutbox)]
    assert [e.message_type for e in part.journal(inv)] == [
        MessageType.INPUT_COMMAND,
        MessageType.ONE_WAY_CALL_COMMAND,
        MessageType.CALL_INVOCATION_ID_COMPLETION,
        MessageType.ONE_WAY_CALL_COMMAND,
        MessageType.CALL_INVOCATION_ID_COMPLETION,
        MessageType.CALL_COMMAND,
        MessageType.CALL_INVOCATION_ID_COMPLETION,
    ]
    # Three invokes for the callee, the call's with its response sink, in order.
    assert [isinstance(s, r.Invoke) and s.response_sink for s in sent] == [
        None, None, r.InvocationSink(inv, 4)
    ]
    status = part.status(inv)
    assert status is not None and status.commands == 4


def test_numbered_duplicates_and_gaps_are_ignored(part: Partition) -> None:
    inv = start_object(part).invocation_id
    first, second, third = _sends_then_call(inv, numbered=True)
    part.apply(first)
    part.apply(second)
    before = part.journal(inv)
    # The same commands again (a retried emit, a stale attempt): nothing happens.
    assert part.apply(first) == []
    assert part.apply(dataclasses.replace(second, entry_index=4)) == []
    # A command beyond the next one leaves a gap: ignored.
    assert part.apply(dataclasses.replace(third, command_index=4)) == []
    assert part.journal(inv) == before
    assert [a for a in part.apply(third) if isinstance(a, SendOutbox)]


def test_records_without_a_command_index_keep_the_rule_they_were_applied_with(
    part: Partition,
) -> None:
    """Schema v1-v4 appends are placed by ``entry_index``, so an old log replays into the
    journal it produced then, including the lost third command of issue 13."""
    inv = start_object(part).invocation_id
    first, second, third = _sends_then_call(inv, numbered=False)
    assert [a for a in part.apply(first) if isinstance(a, SendOutbox)]
    assert [a for a in part.apply(second) if isinstance(a, SendOutbox)]
    assert part.apply(third) == []
    assert len(part.journal(inv)) == 5


def test_append_for_invocation_not_running_is_ignored(part: Partition) -> None:
    inv = start_object(part).invocation_id
    part.apply(r.InvocationEnded(inv, r.Value(b"")))
    assert part.apply(command(pb.SetStateCommandMessage(key=b"a"), inv, 1)) == []
    with part.read() as t:
        assert t.state.keys("Counter", "k1") == []


def test_state_commands_of_plain_services_write_nothing(part: Partition) -> None:
    record = invoke(service_target(), 1)
    part.apply(record)
    part.apply(
        command(
            pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1")),
            record.invocation_id,
            1,
        )
    )
    assert len(part.journal(record.invocation_id)) == 2
    with part.read() as t:
        assert list(t.state.scan("Greeter", "")) == []


def test_unhandled_and_malformed_commands_are_journaled_without_crashing(part: Partition) -> None:
    inv = start_object(part).invocation_id
    part.apply(
        command(
            pb.SendSignalCommandMessage(target_invocation_id="x", idx=17, void=pb.Void()), inv, 1
        )
    )
    part.apply(command(pb.CompleteAwakeableCommandMessage(awakeable_id="prom_1x"), inv, 2))
    part.apply(command(pb.GetPromiseCommandMessage(key="p", result_completion_id=1), inv, 3))
    part.apply(r.JournalAppend(inv, 4, MessageType.SET_STATE_COMMAND, b"\xff\xff\xff"))
    part.apply(r.JournalAppend(inv, 5, 0xFC01, b"custom"))
    part.apply(command(pb.RunCommandMessage(result_completion_id=2, name="r"), inv, 6))
    assert len(part.journal(inv)) == 7
    # Non-commands are not journal appends.
    assert part.apply(r.JournalAppend(inv, 7, MessageType.SLEEP_COMPLETION, b"")) == []
    assert part.apply(r.JournalAppend(inv, 7, MessageType.INPUT_COMMAND, b"")) == []
    assert len(part.journal(inv)) == 7
