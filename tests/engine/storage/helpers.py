"""Small builders shared by the storage tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from engine.ids import InvocationId, InvocationUuid, PartitionKey
from engine.storage.environment import StorageEnvironment
from engine.storage.tables import PartitionTables, StorageTables, TableHandles


def iid(n: int, partition_key: int = 7) -> InvocationId:
    """A fixed invocation id."""
    return InvocationId(PartitionKey(partition_key), InvocationUuid(n))


@contextmanager
def write(
    storage: tuple[StorageEnvironment, TableHandles], partition: int = 0
) -> Iterator[PartitionTables]:
    """The tables of ``partition`` in a write transaction committed on exit."""
    env, handles = storage
    with env.env.begin(write=True) as txn:
        yield StorageTables(txn, handles).partition(partition)


@contextmanager
def read(
    storage: tuple[StorageEnvironment, TableHandles], partition: int = 0
) -> Iterator[PartitionTables]:
    """The tables of ``partition`` in a read transaction."""
    env, handles = storage
    with env.env.begin() as txn:
        yield StorageTables(txn, handles).partition(partition)
