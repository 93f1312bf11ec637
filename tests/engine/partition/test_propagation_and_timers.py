"""Kill and cancel reach the children an invocation waits for through a call (not its
one-way sends); an ended invocation's pending timers are deleted and unscheduled."""

from __future__ import annotations

from engine.ids import InvocationId
from engine.partition.actions import Action, CancelTimer, InvokeAction, RespondToIngress, SendOutbox
from engine.partition.state_machine.journal_commands import callee_invocation_id
from engine.partition.state_machine.journal_ops import CANCEL_SIGNAL
from engine.partition.state_machine.kill_cancel import CANCELED, KILLED
from engine.storage.invocation_status import StatusKind
from engine.wal import records as r
from tests.engine.partition.harness import T0, Partition, command, entry, invoke, object_target, pb, service_target


def _outbox_records(actions: list[Action]) -> list[r.Record]:
    return [a.record for a in actions if isinstance(a, SendOutbox)]


def _caller_with_children(part: Partition) -> tuple[InvocationId, InvocationId, InvocationId, InvocationId]:
    """A caller with: a call still pending, a call already answered, a one-way send.

    Returns (caller, pending callee, answered callee, sent callee)."""
    record = invoke(service_target(), 1)
    caller = record.invocation_id
    part.apply(record)
    pending = pb.CallCommandMessage(
        service_name="Hotel", handler_name="reserve", key="k", invocation_id_notification_idx=1, result_completion_id=2
    )
    part.apply(command(pending, caller, 1))  # + its invocation id notification at 2
    answered = pb.CallCommandMessage(
        service_name="Car", handler_name="rent", invocation_id_notification_idx=3, result_completion_id=4
    )
    part.apply(command(answered, caller, 3))  # + notification at 4
    part.apply(r.Notify(caller, r.CompletionId(4), r.Value(b'"car"')))  # the answer, at 5
    sent = pb.OneWayCallCommandMessage(service_name="Mail", handler_name="send", invocation_id_notification_idx=5)
    part.apply(command(sent, caller, 6))
    part.apply(r.InvocationSuspended(caller, (r.CompletionId(2),)))
    assert len(part.journal(caller)) == 8  # input, 3 commands, 3 invocation ids, 1 answer
    return (
        caller,
        callee_invocation_id(caller, 1, "Hotel", "k", "reserve", None),
        callee_invocation_id(caller, 3, "Car", None, "rent", None),
        callee_invocation_id(caller, 6, "Mail", None, "send", None),
    )


def test_kill_kills_the_pending_callee_only(part: Partition) -> None:
    caller, pending, answered, sent = _caller_with_children(part)
    actions = part.apply(r.KillInvocation(caller))
    assert _outbox_records(actions) == [r.KillInvocation(pending)]
    assert r.KillInvocation(answered) not in _outbox_records(actions)
    assert r.KillInvocation(sent) not in _outbox_records(actions)
    status = part.status(caller)
    assert status is not None and status.result == KILLED


def test_cancel_signals_the_pending_callee_and_resumes_the_caller(part: Partition) -> None:
    caller, pending, _, _ = _caller_with_children(part)
    actions = part.apply(r.CancelInvocation(caller))
    assert _outbox_records(actions) == [r.Notify(pending, CANCEL_SIGNAL, r.Void())]
    assert actions[-1] == InvokeAction(caller)
    assert part.journal(caller)[-1] == entry(pb.SignalNotificationMessage(idx=1, void=pb.Void()))
    # The SDK's own SendSignal(CANCEL) to its caller is a duplicate: nothing new.
    assert part.apply(r.Notify(caller, CANCEL_SIGNAL, r.Void())) == []


def test_cancel_signal_ends_an_invocation_that_has_not_started(part: Partition) -> None:
    first, queued = invoke(object_target("k"), 1), invoke(object_target("k"), 2)
    part.apply(first)
    part.apply(queued)
    actions = part.apply(r.Notify(queued.invocation_id, CANCEL_SIGNAL, r.Void()))
    assert actions[0] == RespondToIngress("node-1", "req-2", queued.invocation_id, CANCELED)
    status = part.status(queued.invocation_id)
    assert status is not None and status.kind is StatusKind.COMPLETED
    with part.read() as t:
        assert t.inbox.entries("Counter", "k") == []


def test_cancel_signal_to_a_suspended_callee_reaches_its_own_callee(part: Partition) -> None:
    # The signal a parent's SDK sends a child cancels the child's calls in turn.
    caller, pending, _, _ = _caller_with_children(part)
    actions = part.apply(r.Notify(caller, CANCEL_SIGNAL, r.Void()))
    assert _outbox_records(actions) == [r.Notify(pending, CANCEL_SIGNAL, r.Void())]


def test_kill_drops_the_sleep_timer(part: Partition) -> None:
    record = invoke(object_target("k"), 1)
    inv = record.invocation_id
    part.apply(record)
    part.apply(command(pb.SleepCommandMessage(wake_up_time=T0 + 60_000, result_completion_id=1), inv, 1))
    part.apply(r.InvocationSuspended(inv, (r.CompletionId(1),)))
    sleep = r.TimerKey(T0 + 60_000, inv, r.TimerKind.SLEEP, 1)
    actions = part.apply(r.KillInvocation(inv))
    assert CancelTimer(sleep) in actions
    with part.read() as t:
        assert [timer.kind for timer in t.timers.scan()] == [r.TimerKind.CLEANUP]
    # Had the leader fired it anyway, nothing would happen.
    assert part.apply(r.TimerFired(sleep), at_ms=T0 + 60_000) == []


def test_ending_drops_the_retry_timer_and_cancelling_a_scheduled_one_its_start(part: Partition) -> None:
    record = invoke(service_target(), 1)
    inv = record.invocation_id
    part.apply(record)
    part.apply(r.InvocationFailedAttempt(inv, 500, "boom", T0 + 5_000, 1))
    actions = part.apply(r.InvocationEnded(inv, r.Value(b"")))
    assert CancelTimer(r.TimerKey(T0 + 5_000, inv, r.TimerKind.RETRY)) in actions

    scheduled = invoke(service_target(), 2, execute_at_ms=T0 + 10_000)
    part.apply(scheduled)
    actions = part.apply(r.CancelInvocation(scheduled.invocation_id))
    assert CancelTimer(r.TimerKey(T0 + 10_000, scheduled.invocation_id, r.TimerKind.DELAYED_INVOKE)) in actions
    with part.read() as t:
        assert {timer.kind for timer in t.timers.scan()} == {r.TimerKind.CLEANUP}


def test_purge_drops_the_cleanup_timer(part: Partition) -> None:
    record = invoke(service_target(), 1)
    inv = record.invocation_id
    part.apply(record)
    part.apply(r.InvocationEnded(inv, r.Value(b"")))
    status = part.status(inv)
    assert status is not None and status.cleanup_at_ms is not None
    assert part.apply(r.PurgeInvocation(inv)) == [
        CancelTimer(r.TimerKey(status.cleanup_at_ms, inv, r.TimerKind.CLEANUP))
    ]
    with part.read() as t:
        assert list(t.timers.scan()) == []
