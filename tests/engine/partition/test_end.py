"""Ending: answer ingress and callers, release the lock, keep the result, clean up."""

from __future__ import annotations

from pathlib import Path

from engine.partition.actions import InvokeAction, RegisterTimer, RespondToIngress, SendOutbox
from engine.partition.state_machine import StateMachineOptions
from engine.storage.invocation_status import StatusKind
from engine.partition.state_machine.attach import NOT_FOUND
from engine.wal import records as r
from tests.engine.partition.harness import (
    T0,
    Partition,
    command,
    entry,
    invoke,
    object_target,
    pb,
    service_target,
)

HOUR = 3_600_000


def test_end_answers_ingress_and_retains_the_result(part: Partition) -> None:
    record = invoke(service_target(), 1)
    part.apply(record)
    inv = record.invocation_id
    part.apply(command(pb.OutputCommandMessage(value=pb.Value(content=b"hi")), inv, 1))
    status = part.status(inv)
    assert status is not None and status.result == r.Value(b"hi")
    ended_at = part.now_ms
    actions = part.apply(r.InvocationEnded(inv, r.Value(b"hi")))
    cleanup = r.TimerKey(ended_at + HOUR, inv, r.TimerKind.CLEANUP)
    assert actions == [
        RespondToIngress("node-1", "req-1", inv, r.Value(b"hi")),
        RegisterTimer(cleanup),
    ]
    status = part.status(inv)
    assert status is not None
    assert status.kind is StatusKind.COMPLETED and status.result == r.Value(b"hi")
    assert status.cleanup_at_ms == ended_at + HOUR and status.response_sinks == ()
    assert part.journal(inv) == []
    # Retention over: the cleanup timer forgets it.
    assert part.apply(r.TimerFired(cleanup), at_ms=ended_at + HOUR) == []
    assert part.status(inv) is None
    with part.read() as t:
        assert list(t.timers.scan()) == []


def test_idempotent_invocations_are_kept_a_day(part: Partition) -> None:
    record = invoke(service_target(), 1, idempotency_key="once")
    part.apply(record)
    part.apply(r.InvocationEnded(record.invocation_id, r.Value(b"")), at_ms=T0 + 10)
    status = part.status(record.invocation_id)
    assert status is not None and status.cleanup_at_ms == T0 + 10 + 24 * HOUR


def test_zero_retention_deletes_at_once(tmp_path: Path) -> None:
    p = Partition(tmp_path / "d", options=StateMachineOptions(completed_retention_ms=0))
    try:
        record = invoke(service_target(), 1)
        p.apply(record)
        actions = p.apply(r.InvocationEnded(record.invocation_id, r.Failure(500, "no")))
        assert actions == [
            RespondToIngress("node-1", "req-1", record.invocation_id, r.Failure(500, "no"))
        ]
        assert p.status(record.invocation_id) is None
        with p.read() as t:
            assert list(t.timers.scan()) == []
    finally:
        p.close()


def test_callee_result_goes_back_to_the_caller_through_the_outbox(part: Partition) -> None:
    caller_record = invoke(object_target("k"), 1)
    part.apply(caller_record)
    caller = caller_record.invocation_id
    call = pb.CallCommandMessage(
        service_name="Greeter",
        handler_name="greet",
        invocation_id_notification_idx=1,
        result_completion_id=2,
    )
    [send, _] = part.apply(command(call, caller, 1))
    assert isinstance(send, SendOutbox) and isinstance(send.record, r.Invoke)
    part.apply(r.InvocationSuspended(caller, (r.CompletionId(2),)))
    # The shuffle delivers the call (single partition: to ourselves) and truncates.
    callee = send.record.invocation_id
    assert part.apply(send.record, dedup_id=r.DedupId("outbox/0", 0)) == [InvokeAction(callee)]
    part.apply(r.OutboxTruncate(0), epoch=None)
    actions = part.apply(r.InvocationEnded(callee, r.Value(b'"hello"')))
    notify = r.Notify(caller, r.CompletionId(2), r.Value(b'"hello"'))
    assert actions[0] == SendOutbox(1, caller.partition_key, notify)
    with part.read() as t:
        assert [m.sequence for m in t.outbox.scan()] == [1]
    # Delivered back: the caller gets a CallCompletionNotification and resumes.
    assert part.apply(notify, dedup_id=r.DedupId("outbox/0", 1)) == [InvokeAction(caller)]
    assert part.journal(caller)[-1] == entry(
        pb.CallCompletionNotificationMessage(completion_id=2, value=pb.Value(content=b'"hello"'))
    )
    status = part.status(caller)
    assert status is not None and status.kind is StatusKind.INVOKED


def test_end_of_not_running_invocation_is_ignored(part: Partition) -> None:
    record = invoke(service_target(), 1)
    part.apply(record)
    part.apply(r.InvocationEnded(record.invocation_id, r.Value(b"1")))
    assert part.apply(r.InvocationEnded(record.invocation_id, r.Value(b"2"))) == []
    status = part.status(record.invocation_id)
    assert status is not None and status.result == r.Value(b"1")


def test_purge_and_attach(part: Partition) -> None:
    record = invoke(service_target(), 1)
    part.apply(record)
    inv = record.invocation_id
    # Attach while running: answered at the end, with the original request.
    assert part.apply(r.AttachInvocation(inv, r.IngressSink("node-2", "att"))) == []
    actions = part.apply(r.InvocationEnded(inv, r.Value(b"x")))
    assert [a.request_id for a in actions if isinstance(a, RespondToIngress)] == ["req-1", "att"]
    # Attach after completion: answered at once.
    assert part.apply(r.AttachInvocation(inv, r.IngressSink("node-2", "late"))) == [
        RespondToIngress("node-2", "late", inv, r.Value(b"x"))
    ]
    part.apply(r.PurgeInvocation(inv))
    assert part.status(inv) is None
    # Purged: the waiting request gets restate-server's 404 rather than hanging.
    assert part.apply(r.AttachInvocation(inv, r.IngressSink("node-2", "gone"))) == [
        RespondToIngress("node-2", "gone", inv, NOT_FOUND)
    ]


def test_deployment_pin_is_set_once(part: Partition) -> None:
    from engine.ids import DeploymentId

    record = invoke(service_target(), 1)
    part.apply(record)
    part.apply(r.DeploymentPinned(record.invocation_id, DeploymentId(1), 6))
    part.apply(r.DeploymentPinned(record.invocation_id, DeploymentId(2), 7))
    status = part.status(record.invocation_id)
    assert status is not None and (status.deployment_id, status.protocol_version) == (
        DeploymentId(1),
        6,
    )
