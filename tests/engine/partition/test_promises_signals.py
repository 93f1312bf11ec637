"""Workflow promises, awakeable/signal completions, and the workflow run's once-only rule."""

from __future__ import annotations

from engine.ids import AwakeableId
from engine.partition.actions import RespondToIngress, SendOutbox
from engine.partition.state_machine.invoke import WORKFLOW_ALREADY_INVOKED
from engine.partition.state_machine.promises import ALREADY_COMPLETED
from engine.storage.promises import Promise, PromiseWaiter
from engine.wal import records as r
from tests.engine.partition.harness import Partition, command, decode, invoke, pb

WF = "Payment"


def workflow_target(handler: str = "run", kind: r.HandlerKind = r.HandlerKind.WORKFLOW) -> r.InvocationTarget:
    return r.InvocationTarget(WF, handler, "p1", r.ServiceKind.WORKFLOW, kind)


def start(part: Partition, target: r.InvocationTarget, n: int) -> r.Invoke:
    record = invoke(target, n)
    part.apply(record)
    return record


def test_get_waits_until_a_shared_handler_completes_the_promise(part: Partition) -> None:
    run = start(part, workflow_target(), 1).invocation_id
    part.apply(command(pb.GetPromiseCommandMessage(key="approval", result_completion_id=1), run, 1))
    with part.read() as t:
        assert t.promises.get(WF, "p1", "approval") == Promise(None, (PromiseWaiter(run, 1),))
    part.apply(command(pb.PeekPromiseCommandMessage(key="approval", result_completion_id=2), run, 2))
    assert decode(part.journal(run)[-1]).WhichOneof("result") == "void"

    approver = start(part, workflow_target("approve", r.HandlerKind.SHARED), 2).invocation_id
    complete = pb.CompletePromiseCommandMessage(
        key="approval", completion_value=pb.Value(content=b'"alice"'), result_completion_id=1
    )
    actions = part.apply(command(complete, approver, 1))
    wake = r.Notify(run, r.CompletionId(1), r.Value(b'"alice"'))
    assert SendOutbox(0, run.partition_key, wake) in actions
    assert decode(part.journal(approver)[-1]).WhichOneof("result") == "void"
    # The outbox record comes back through the log and completes the waiting Get.
    part.apply(wake)
    assert decode(part.journal(run)[-1]) == pb.GetPromiseCompletionNotificationMessage(
        completion_id=1, value=pb.Value(content=b'"alice"')
    )

    second = pb.CompletePromiseCommandMessage(
        key="approval", completion_value=pb.Value(content=b'"bob"'), result_completion_id=2
    )
    part.apply(command(second, approver, 3))
    failure = decode(part.journal(approver)[-1]).failure
    assert (failure.code, failure.message) == (ALREADY_COMPLETED.code, ALREADY_COMPLETED.message)
    with part.read() as t:
        assert t.promises.get(WF, "p1", "approval") == Promise(r.Value(b'"alice"'))


def test_second_submission_of_a_workflow_run_is_refused(part: Partition) -> None:
    first = start(part, workflow_target(), 1)
    again = r.Invoke(
        invocation_id=first.invocation_id,
        target=first.target,
        argument=b"2",
        source=r.IngressSource("node-1", "req-again"),
        response_sink=r.IngressSink("node-1", "req-again"),
    )
    actions = part.apply(again)
    assert actions == [
        RespondToIngress("node-1", "req-again", first.invocation_id, WORKFLOW_ALREADY_INVOKED)
    ]


def test_purging_a_workflow_run_forgets_its_state_and_promises(part: Partition) -> None:
    run = start(part, workflow_target(), 1).invocation_id
    part.apply(command(pb.SetStateCommandMessage(key=b"status", value=pb.Value(content=b"1")), run, 1))
    done = pb.CompletePromiseCommandMessage(key="p", completion_value=pb.Value(content=b"1"), result_completion_id=1)
    part.apply(command(done, run, 2))
    part.apply(r.InvocationEnded(run, r.Value(b"{}")))
    part.apply(r.PurgeInvocation(run))
    with part.read() as t:
        assert t.state.keys(WF, "p1") == []
        assert t.promises.get(WF, "p1", "p") is None
        assert t.status.get(run) is None


def test_complete_awakeable_notifies_the_target_signal_through_the_outbox(part: Partition) -> None:
    waiter = start(part, workflow_target("approve", r.HandlerKind.SHARED), 1).invocation_id
    completer = start(part, workflow_target("decline", r.HandlerKind.SHARED), 2).invocation_id
    awakeable = str(AwakeableId(waiter, 17))
    resolve = pb.CompleteAwakeableCommandMessage(awakeable_id=awakeable, value=pb.Value(content=b"x"))
    actions = part.apply(command(resolve, completer, 1))
    assert actions == [SendOutbox(0, waiter.partition_key, r.Notify(waiter, r.SignalIndex(17), r.Value(b"x")))]

    invalid = pb.CompleteAwakeableCommandMessage(awakeable_id="sign_1nope", value=pb.Value(content=b"x"))
    assert part.apply(command(invalid, completer, 2)) == []  # journaled, no effect


def test_send_signal_by_index(part: Partition) -> None:
    target = start(part, workflow_target("approve", r.HandlerKind.SHARED), 1).invocation_id
    sender = start(part, workflow_target("decline", r.HandlerKind.SHARED), 2).invocation_id
    signal = pb.SendSignalCommandMessage(
        target_invocation_id=str(target), idx=18, failure=pb.Failure(code=409, message="no")
    )
    actions = part.apply(command(signal, sender, 1))
    assert actions == [
        SendOutbox(0, target.partition_key, r.Notify(target, r.SignalIndex(18), r.Failure(409, "no")))
    ]
