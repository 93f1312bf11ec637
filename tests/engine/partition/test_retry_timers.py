"""Failed attempts: the failure is recorded and a RETRY timer starts the next attempt."""

from __future__ import annotations

from engine.partition.actions import InvokeAction, RegisterTimer
from engine.storage.invocation_status import LastFailure, StatusKind
from engine.wal import records as r
from tests.engine.partition.harness import T0, Partition, command, invoke, pb, service_target


def test_failed_attempt_schedules_a_retry(part: Partition) -> None:
    record = invoke(service_target(), 1)
    inv = record.invocation_id
    part.apply(record)
    first_retry = r.TimerKey(T0 + 1_000, inv, r.TimerKind.RETRY)
    assert part.apply(r.InvocationFailedAttempt(inv, 500, "boom", T0 + 1_000, 1)) == [
        RegisterTimer(first_retry)
    ]
    status = part.status(inv)
    assert status is not None and status.kind is StatusKind.INVOKED
    assert status.last_failure == LastFailure(500, "boom", T0 + 1_000)
    assert (status.attempt, status.retries_since_last_entry) == (1, 1)
    assert part.apply(r.TimerFired(first_retry), at_ms=T0 + 1_000) == [InvokeAction(inv)]
    # A second failure replaces the pending retry; the journal growing resets the count.
    second_retry = r.TimerKey(T0 + 3_000, inv, r.TimerKind.RETRY)
    part.apply(r.InvocationFailedAttempt(inv, 503, "down", T0 + 3_000, 2))
    status = part.status(inv)
    assert status is not None and (status.attempt, status.retries_since_last_entry) == (2, 2)
    part.apply(command(pb.RunCommandMessage(result_completion_id=1), inv, 1))
    status = part.status(inv)
    assert status is not None and status.retries_since_last_entry == 0
    assert part.apply(r.TimerFired(second_retry), at_ms=T0 + 3_000) == [InvokeAction(inv)]


def test_the_failing_command_is_kept_with_the_last_failure(part: Partition) -> None:
    record = invoke(service_target(), 1)
    inv = record.invocation_id
    part.apply(record)
    part.apply(r.InvocationFailedAttempt(inv, 500, "wobbles", T0 + 1_000, 1, False, 2, "wobble", 0x0411))
    status = part.status(inv)
    assert status is not None and status.last_failure == LastFailure(500, "wobbles", T0 + 1_000, 2, "wobble", 0x0411)
    # The next failure replaces it, naming its own command or none.
    part.apply(r.InvocationFailedAttempt(inv, 503, "down", T0 + 3_000, 2))
    status = part.status(inv)
    assert status is not None and status.last_failure == LastFailure(503, "down", T0 + 3_000)


def test_stale_retry_timer_does_nothing(part: Partition) -> None:
    record = invoke(service_target(), 1)
    inv = record.invocation_id
    part.apply(record)
    part.apply(r.InvocationFailedAttempt(inv, 500, "a", T0 + 1_000, 1))
    part.apply(r.InvocationFailedAttempt(inv, 500, "b", T0 + 2_000, 2))
    # The first timer is still in the table but no longer the pending retry.
    assert part.apply(r.TimerFired(r.TimerKey(T0 + 1_000, inv, r.TimerKind.RETRY))) == []
    part.apply(r.InvocationEnded(inv, r.Value(b"")))
    assert part.apply(r.TimerFired(r.TimerKey(T0 + 2_000, inv, r.TimerKind.RETRY))) == []


def test_failed_attempt_of_not_running_invocation_is_ignored(part: Partition) -> None:
    unknown = invoke(service_target(), 1).invocation_id
    assert part.apply(r.InvocationFailedAttempt(unknown, 500, "x", T0, 1)) == []
    with part.read() as t:
        assert list(t.timers.scan()) == []
