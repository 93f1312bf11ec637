"""Table ``promises``: a workflow's durable promises, by (workflow, key, promise name).

Key: ``partition (u32) + object (service, key) component + length-prefixed name``.
Value: version byte 1, the optional result (a value or a failure, once completed) and
the invocations waiting for it: ``(invocation id, completion id)`` pairs of
``GetPromise`` commands issued before the promise was completed. Every handler of one
workflow key lives in the key's partition, so waiters are always local.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import lmdb

from engine.ids import InvocationId
from engine.storage.codec import Reader, Writer
from engine.storage.keys import (
    ObjectComponent,
    iter_prefix,
    length_prefixed,
    object_component,
    partition_prefix,
    read_object_component,
)
from engine.wal.records import OutputResult

__all__ = ["DB_NAME", "Promise", "PromiseWaiter", "PromisesTable"]

DB_NAME: Final = b"promises"
_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class PromiseWaiter:
    """A ``GetPromise`` command waiting for the promise: answer ``completion_id``."""

    invocation_id: InvocationId
    completion_id: int


@dataclass(frozen=True, slots=True)
class Promise:
    """One durable promise: its result once completed, else who waits for it."""

    result: OutputResult | None = None
    waiters: tuple[PromiseWaiter, ...] = ()


def _decode(raw: bytes) -> Promise:
    reader = Reader(raw, _VERSION, "promise")
    result = reader.optional(reader.output_result)
    waiters = reader.sequence(lambda: PromiseWaiter(reader.invocation_id(), reader.int_()))
    reader.done()
    return Promise(result, waiters)


class PromisesTable:
    """The durable promises of one partition, inside one LMDB transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], db: lmdb._Database, partition: int) -> None:
        self._txn = txn
        self._db = db
        self._prefix = partition_prefix(partition)

    def _object_prefix(self, service: str, key: str) -> bytes:
        return self._prefix + object_component(service, key)

    def _key(self, service: str, key: str, name: str) -> bytes:
        return self._object_prefix(service, key) + length_prefixed(name.encode("utf-8"))

    def get(self, service: str, key: str, name: str) -> Promise | None:
        """The promise ``name`` of workflow ``(service, key)``; ``None`` if never touched."""
        raw = self._txn.get(self._key(service, key, name), db=self._db)
        return None if raw is None else _decode(raw)

    def scan_all(self) -> Iterator[tuple[ObjectComponent, str, Promise]]:
        """Every promise of the partition with its workflow and name (SQL introspection)."""
        for row, value in iter_prefix(self._txn, self._db, self._prefix):
            component, end = read_object_component(row, len(self._prefix))
            name_length = int.from_bytes(row[end : end + 4], "big")
            yield component, row[end + 4 : end + 4 + name_length].decode("utf-8"), _decode(value)

    def put(self, service: str, key: str, name: str, promise: Promise) -> None:
        """Store ``promise`` (replacing what was there)."""
        writer = Writer(_VERSION)
        if promise.result is None:
            writer.byte(0)
        else:
            writer.byte(1)
            writer.output_result(promise.result)

        def waiter(value: PromiseWaiter) -> None:
            writer.invocation_id(value.invocation_id)
            writer.int_(value.completion_id)

        writer.sequence(promise.waiters, waiter)
        self._txn.put(self._key(service, key, name), writer.finish(), db=self._db)

    def clear_all(self, service: str, key: str) -> int:
        """Delete every promise of workflow ``(service, key)``; how many there were."""
        rows = [row for row, _ in iter_prefix(self._txn, self._db, self._object_prefix(service, key))]
        for row in rows:
            self._txn.delete(row, db=self._db)
        return len(rows)
