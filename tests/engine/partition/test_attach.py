"""Attach and get-output: from the ingress and from a handler's journal commands."""

from __future__ import annotations

import dataclasses

from engine.ids import InvocationId, InvocationUuid
from engine.partition.actions import Action, RespondToIngress, SendOutbox
from engine.partition.state_machine.attach import NOT_FOUND
from engine.wal import records as r
from engine.wal.partitioning import invocation_id_for
from tests.engine.partition.harness import Partition, command, decode, invoke, new_id, pb, service_target


def _outbox(actions: list[Action]) -> list[r.Record]:
    return [a.record for a in actions if isinstance(a, SendOutbox)]


def _caller(part: Partition, n: int = 100) -> InvocationId:
    record = invoke(service_target("Caller", "run"), n)
    part.apply(record)
    return record.invocation_id


def _finish(part: Partition, invocation_id: InvocationId, value: bytes) -> list[Action]:
    return part.apply(r.InvocationEnded(invocation_id, r.Value(value)))


def test_attach_command_sends_attach_to_the_target_partition(part: Partition) -> None:
    caller = _caller(part)
    target = new_id(service_target(), 1)
    attach = pb.AttachInvocationCommandMessage(invocation_id=str(target), result_completion_id=1)
    actions = part.apply(command(attach, caller, 1))
    assert _outbox(actions) == [r.AttachInvocation(target, r.InvocationSink(caller, 1))]
    get = pb.GetInvocationOutputCommandMessage(invocation_id=str(target), result_completion_id=2)
    actions = part.apply(command(get, caller, 2))
    assert _outbox(actions) == [r.GetInvocationOutput(target, r.InvocationSink(caller, 2))]


def test_attach_by_workflow_and_idempotency_key_resolves_the_deterministic_id(part: Partition) -> None:
    caller = _caller(part)
    by_workflow = pb.AttachInvocationCommandMessage(
        workflow_target=pb.WorkflowTarget(workflow_name="Payment", workflow_key="p-1"),
        result_completion_id=1,
    )
    run_id = invocation_id_for("Payment", "p-1", InvocationUuid.for_workflow_run("Payment", "p-1"))
    assert _outbox(part.apply(command(by_workflow, caller, 1))) == [
        r.AttachInvocation(run_id, r.InvocationSink(caller, 1))
    ]
    by_key = pb.AttachInvocationCommandMessage(
        idempotent_request_target=pb.IdempotentRequestTarget(
            service_name="Greeter", handler_name="greet", idempotency_key="once"
        ),
        result_completion_id=2,
    )
    uuid = InvocationUuid.for_idempotent_request("Greeter", None, "greet", "once")
    assert _outbox(part.apply(command(by_key, caller, 2))) == [
        r.AttachInvocation(invocation_id_for("Greeter", None, uuid), r.InvocationSink(caller, 2))
    ]


def test_a_bad_target_or_the_caller_itself_fails_the_command_at_once(part: Partition) -> None:
    caller = _caller(part)
    bad = pb.AttachInvocationCommandMessage(invocation_id="inv_nope", result_completion_id=1)
    assert _outbox(part.apply(command(bad, caller, 1))) == []
    notification = decode(part.journal(caller)[-1])
    assert isinstance(notification, pb.AttachInvocationCompletionNotificationMessage)
    assert notification.failure.code == 400 and "inv_nope" in notification.failure.message
    itself = pb.GetInvocationOutputCommandMessage(invocation_id=str(caller), result_completion_id=2)
    assert _outbox(part.apply(command(itself, caller, 3))) == []
    notification = decode(part.journal(caller)[-1])
    assert isinstance(notification, pb.GetInvocationOutputCompletionNotificationMessage)
    assert notification.failure.code == 400


def test_attach_to_a_running_invocation_answers_the_caller_when_it_ends(part: Partition) -> None:
    target = invoke(service_target(), 1)
    part.apply(target)
    tid = target.invocation_id
    caller = new_id(service_target("Caller", "run"), 100)
    assert part.apply(r.AttachInvocation(tid, r.InvocationSink(caller, 7))) == []
    status = part.status(tid)
    assert status is not None and r.InvocationSink(caller, 7) in status.response_sinks
    actions = _finish(part, tid, b'"done"')
    assert r.Notify(caller, r.CompletionId(7), r.Value(b'"done"')) in _outbox(actions)


def test_attach_and_get_output_of_running_completed_and_unknown(part: Partition) -> None:
    caller = new_id(service_target("Caller", "run"), 100)
    sink = r.InvocationSink(caller, 3)
    kept = dataclasses.replace(invoke(service_target(), 1), idempotency_key="k", completion_retention_ms=60_000)
    part.apply(kept)
    # Running: get-output says "not ready".
    assert _outbox(part.apply(r.GetInvocationOutput(kept.invocation_id, sink))) == [
        r.Notify(caller, r.CompletionId(3), r.Void())
    ]
    _finish(part, kept.invocation_id, b'"kept"')
    done = r.Notify(caller, r.CompletionId(3), r.Value(b'"kept"'))
    assert _outbox(part.apply(r.GetInvocationOutput(kept.invocation_id, sink))) == [done]
    assert _outbox(part.apply(r.AttachInvocation(kept.invocation_id, sink))) == [done]

    unknown = new_id(service_target(), 2)
    missing = r.Notify(caller, r.CompletionId(3), NOT_FOUND)
    assert _outbox(part.apply(r.AttachInvocation(unknown, sink))) == [missing]
    assert _outbox(part.apply(r.GetInvocationOutput(unknown, sink))) == [missing]
    # From the ingress, the same answer goes to the waiting request.
    ingress = r.IngressSink("node-1", "req-9")
    assert part.apply(r.AttachInvocation(unknown, ingress)) == [
        RespondToIngress("node-1", "req-9", unknown, NOT_FOUND)
    ]



def test_get_output_from_another_processes_ingress_answers_the_request(part: Partition) -> None:
    record = invoke(service_target(), 1)
    part.apply(record)
    ingress = r.IngressSink("node-2", "out-1")
    iid = record.invocation_id
    assert part.apply(r.GetInvocationOutput(iid, ingress)) == [
        RespondToIngress("node-2", "out-1", iid, r.Void())
    ]
    _finish(part, iid, b'"x"')
    assert part.apply(r.GetInvocationOutput(iid, ingress)) == [
        RespondToIngress("node-2", "out-1", iid, r.Value(b'"x"'))
    ]
