"""Short read transactions over a partition's tables, for code outside the processor."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import lmdb

from engine.storage.tables import PartitionTables, StorageTables, TableHandles

T = TypeVar("T")


class TableReader:
    """Runs a function against one partition's committed tables in a read transaction.

    Keep the function short: an open read transaction pins LMDB pages, so results must
    be copied out (lists, dataclasses), never lazily iterated after it returns.
    """

    def __init__(self, env: lmdb.Environment, handles: TableHandles) -> None:
        self._env = env
        self._handles = handles

    def read(self, partition: int, fn: Callable[[PartitionTables], T]) -> T:
        with self._env.begin(write=False) as txn:
            return fn(StorageTables(txn, self._handles).partition(partition))
