"""Paused invocations (attempts used up, or an operator's pause) and resume; retention
carried by the records (idempotency, workflow, journal) and the cleanup that ends it."""

from __future__ import annotations

import dataclasses

from engine.ids import DeploymentId
from engine.partition.actions import AbortInvocation, CancelTimer, InvokeAction, RegisterTimer, SendOutbox
from engine.storage.invocation_status import LastFailure, StatusKind
from engine.wal import records as r
from tests.engine.partition.harness import T0, Partition, command, invoke, pb, service_target


def _paused(part: Partition) -> r.Invoke:
    record = invoke(service_target(), 1)
    part.apply(record)
    part.apply(command(pb.RunCommandMessage(result_completion_id=1), record.invocation_id, 1))
    paused = r.InvocationFailedAttempt(record.invocation_id, 570, "journal mismatch", T0 + 1, 3, paused=True)
    assert part.apply(paused) == []  # no retry timer
    return record


def test_used_up_attempts_pause_with_the_last_failure(part: Partition) -> None:
    inv = _paused(part).invocation_id
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.PAUSED and status.in_flight
    assert status.last_failure == LastFailure(570, "journal mismatch", T0 + 1)
    assert status.attempt == 3
    with part.read() as t:
        assert list(t.timers.scan()) == []
    # A notification lands while paused, but wakes nothing.
    assert part.apply(r.Notify(inv, r.CompletionId(1), r.Value(b"x"))) == []
    assert len(part.journal(inv)) == 3


def test_resume_runs_a_paused_invocation_with_fresh_attempts(part: Partition) -> None:
    inv = _paused(part).invocation_id
    assert part.apply(r.ResumeInvocation(inv)) == [InvokeAction(inv)]
    status = part.status(inv)
    assert status is not None and (status.kind, status.attempt) == (StatusKind.INVOKED, 0)
    # Resuming a running invocation changes nothing.
    assert part.apply(r.ResumeInvocation(inv)) == []


def test_resume_of_a_backing_off_invocation_retries_now(part: Partition) -> None:
    record = invoke(service_target(), 1)
    inv = record.invocation_id
    part.apply(record)
    part.apply(r.InvocationFailedAttempt(inv, 500, "boom", T0 + 60_000, 1))
    retry = r.TimerKey(T0 + 60_000, inv, r.TimerKind.RETRY)
    assert part.apply(r.ResumeInvocation(inv)) == [CancelTimer(retry), InvokeAction(inv)]
    assert part.apply(r.TimerFired(retry)) == []


def test_resume_of_a_suspended_invocation_runs_it(part: Partition) -> None:
    record = invoke(service_target(), 1)
    inv = record.invocation_id
    part.apply(record)
    part.apply(r.InvocationSuspended(inv, (r.CompletionId(1),)))
    assert part.apply(r.ResumeInvocation(inv)) == [InvokeAction(inv)]
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.INVOKED and status.waiting_for == ()


def test_resume_on_another_deployment_repins_a_paused_or_suspended_invocation(part: Partition) -> None:
    first, second = DeploymentId.generate(), DeploymentId.generate()
    inv = _paused(part).invocation_id
    part.apply(r.DeploymentPinned(inv, first, 6))
    assert part.apply(r.ResumeInvocation(inv, second)) == [InvokeAction(inv)]
    status = part.status(inv)
    assert status is not None and (status.kind, status.deployment_id, status.protocol_version) == (
        StatusKind.INVOKED, second, 6,
    )
    # A running invocation keeps its deployment (the admin API refuses this; a record
    # that raced with the resume of the invocation lands here).
    assert part.apply(r.ResumeInvocation(inv, first)) == []
    assert (status := part.status(inv)) is not None and status.deployment_id == second
    part.apply(r.InvocationSuspended(inv, (r.CompletionId(1),)))
    assert part.apply(r.ResumeInvocation(inv, first)) == [InvokeAction(inv)]
    assert (status := part.status(inv)) is not None and status.deployment_id == first


def test_resume_on_another_deployment_pins_nothing_that_was_not_pinned(part: Partition) -> None:
    inv = _paused(part).invocation_id
    assert part.apply(r.ResumeInvocation(inv, DeploymentId.generate())) == [InvokeAction(inv)]
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.INVOKED and status.deployment_id is None


