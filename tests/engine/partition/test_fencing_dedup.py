"""Leader epochs fence off zombie leaders; dedup ids drop re-sent records."""

from __future__ import annotations

from engine.partition.actions import BecameLeader, InvokeAction, LostLeadership
from engine.storage.fsm import LeaderEpoch
from engine.wal import records as r
from tests.engine.partition.harness import Partition, command, invoke, pb, service_target


def test_announce_leader_sets_epoch_and_reports_both_sides(part: Partition) -> None:
    assert part.apply(r.AnnounceLeader(1, "node-a", 0), epoch=1) == [BecameLeader(0, 1, "node-a")]
    assert part.apply(r.AnnounceLeader(2, "node-b", 0), epoch=2) == [
        LostLeadership(0, 1, "node-a"),
        BecameLeader(0, 2, "node-b"),
    ]
    # Not newer: nothing.
    assert part.apply(r.AnnounceLeader(2, "node-c", 0), epoch=2) == []
    # For another partition: ignored.
    assert part.apply(r.AnnounceLeader(9, "node-c", 3), epoch=9) == []
    with part.read() as t:
        assert t.fsm.leader() == LeaderEpoch(2, "node-b")


def test_stale_epoch_records_change_nothing_but_the_offset(part: Partition) -> None:
    record = invoke(service_target(), 1)
    part.apply(r.AnnounceLeader(1, "node-a", 0), epoch=1)
    part.apply(record)
    part.apply(r.AnnounceLeader(2, "node-b", 0), epoch=2)
    before = part.dump()
    zombie = command(pb.SetStateCommandMessage(key=b"a"), record.invocation_id, 1)
    assert part.apply(zombie, epoch=1) == []
    assert part.apply(r.InvocationEnded(record.invocation_id, r.Value(b"")), epoch=1) == []
    assert part.apply(r.AnnounceLeader(1, "node-a", 0), epoch=1) == []
    after = part.dump()
    assert before["fsm"] != after["fsm"]  # the applied offset moved
    del before["fsm"], after["fsm"]
    assert before == after
    with part.read() as t:
        assert t.fsm.applied_offset() == part.offset - 1
    # The current epoch and unstamped records go through.
    assert part.apply(zombie, epoch=2) == []
    assert len(part.journal(record.invocation_id)) == 2


def test_dedup_drops_repeated_and_older_sequences(part: Partition) -> None:
    first, second, third = (invoke(service_target(), n) for n in (1, 2, 3))
    assert part.apply(first, dedup_id=r.DedupId("outbox/4", 5)) == [
        InvokeAction(first.invocation_id)
    ]
    assert part.apply(second, dedup_id=r.DedupId("outbox/4", 5)) == []
    assert part.apply(second, dedup_id=r.DedupId("outbox/4", 2)) == []
    assert part.status(second.invocation_id) is None
    # Another producer has its own sequence.
    assert part.apply(second, dedup_id=r.DedupId("outbox/7", 0)) == [
        InvokeAction(second.invocation_id)
    ]
    assert part.apply(third, dedup_id=r.DedupId("outbox/4", 6)) == [
        InvokeAction(third.invocation_id)
    ]
    with part.read() as t:
        assert t.dedup.highest("outbox/4") == 6


def test_fenced_record_does_not_store_its_dedup_id(part: Partition) -> None:
    part.apply(r.AnnounceLeader(3, "node-a", 0), epoch=3)
    record = invoke(service_target(), 1)
    assert part.apply(record, epoch=2, dedup_id=r.DedupId("p", 1)) == []
    with part.read() as t:
        assert t.dedup.highest("p") is None


def test_a_fenced_batch_still_applies_the_invokes_it_carries(part: Partition) -> None:
    # A call's Invoke travels in its first attempt's batch (deferred_invokes): when a
    # deposed leader's batch is dropped, the call itself must not be lost.
    part.apply(r.AnnounceLeader(1, "node-a", 0), epoch=1)
    part.apply(r.AnnounceLeader(2, "node-b", 0), epoch=2)
    call = invoke(service_target(), 1)
    ended = r.InvocationEnded(call.invocation_id, r.Value(b"zombie's answer"))
    assert part.apply(r.RecordBatch((call, ended)), epoch=1) == [InvokeAction(call.invocation_id)]
    status = part.status(call.invocation_id)
    assert status is not None and status.kind.name == "INVOKED", status
    assert len(part.journal(call.invocation_id)) == 1  # the input only: the end was dropped
    # From the current leader, the same batch is applied whole.
    other = invoke(service_target(), 2)
    actions = part.apply(r.RecordBatch((other, r.InvocationEnded(other.invocation_id, r.Value(b"ok")))), epoch=2)
    assert InvokeAction(other.invocation_id) in actions
    done = part.status(other.invocation_id)
    assert done is not None and done.kind.name == "COMPLETED", done
