"""Suspension and notifications: resume when awaited, immediately if already there."""

from __future__ import annotations

from engine.partition.actions import ForwardNotification, InvokeAction
from engine.storage.invocation_status import StatusKind
from engine.wal import records as r
from tests.engine.partition.harness import Partition, command, entry, invoke, pb, service_target


def running_with_run(part: Partition) -> r.Invoke:
    record = invoke(service_target(), 1)
    part.apply(record)
    part.apply(command(pb.RunCommandMessage(result_completion_id=1), record.invocation_id, 1))
    part.apply(command(pb.RunCommandMessage(result_completion_id=2), record.invocation_id, 2))
    return record


def test_suspend_then_notify_resumes(part: Partition) -> None:
    inv = running_with_run(part).invocation_id
    assert part.apply(r.InvocationSuspended(inv, (r.CompletionId(1),))) == []
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.SUSPENDED
    assert status.waiting_for == (r.CompletionId(1),)
    # A notification nobody waits for is journaled but does not resume.
    assert part.apply(r.Notify(inv, r.CompletionId(2), r.Value(b"two"))) == []
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.SUSPENDED
    assert part.apply(r.Notify(inv, r.CompletionId(1), r.Failure(500, "boom"))) == [
        InvokeAction(inv)
    ]
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.INVOKED and status.waiting_for == ()
    journal = part.journal(inv)
    assert journal[3] == entry(
        pb.RunCompletionNotificationMessage(completion_id=2, value=pb.Value(content=b"two"))
    )
    assert journal[4] == entry(
        pb.RunCompletionNotificationMessage(
            completion_id=1, failure=pb.Failure(code=500, message="boom")
        )
    )
    assert status.journal_length == 5 and status.commands == 3


def test_suspension_after_the_notification_arrived_resumes_at_once(part: Partition) -> None:
    inv = running_with_run(part).invocation_id
    assert part.apply(r.Notify(inv, r.CompletionId(1), r.Value(b"v"))) == [
        ForwardNotification(inv, 3, r.CompletionId(1))
    ]
    assert part.apply(r.InvocationSuspended(inv, (r.CompletionId(2), r.CompletionId(1)))) == [
        InvokeAction(inv)
    ]
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.INVOKED


def test_duplicate_notify_is_journaled_once(part: Partition) -> None:
    inv = running_with_run(part).invocation_id
    part.apply(r.Notify(inv, r.CompletionId(1), r.Value(b"v")))
    assert part.apply(r.Notify(inv, r.CompletionId(1), r.Value(b"other"))) == []
    assert len(part.journal(inv)) == 4


def test_notify_that_does_not_fit_the_command_is_dropped(part: Partition) -> None:
    inv = running_with_run(part).invocation_id
    # Completion 9 was never announced; a run cannot complete with state keys.
    assert part.apply(r.Notify(inv, r.CompletionId(9), r.Value(b"v"))) == []
    assert part.apply(r.Notify(inv, r.CompletionId(1), r.StateKeys(()))) == []
    assert len(part.journal(inv)) == 3


def test_signals_need_no_announcement(part: Partition) -> None:
    inv = running_with_run(part).invocation_id
    part.apply(r.InvocationSuspended(inv, (r.SignalIndex(17),)))
    assert part.apply(r.Notify(inv, r.SignalIndex(17), r.Value(b"awoken"))) == [InvokeAction(inv)]
    assert part.journal(inv)[3] == entry(
        pb.SignalNotificationMessage(idx=17, value=pb.Value(content=b"awoken"))
    )
    part.apply(r.Notify(inv, r.SignalName("ready"), r.Void()))
    assert part.journal(inv)[4] == entry(pb.SignalNotificationMessage(name="ready", void=pb.Void()))


def test_notify_for_unknown_or_completed_invocation_is_ignored(part: Partition) -> None:
    inv = running_with_run(part).invocation_id
    part.apply(r.InvocationEnded(inv, r.Value(b"")))
    before = part.dump()
    assert part.apply(r.Notify(inv, r.CompletionId(1), r.Value(b"v"))) == []
    unknown = invoke(service_target(), 99).invocation_id
    assert part.apply(r.Notify(unknown, r.CompletionId(1), r.Value(b"v"))) == []
    after = part.dump()
    del before["fsm"], after["fsm"]
    assert before == after


def test_suspension_of_a_not_running_invocation_is_ignored(part: Partition) -> None:
    unknown = invoke(service_target(), 99).invocation_id
    assert part.apply(r.InvocationSuspended(unknown, (r.CompletionId(1),))) == []
    assert part.status(unknown) is None