def test_pause_of_a_running_invocation_aborts_it(part: Partition) -> None:
    record = invoke(service_target(), 1)
    inv = record.invocation_id
    part.apply(record)
    assert part.apply(r.PauseInvocation(inv)) == [AbortInvocation(inv)]
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.PAUSED
    # The aborted attempt's late records change nothing.
    assert part.apply(r.InvocationEnded(inv, r.Value(b""))) == []
    assert part.apply(r.PauseInvocation(inv)) == []


def test_cancel_wakes_a_paused_invocation(part: Partition) -> None:
    inv = _paused(part).invocation_id
    assert part.apply(r.CancelInvocation(inv)) == [InvokeAction(inv)]
    status = part.status(inv)
    assert status is not None and (status.kind, status.attempt) == (StatusKind.INVOKED, 0)


def test_completion_retention_of_the_record_sets_the_cleanup_and_the_id_runs_again(part: Partition) -> None:
    record = dataclasses.replace(invoke(service_target(), 1, idempotency_key="k"), completion_retention_ms=2_000)
    inv = record.invocation_id
    part.apply(record)
    [_, timer] = part.apply(r.InvocationEnded(inv, r.Value(b'"once"')))
    assert isinstance(timer, RegisterTimer) and timer.timer.kind is r.TimerKind.CLEANUP
    status = part.status(inv)
    assert status is not None and status.cleanup_at_ms == timer.timer.fire_at_ms
    assert status.completion_retention_ms == 2_000 and timer.timer.fire_at_ms - status.modified_at_ms == 2_000
    assert part.journal(inv) == []
    part.apply(r.TimerFired(timer.timer), at_ms=timer.timer.fire_at_ms)
    assert part.status(inv) is None
    # The same id (same idempotency key) is a new invocation now.
    assert part.apply(dataclasses.replace(record, response_sink=r.IngressSink("node-1", "again"))) == [
        InvokeAction(inv)
    ]


def test_journal_retention_keeps_the_journal_until_the_cleanup(part: Partition) -> None:
    record = dataclasses.replace(invoke(service_target(), 1), journal_retention_ms=600_000)
    inv = record.invocation_id
    part.apply(record)
    part.apply(command(pb.OutputCommandMessage(value=pb.Value(content=b"1")), inv, 1))
    [_, timer] = part.apply(r.InvocationEnded(inv, r.Value(b"1")))
    assert isinstance(timer, RegisterTimer)
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.COMPLETED and status.journal_length == 2
    assert len(part.journal(inv)) == 2
    # Kept as long as the default retention (1 h), which is longer than the journal's.
    assert timer.timer.fire_at_ms - status.modified_at_ms == part.options.completed_retention_ms
    part.apply(r.TimerFired(timer.timer), at_ms=timer.timer.fire_at_ms)
    assert part.journal(inv) == [] and part.status(inv) is None


def test_a_call_gives_the_callee_its_retention(part: Partition) -> None:
    record = invoke(service_target(), 1)
    caller = record.invocation_id
    part.apply(record)
    settings = r.CallTarget(r.ServiceKind.SERVICE, None, 5_000, None, 60_000)
    plain = pb.CallCommandMessage(service_name="S", handler_name="h", invocation_id_notification_idx=1, result_completion_id=2)
    idem = pb.CallCommandMessage(
        service_name="S", handler_name="h", idempotency_key="i", invocation_id_notification_idx=3, result_completion_id=4
    )
    invokes = []
    for message, index in ((plain, 1), (idem, 3)):
        actions = part.apply(dataclasses.replace(command(message, caller, index), call_target=settings))
        invokes += [a.record for a in actions if isinstance(a, SendOutbox) and isinstance(a.record, r.Invoke)]
    assert [(i.completion_retention_ms, i.journal_retention_ms) for i in invokes] == [(None, 60_000), (5_000, 60_000)]
    workflow = r.CallTarget(r.ServiceKind.WORKFLOW, r.HandlerKind.WORKFLOW, 5_000, 7_000, None)
    assert workflow.completion_retention_ms(idempotent=False) == 7_000
