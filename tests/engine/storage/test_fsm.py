"""Table ``fsm``: applied offset, leader epoch, sequences; partitions are independent."""

from __future__ import annotations

from engine.storage.environment import StorageEnvironment
from engine.storage.fsm import LeaderEpoch
from engine.storage.tables import TableHandles
from tests.engine.storage.helpers import read, write

Storage = tuple[StorageEnvironment, TableHandles]


def test_fresh_partition_defaults(storage: Storage) -> None:
    with read(storage) as t:
        assert t.fsm.applied_offset() is None
        assert t.fsm.leader() is None
        assert t.fsm.current_epoch() == 0
        assert t.fsm.next_outbox_sequence() == 0
        assert t.fsm.next_inbox_sequence() == 0


def test_values_persist_per_partition(storage: Storage) -> None:
    with write(storage, 3) as t:
        t.fsm.set_applied_offset(41)
        t.fsm.set_leader(LeaderEpoch(5, "node-a"))
        assert [t.fsm.allocate_outbox_sequence() for _ in range(3)] == [0, 1, 2]
        assert t.fsm.allocate_inbox_sequence() == 0
    with read(storage, 3) as t:
        assert t.fsm.applied_offset() == 41
        assert t.fsm.leader() == LeaderEpoch(5, "node-a")
        assert t.fsm.current_epoch() == 5
        assert t.fsm.next_outbox_sequence() == 3
        assert t.fsm.next_inbox_sequence() == 1
    with read(storage, 4) as t:
        assert t.fsm.applied_offset() is None
        assert t.fsm.leader() is None
