"""What the invoker reads after commit: target, pin, journal, eager state, counters."""

from __future__ import annotations

import dataclasses

from engine.ids import DeploymentId
from restate_protocol import MessageType
from engine.partition.actions import InvokeAction
from engine.partition.batch import _with_task_data
from engine.partition.state_machine import apply
from engine.partition.state_machine.invoke import starts_when_applied
from engine.partition.state_reader import first_attempt_data, invoked_invocations, load_invocation_task_data
from engine.storage.tables import StorageTables
from engine.wal import records as r
from tests.engine.partition.harness import (
    T0,
    Partition,
    command,
    invoke,
    object_target,
    pb,
    service_target,
)


def test_task_data_of_a_running_object_invocation(part: Partition) -> None:
    record = invoke(object_target("k"), 1, headers=(r.Header("a", "b"),), idempotency_key="ik")
    inv = record.invocation_id
    part.apply(record)
    part.apply(r.DeploymentPinned(inv, DeploymentId(3), 6))
    part.apply(command(pb.SetStateCommandMessage(key=b"x", value=pb.Value(content=b"1")), inv, 1))
    part.apply(command(pb.SetStateCommandMessage(key=b"y", value=pb.Value(content=b"22")), inv, 2))
    part.apply(r.InvocationFailedAttempt(inv, 500, "boom", T0 + 100, 1))
    with part.read() as t:
        data = load_invocation_task_data(t, inv)
        assert data is not None
        assert data.target == record.target and data.headers == record.headers
        assert data.idempotency_key == "ik"
        assert (data.deployment_id, data.protocol_version) == (DeploymentId(3), 6)
        assert [e.message_type for e in data.journal] == [
            MessageType.INPUT_COMMAND,
            MessageType.SET_STATE_COMMAND,
            MessageType.SET_STATE_COMMAND,
        ]
        assert data.commands == 3
        assert {e.key: e.value for e in data.state} == {b"x": b"1", b"y": b"22"}
        assert not data.partial_state
        assert (data.attempt, data.retries_since_last_entry) == (1, 1)
        assert data.last_failure is not None and data.last_failure.code == 500
        # Over the eager limit: partial state, the SDK reads the rest lazily.
        small = load_invocation_task_data(t, inv, eager_state_limit=3)
        assert small is not None and small.partial_state and len(small.state) == 1
        assert invoked_invocations(t) == [inv]


def test_no_task_data_unless_invoked(part: Partition) -> None:
    service = invoke(service_target(), 1)
    part.apply(service)
    part.apply(r.InvocationSuspended(service.invocation_id, (r.CompletionId(1),)))
    with part.read() as t:
        assert load_invocation_task_data(t, service.invocation_id) is None
        assert load_invocation_task_data(t, invoke(service_target(), 2).invocation_id) is None
        assert invoked_invocations(t) == []


def test_an_early_first_attempt_sees_what_applying_its_invoke_stores(part: Partition) -> None:
    """The leader may start the first attempt of an Invoke before reading it back
    (``starts_when_applied``); the task it builds must be exactly the one it would
    have read once the record was applied, or a later replay would not match."""
    record = invoke(service_target(), 1, b'{"x": 1}', headers=(r.Header("h", "v"), r.Header("k", "w")))
    assert starts_when_applied(record)
    part.apply(record)
    with part.read() as t:
        stored = load_invocation_task_data(t, record.invocation_id)
    assert stored is not None
    early = first_attempt_data(record, now_ms=stored.modified_at_ms)
    assert early == stored


def test_only_invokes_that_always_start_at_once_may_start_early() -> None:
    assert starts_when_applied(invoke(service_target(), 1))
    # Each of these may be queued, delayed or answered without a new run when applied.
    assert not starts_when_applied(invoke(object_target("k"), 1))
    assert not starts_when_applied(invoke(service_target(), 1, idempotency_key="ik"))
    assert not starts_when_applied(invoke(service_target(), 1, execute_at_ms=T0 + 60_000))
    workflow = r.InvocationTarget("Flow", "run", "w1", r.ServiceKind.WORKFLOW, r.HandlerKind.WORKFLOW)
    assert not starts_when_applied(invoke(workflow, 1))
    ordered = dataclasses.replace(invoke(service_target(), 1), ordering_key="topic-key")
    assert not starts_when_applied(ordered)


def test_task_data_read_in_the_batch_transaction_is_what_a_read_after_commit_gives(part: Partition) -> None:
    """The processor fills ``InvokeAction.task`` from the batch's own write transaction
    (``batch._with_task_data``) for partitions it leads; the attempt must get
    exactly what the leader would read from LMDB once the batch committed."""
    first = invoke(object_target("k"), 1, b"1")
    queued = invoke(object_target("k"), 2, b"2")
    part.apply(first)
    part.apply(command(pb.SetStateCommandMessage(key=b"x", value=pb.Value(content=b"7")), first.invocation_id, 1))
    with part.env.env.begin(write=True) as txn:
        tables = StorageTables(txn, part.handles, write_back=True)
        actions = apply(tables, part.partition, r.Envelope(queued), part.offset, part.now_ms, part.partition_count)
        actions += apply(tables, part.partition, r.Envelope(r.InvocationEnded(first.invocation_id, r.Void())),
                         part.offset + 1, part.now_ms + 1, part.partition_count)
        tables.flush()
        filled = _with_task_data(tables.partition(part.partition), actions)
    invokes = [a for a in filled if isinstance(a, InvokeAction)]
    # The end of the first frees the lock: the queued one starts, with its data attached.
    assert [a.invocation_id for a in invokes] == [queued.invocation_id]
    with part.read() as t:
        assert invokes[0].task == load_invocation_task_data(t, queued.invocation_id)
    assert invokes[0].task is not None and {e.key for e in invokes[0].task.state} == {b"x"}
    # Other actions pass through untouched, in order.
    assert [type(a) for a in filled] == [type(a) for a in actions]
