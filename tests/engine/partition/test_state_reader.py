"""What the invoker reads after commit: target, pin, journal, eager state, counters."""

from __future__ import annotations

from engine.ids import DeploymentId
from restate_protocol import MessageType
from engine.partition.state_reader import invoked_invocations, load_invocation_task_data
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
