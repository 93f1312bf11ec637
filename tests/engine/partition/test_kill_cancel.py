"""Kill ends at once with 409 "killed" and frees the key; cancel delivers the CANCEL signal."""

from __future__ import annotations

from engine.partition.actions import (
    AbortInvocation,
    InvokeAction,
    RegisterTimer,
    RespondToIngress,
    SendOutbox,
)
from engine.partition.state_machine.kill_cancel import CANCELED, KILLED
from engine.storage.invocation_status import StatusKind
from engine.wal import records as r
from tests.engine.partition.harness import (
    Partition,
    command,
    entry,
    invoke,
    object_target,
    pb,
    service_target,
)


def test_kill_releases_the_lock_and_the_next_queued_call_runs(part: Partition) -> None:
    first, second = invoke(object_target("k"), 1), invoke(object_target("k"), 2)
    part.apply(first)
    part.apply(second)
    actions = part.apply(r.KillInvocation(first.invocation_id))
    assert KILLED == r.Failure(409, "killed")
    assert actions[0] == AbortInvocation(first.invocation_id)
    assert actions[1] == RespondToIngress("node-1", "req-1", first.invocation_id, KILLED)
    assert isinstance(actions[2], RegisterTimer) and actions[2].timer.kind is r.TimerKind.CLEANUP
    assert actions[3] == InvokeAction(second.invocation_id)
    status = part.status(first.invocation_id)
    assert status is not None and status.kind is StatusKind.COMPLETED and status.result == KILLED
    assert part.journal(first.invocation_id) == []
    with part.read() as t:
        assert t.locks.holder("Counter", "k") == second.invocation_id
    # Killing again, or a completed invocation: nothing.
    assert part.apply(r.KillInvocation(first.invocation_id)) == []


def test_kill_of_a_suspended_caller_answers_its_caller(part: Partition) -> None:
    caller = invoke(service_target(), 1)
    part.apply(caller)
    callee_invoke = r.Invoke(
        invocation_id=invoke(service_target("Callee"), 2).invocation_id,
        target=service_target("Callee"),
        argument=b"",
        response_sink=r.InvocationSink(caller.invocation_id, 5),
    )
    part.apply(callee_invoke)
    part.apply(r.InvocationSuspended(callee_invoke.invocation_id, (r.CompletionId(1),)))
    actions = part.apply(r.KillInvocation(callee_invoke.invocation_id))
    assert actions[0] == AbortInvocation(callee_invoke.invocation_id)
    assert actions[1] == SendOutbox(
        0,
        caller.invocation_id.partition_key,
        r.Notify(caller.invocation_id, r.CompletionId(5), KILLED),
    )


def test_kill_of_an_inboxed_invocation_removes_it_from_the_inbox(part: Partition) -> None:
    first, second, third = (invoke(object_target("k"), n) for n in (1, 2, 3))
    for record in (first, second, third):
        part.apply(record)
    actions = part.apply(r.KillInvocation(second.invocation_id))
    assert AbortInvocation(second.invocation_id) not in actions
    assert actions[0] == RespondToIngress("node-1", "req-2", second.invocation_id, KILLED)
    with part.read() as t:
        assert [e.invocation_id for e in t.inbox.entries("Counter", "k")] == [third.invocation_id]
        assert t.locks.holder("Counter", "k") == first.invocation_id
    assert part.apply(r.InvocationEnded(first.invocation_id, r.Value(b"")))[-1] == InvokeAction(
        third.invocation_id
    )


def test_kill_of_unknown_invocation_still_aborts(part: Partition) -> None:
    unknown = invoke(service_target(), 1).invocation_id
    assert part.apply(r.KillInvocation(unknown)) == [AbortInvocation(unknown)]


def test_cancel_running_delivers_the_signal_and_resumes_if_suspended(part: Partition) -> None:
    record = invoke(service_target(), 1)
    inv = record.invocation_id
    part.apply(record)
    part.apply(command(pb.RunCommandMessage(result_completion_id=1), inv, 1))
    part.apply(r.InvocationSuspended(inv, (r.CompletionId(1),)))
    assert part.apply(r.CancelInvocation(inv)) == [InvokeAction(inv)]
    assert part.journal(inv)[-1] == entry(pb.SignalNotificationMessage(idx=1, void=pb.Void()))
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.INVOKED
    # Cancelled twice: the signal is journaled once.
    assert part.apply(r.CancelInvocation(inv)) == []
    assert len(part.journal(inv)) == 3


def test_cancel_before_start_ends_with_canceled(part: Partition) -> None:
    first, second = invoke(object_target("k"), 1), invoke(object_target("k"), 2)
    part.apply(first)
    part.apply(second)
    actions = part.apply(r.CancelInvocation(second.invocation_id))
    assert actions[0] == RespondToIngress("node-1", "req-2", second.invocation_id, CANCELED)
    assert CANCELED == r.Failure(409, "canceled")
    with part.read() as t:
        assert t.inbox.entries("Counter", "k") == []
    scheduled = invoke(service_target(), 3, execute_at_ms=part.now_ms + 10_000)
    part.apply(scheduled)
    part.apply(r.CancelInvocation(scheduled.invocation_id))
    status = part.status(scheduled.invocation_id)
    assert status is not None and status.result == CANCELED
    # Its DELAYED_INVOKE timer fires into a completed invocation: nothing starts.
    timer = r.TimerKey(
        scheduled.execute_at_ms or 0, scheduled.invocation_id, r.TimerKind.DELAYED_INVOKE
    )
    assert part.apply(r.TimerFired(timer)) == []
