"""What the invoker reads after commit: target, pin, journal, eager state, counters."""

from __future__ import annotations

import dataclasses

from engine.ids import DeploymentId
from restate_protocol import MessageType
from engine.partition.state_machine.invoke import starts_when_applied
from engine.partition.state_reader import first_attempt_data, invoked_invocations, load_invocation_task_data
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
