"""PatchState and OutboxTruncate."""

from __future__ import annotations

from engine.storage.state import state_version
from engine.wal import records as r
from tests.engine.partition.harness import Partition, command, invoke, object_target, pb


def test_patch_state_replaces_the_state_when_the_version_matches(part: Partition) -> None:
    with part.read() as t:
        empty_version = t.state.version("Counter", "k")
    part.apply(r.PatchState("Counter", "k", (r.StateEntry(b"a", b"1"), r.StateEntry(b"b", b"2"))))
    with part.read() as t:
        assert t.state.keys("Counter", "k") == [b"a", b"b"]
    # Based on a stale version: refused.
    part.apply(r.PatchState("Counter", "k", (), expected_version=empty_version))
    with part.read() as t:
        assert t.state.keys("Counter", "k") == [b"a", b"b"]
    current = state_version([r.StateEntry(b"a", b"1"), r.StateEntry(b"b", b"2")])
    part.apply(r.PatchState("Counter", "k", (r.StateEntry(b"c", b"3"),), expected_version=current))
    with part.read() as t:
        assert t.state.keys("Counter", "k") == [b"c"]


def test_outbox_truncate(part: Partition) -> None:
    record = invoke(object_target("k"), 1)
    part.apply(record)
    for index in range(1, 4):
        send = pb.OneWayCallCommandMessage(
            service_name="S", handler_name="h", invocation_id_notification_idx=index
        )
        part.apply(command(send, record.invocation_id, 2 * index - 1))
    with part.read() as t:
        assert [m.sequence for m in t.outbox.scan()] == [0, 1, 2]
    assert part.apply(r.OutboxTruncate(1), epoch=0) == []
    with part.read() as t:
        assert [m.sequence for m in t.outbox.scan()] == [2]


def test_patch_state_still_accepts_the_legacy_version(part: Partition) -> None:
    """PatchState records written before logstrate used Restate's state version carry the
    old hex version; they must apply as they did when first applied."""
    from engine.storage.state import legacy_state_version

    part.apply(r.PatchState("Counter", "old", (r.StateEntry(b"a", b"1"),)))
    legacy = legacy_state_version([r.StateEntry(b"a", b"1")])
    assert legacy != state_version([r.StateEntry(b"a", b"1")])
    part.apply(r.PatchState("Counter", "old", (r.StateEntry(b"z", b"9"),), expected_version=legacy))
    with part.read() as t:
        assert t.state.keys("Counter", "old") == [b"z"]
