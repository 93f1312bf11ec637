"""Short read transactions over a partition's tables, for code outside the processor."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import lmdb

from engine.storage.growth import MapGrowth
from engine.storage.tables import PartitionTables, StorageTables, TableHandles

T = TypeVar("T")


class TableReader:
    """Runs a function against one partition's committed tables in a read transaction.

    Keep the function short: an open read transaction pins LMDB pages, so results must
    be copied out (lists, dataclasses), never lazily iterated after it returns.
    """

    def __init__(self, env: lmdb.Environment, handles: TableHandles, growth: MapGrowth | None = None) -> None:
        self._env = env
        self._handles = handles
        # Held while a transaction is open: the map is never remapped under a reader.
        self._growth = growth

    def read(self, partition: int, fn: Callable[[PartitionTables], T]) -> T:
        if self._growth is None:
            with self._env.begin(write=False) as txn:
                return fn(StorageTables(txn, self._handles).partition(partition))
        with self._growth.reading(), self._env.begin(write=False) as txn:
            return fn(StorageTables(txn, self._handles).partition(partition))


def next_wal_offsets(env: lmdb.Environment, partitions: int) -> dict[int, int]:
    """Per WAL partition, the offset this state needs next: applied + 1 (0 before any).

    Checked against the WAL's earliest offsets at start-up (``engine.wal.topics``): a
    gap below it means records this state never saw were deleted."""
    reader = TableReader(env, TableHandles.open(env))
    offsets = {}
    for partition in range(partitions):
        applied = reader.read(partition, lambda t: t.fsm.applied_offset())
        offsets[partition] = 0 if applied is None else applied + 1
    return offsets
