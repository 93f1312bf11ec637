"""Table ``inbox``: per virtual object / workflow key, the FIFO of waiting invocations.

An exclusive handler holds its key's lock (:mod:`engine.storage.locks`) for the whole
invocation; invocations arriving meanwhile wait here, in arrival order, and the next
one starts when the holder completes.

Key: ``partition (u32) + object (service, key) component + sequence (u64)``, where the
sequence comes from the partition's inbox counter (:mod:`engine.storage.fsm`), so key
order is arrival order. Value: version byte 1 and the invocation id (24 bytes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import lmdb

from engine.ids import InvocationId
from engine.storage.codec import Reader, Writer
from engine.storage.keys import ObjectComponent, iter_prefix, object_component, partition_prefix, read_object_component, u64

__all__ = ["DB_NAME", "InboxEntry", "InboxTable"]

DB_NAME: Final = b"inbox"
_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One waiting invocation and its place in the queue."""

    sequence: int
    invocation_id: InvocationId


def _decode(sequence: int, raw: bytes) -> InboxEntry:
    reader = Reader(raw, _VERSION, "inbox")
    entry = InboxEntry(sequence, reader.invocation_id())
    reader.done()
    return entry


class InboxTable:
    """The inboxes of one partition, inside one LMDB transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], db: lmdb._Database, partition: int) -> None:
        self._txn = txn
        self._db = db
        self._prefix = partition_prefix(partition)

    def _object_prefix(self, service: str, key: str) -> bytes:
        return self._prefix + object_component(service, key)

    def push(self, service: str, key: str, sequence: int, invocation_id: InvocationId) -> None:
        """Queue ``invocation_id`` at ``sequence`` (larger than every queued sequence)."""
        writer = Writer(_VERSION)
        writer.invocation_id(invocation_id)
        self._txn.put(
            self._object_prefix(service, key) + u64(sequence), writer.finish(), db=self._db
        )

    def entries(self, service: str, key: str) -> list[InboxEntry]:
        """The queue of ``(service, key)``, first in line first."""
        prefix = self._object_prefix(service, key)
        return [
            _decode(int.from_bytes(row[len(prefix) :], "big"), value)
            for row, value in iter_prefix(self._txn, self._db, prefix)
        ]

    def scan_all(self) -> Iterator[tuple[ObjectComponent, InboxEntry]]:
        """Every queued invocation of the partition with its object (SQL introspection)."""
        for row, value in iter_prefix(self._txn, self._db, self._prefix):
            component, end = read_object_component(row, len(self._prefix))
            yield component, _decode(int.from_bytes(row[end:], "big"), value)

    def count(self) -> int:
        """Invocations queued in every inbox of the partition (keys only, no decoding)."""
        cursor = self._txn.cursor(self._db)
        if not cursor.set_range(self._prefix):
            return 0
        prefix, n = self._prefix, 0
        for row in cursor.iternext(keys=True, values=False):
            if not row.startswith(prefix):
                break
            n += 1
        return n

    def peek(self, service: str, key: str) -> InboxEntry | None:
        """The first in line, without removing it."""
        prefix = self._object_prefix(service, key)
        for row, value in iter_prefix(self._txn, self._db, prefix):
            return _decode(int.from_bytes(row[len(prefix) :], "big"), value)
        return None

    def pop(self, service: str, key: str) -> InboxEntry | None:
        """Remove and return the first in line."""
        entry = self.peek(service, key)
        if entry is not None:
            self.remove(service, key, entry.sequence)
        return entry

    def remove(self, service: str, key: str, sequence: int) -> bool:
        """Remove the entry at ``sequence`` (a killed or cancelled waiter); True if present."""
        return self._txn.delete(self._object_prefix(service, key) + u64(sequence), db=self._db)
