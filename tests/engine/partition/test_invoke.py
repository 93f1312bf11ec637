"""Admission: services start at once, delayed sends wait, duplicates change nothing."""

from __future__ import annotations

from pathlib import Path

from restate_protocol import MessageType
import dataclasses

from engine.partition.actions import InvokeAction, RegisterTimer, RespondToIngress, Submitted
from engine.storage.invocation_status import StatusKind
from engine.wal import records as r
from tests.engine.partition.harness import T0, Partition, decode, invoke, pb, service_target


def test_service_invoke_starts_with_input_entry(part: Partition) -> None:
    record = invoke(service_target(), 1, headers=(r.Header("x-a", "1"),), idempotency_key=None)
    actions = part.apply(record)
    assert actions == [InvokeAction(record.invocation_id)]
    status = part.status(record.invocation_id)
    assert status is not None
    assert status.kind is StatusKind.INVOKED
    assert (status.journal_length, status.commands) == (1, 1)
    assert status.created_at_ms == T0 and status.modified_at_ms == T0
    assert status.response_sinks == (r.IngressSink("node-1", "req-1"),)
    [input_entry] = part.journal(record.invocation_id)
    assert input_entry.message_type == MessageType.INPUT_COMMAND
    message = decode(input_entry)
    assert isinstance(message, pb.InputCommandMessage)
    assert message.value.content == b'"arg"'
    assert [(h.key, h.value) for h in message.headers] == [("x-a", "1")]
    with part.read() as t:
        assert t.fsm.applied_offset() == 0


def test_duplicate_invoke_is_ignored(part: Partition) -> None:
    record = invoke(service_target(), 1)
    part.apply(record)
    before = part.dump()
    assert part.apply(record) == []
    after = part.dump()
    del before["fsm"], after["fsm"]  # only the applied offset moved
    assert before == after


def test_duplicate_invoke_with_new_sink_attaches(part: Partition) -> None:
    first = invoke(service_target(), 1, idempotency_key="k")
    part.apply(first)
    retry = invoke(service_target(), 1, request="req-retry", idempotency_key="k")
    assert part.apply(retry) == []
    status = part.status(first.invocation_id)
    assert status is not None
    assert status.response_sinks == (
        r.IngressSink("node-1", "req-1"),
        r.IngressSink("node-1", "req-retry"),
    )
    actions = part.apply(r.InvocationEnded(first.invocation_id, r.Value(b"done")))
    responses = [a for a in actions if isinstance(a, RespondToIngress)]
    assert [a.request_id for a in responses] == ["req-1", "req-retry"]
    # Completed: a third request is answered at once from the retained result.
    late = invoke(service_target(), 1, request="req-late", idempotency_key="k")
    assert part.apply(late) == [
        RespondToIngress("node-1", "req-late", first.invocation_id, r.Value(b"done"))
    ]


def _send(record: r.Invoke, request: str) -> r.Invoke:
    """``record`` as a ``/send`` from ingress request ``request``: no response sink."""
    return dataclasses.replace(record, source=r.IngressSource("node-2", request), response_sink=None)


def test_send_with_idempotency_key_is_told_whether_it_was_new(part: Partition) -> None:
    first = _send(invoke(service_target(), 1, idempotency_key="k"), "send-1")
    actions = part.apply(first)
    assert RespondToIngress("node-2", "send-1", first.invocation_id, Submitted(False)) in actions
    # The same record applied again (a retried append) is still this request's creation.
    assert part.apply(first) == [RespondToIngress("node-2", "send-1", first.invocation_id, Submitted(False))]
    again = _send(first, "send-2")
    assert part.apply(again) == [RespondToIngress("node-2", "send-2", first.invocation_id, Submitted(True))]
    # Completed and retained: still previously accepted, and nothing else is answered.
    part.apply(r.InvocationEnded(first.invocation_id, r.Value(b"done")))
    late = _send(first, "send-3")
    assert part.apply(late) == [RespondToIngress("node-2", "send-3", first.invocation_id, Submitted(True))]


def test_send_of_a_workflow_run_is_told_whether_it_was_new(part: Partition) -> None:
    target = r.InvocationTarget("Flow", "run", "wf-1", r.ServiceKind.WORKFLOW, r.HandlerKind.WORKFLOW)
    first = _send(invoke(target, 1), "send-1")
    assert RespondToIngress("node-2", "send-1", first.invocation_id, Submitted(False)) in part.apply(first)
    again = _send(first, "send-2")
    assert part.apply(again) == [RespondToIngress("node-2", "send-2", first.invocation_id, Submitted(True))]


def test_send_with_a_random_id_and_calls_get_no_submission_answer(part: Partition) -> None:
    send = _send(invoke(service_target(), 1), "send-1")
    assert not [a for a in part.apply(send) if isinstance(a, RespondToIngress)]
    call = invoke(service_target(), 2, idempotency_key="k")
    assert not [a for a in part.apply(call) if isinstance(a, RespondToIngress)]


def test_delayed_invoke_is_scheduled_then_started(part: Partition) -> None:
    record = invoke(service_target(), 1, execute_at_ms=T0 + 60_000)
    timer = r.TimerKey(T0 + 60_000, record.invocation_id, r.TimerKind.DELAYED_INVOKE)
    assert part.apply(record) == [RegisterTimer(timer)]
    status = part.status(record.invocation_id)
    assert status is not None and status.kind is StatusKind.SCHEDULED
    assert part.journal(record.invocation_id) == []
    with part.read() as t:
        assert list(t.timers.scan()) == [timer]
    assert part.apply(r.TimerFired(timer), at_ms=T0 + 60_000) == [
        InvokeAction(record.invocation_id)
    ]
    status = part.status(record.invocation_id)
    assert status is not None and status.kind is StatusKind.INVOKED
    assert len(part.journal(record.invocation_id)) == 1
    with part.read() as t:
        assert list(t.timers.scan()) == []
    # Fired again (leader restart): nothing happens.
    assert part.apply(r.TimerFired(timer)) == []


def test_execute_at_in_the_past_starts_at_once(part: Partition) -> None:
    record = invoke(service_target(), 1, execute_at_ms=T0 - 5)
    assert part.apply(record) == [InvokeAction(record.invocation_id)]


def test_records_at_or_below_the_applied_offset_are_skipped(part: Partition) -> None:
    part.apply(invoke(service_target(), 1), offset=10)
    before = part.dump()
    assert part.apply(invoke(service_target(), 2), offset=10) == []
    assert part.apply(invoke(service_target(), 3), offset=4) == []
    assert part.dump() == before
    assert part.apply(invoke(service_target(), 4), offset=11) != []


def test_record_for_another_partition_is_ignored(tmp_path: Path) -> None:
    p = Partition(tmp_path / "d", partition=0, partition_count=4)
    try:
        # Find an id that the range map places outside partition 0.
        n = next(
            n
            for n in range(100)
            if invoke(service_target(), n).invocation_id.partition_key >= 2**62
        )
        assert p.apply(invoke(service_target(), n)) == []
        assert p.status(invoke(service_target(), n).invocation_id) is None
        with p.read() as t:
            assert t.fsm.applied_offset() == 0
    finally:
        p.close()
