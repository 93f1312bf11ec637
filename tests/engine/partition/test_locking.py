"""Exclusive handlers of one key run one at a time; shared handlers and other keys don't wait.
A plain service's invocations sharing an ordering key run one at a time too."""

from __future__ import annotations

import dataclasses

from engine.partition.actions import InvokeAction, RespondToIngress
from engine.storage.inbox import InboxEntry
from engine.storage.invocation_status import StatusKind
from engine.wal import records as r
from tests.engine.partition.harness import Partition, invoke, object_target, service_target


def test_exclusive_handlers_are_serialized(part: Partition) -> None:
    first, second, third = (invoke(object_target("k"), n) for n in (1, 2, 3))
    assert part.apply(first) == [InvokeAction(first.invocation_id)]
    assert part.apply(second) == []
    assert part.apply(third) == []
    status = part.status(second.invocation_id)
    assert status is not None and status.kind is StatusKind.INBOXED and status.inbox_sequence == 0
    assert part.journal(second.invocation_id) == []
    with part.read() as t:
        assert t.locks.holder("Counter", "k") == first.invocation_id
        assert t.inbox.entries("Counter", "k") == [
            InboxEntry(0, second.invocation_id),
            InboxEntry(1, third.invocation_id),
        ]
    actions = part.apply(r.InvocationEnded(first.invocation_id, r.Value(b"1")))
    assert actions[0] == RespondToIngress("node-1", "req-1", first.invocation_id, r.Value(b"1"))
    assert actions[-1] == InvokeAction(second.invocation_id)
    status = part.status(second.invocation_id)
    assert (
        status is not None and status.kind is StatusKind.INVOKED and status.inbox_sequence is None
    )
    assert len(part.journal(second.invocation_id)) == 1
    with part.read() as t:
        assert t.locks.holder("Counter", "k") == second.invocation_id
        assert t.inbox.entries("Counter", "k") == [InboxEntry(1, third.invocation_id)]
    part.apply(r.InvocationEnded(second.invocation_id, r.Value(b"2")))
    assert part.apply(r.InvocationEnded(third.invocation_id, r.Value(b"3")))[-1] != InvokeAction(
        third.invocation_id
    )
    with part.read() as t:
        assert t.locks.holder("Counter", "k") is None
        assert t.inbox.entries("Counter", "k") == []


def test_shared_handlers_and_other_keys_do_not_wait(part: Partition) -> None:
    holder = invoke(object_target("k"), 1)
    shared = invoke(object_target("k", handler="get", kind=r.HandlerKind.SHARED), 2)
    other_key = invoke(object_target("other"), 3)
    part.apply(holder)
    assert part.apply(shared) == [InvokeAction(shared.invocation_id)]
    assert part.apply(other_key) == [InvokeAction(other_key.invocation_id)]
    # A shared handler ending does not touch the holder's lock.
    part.apply(r.InvocationEnded(shared.invocation_id, r.Value(b"")))
    with part.read() as t:
        assert t.locks.holder("Counter", "k") == holder.invocation_id


def test_keyed_target_without_handler_kind_is_exclusive(part: Partition) -> None:
    first = invoke(object_target("k", kind=None), 1)
    second = invoke(object_target("k", kind=None), 2)
    part.apply(first)
    assert part.apply(second) == []


def test_delayed_exclusive_invocation_queues_when_it_fires(part: Partition) -> None:
    holder = invoke(object_target("k"), 1)
    delayed = invoke(object_target("k"), 2, execute_at_ms=part.now_ms + 100)
    part.apply(holder)
    part.apply(delayed)
    timer = r.TimerKey(part.now_ms + 98, delayed.invocation_id, r.TimerKind.DELAYED_INVOKE)
    assert part.apply(r.TimerFired(timer), at_ms=part.now_ms + 200) == []
    status = part.status(delayed.invocation_id)
    assert status is not None and status.kind is StatusKind.INBOXED


def test_a_plain_service_with_an_ordering_key_runs_one_at_a_time_per_key(part: Partition) -> None:
    ordered = [
        dataclasses.replace(invoke(service_target("Audit", "record"), n), ordering_key=key)
        for n, key in ((1, "orders/0"), (2, "orders/0"), (3, "orders/1"), (4, "orders/0"))
    ]
    unordered = invoke(service_target("Audit", "record"), 5)
    assert part.apply(ordered[0]) == [InvokeAction(ordered[0].invocation_id)]
    assert part.apply(ordered[1]) == []  # queued behind #1
    assert part.apply(ordered[2]) == [InvokeAction(ordered[2].invocation_id)]  # another key
    assert part.apply(ordered[3]) == []
    assert part.apply(unordered) == [InvokeAction(unordered.invocation_id)]  # no key: no lock
    with part.read() as t:
        assert t.locks.holder("Audit", "orders/0") == ordered[0].invocation_id
        assert [e.invocation_id for e in t.inbox.entries("Audit", "orders/0")] == [
            ordered[1].invocation_id,
            ordered[3].invocation_id,
        ]
    # Cancelling a queued one takes it out of the inbox; ending #1 starts the next one.
    part.apply(r.CancelInvocation(ordered[1].invocation_id))
    actions = part.apply(r.InvocationEnded(ordered[0].invocation_id, r.Value(b"1")))
    assert actions[-1] == InvokeAction(ordered[3].invocation_id)
    started = part.status(ordered[3].invocation_id)
    assert started is not None and started.ordering_key == "orders/0"
    assert started.target.key is None  # the handler still sees a keyless service call
    with part.read() as t:
        assert t.locks.holder("Audit", "orders/0") == ordered[3].invocation_id
        assert t.inbox.entries("Audit", "orders/0") == []


def test_an_ordering_key_on_a_keyed_target_is_ignored(part: Partition) -> None:
    first = dataclasses.replace(invoke(object_target("k", "get", r.HandlerKind.SHARED), 1), ordering_key="x")
    second = dataclasses.replace(invoke(object_target("k", "get", r.HandlerKind.SHARED), 2), ordering_key="x")
    assert part.apply(first) == [InvokeAction(first.invocation_id)]
    assert part.apply(second) == [InvokeAction(second.invocation_id)]
