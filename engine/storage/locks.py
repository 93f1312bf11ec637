"""Table ``locks``: which invocation holds a virtual object / workflow key exclusively.

Key: ``partition (u32) + object (service, key) component``. Value: version byte 1 and
the holder's invocation id. A key without a row is free; the state machine keeps the
invariant that a free key has an empty inbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import lmdb

from engine.ids import InvocationId
from engine.storage.codec import Reader, Writer
from engine.storage.keys import ObjectComponent, iter_prefix, object_component, partition_prefix, read_object_component

__all__ = ["DB_NAME", "LocksTable"]

DB_NAME: Final = b"locks"
_VERSION: Final = 1


class LocksTable:
    """The object locks of one partition, inside one LMDB transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], db: lmdb._Database, partition: int) -> None:
        self._txn = txn
        self._db = db
        self._prefix = partition_prefix(partition)

    def _key(self, service: str, key: str) -> bytes:
        return self._prefix + object_component(service, key)

    def holder(self, service: str, key: str) -> InvocationId | None:
        """The invocation holding ``(service, key)``; ``None`` if free."""
        raw = self._txn.get(self._key(service, key), db=self._db)
        if raw is None:
            return None
        reader = Reader(raw, _VERSION, "lock")
        holder = reader.invocation_id()
        reader.done()
        return holder

    def scan_all(self) -> Iterator[tuple[ObjectComponent, InvocationId]]:
        """Every held key of the partition and its holder (SQL introspection)."""
        for row, value in iter_prefix(self._txn, self._db, self._prefix):
            reader = Reader(value, _VERSION, "lock")
            holder = reader.invocation_id()
            reader.done()
            yield read_object_component(row, len(self._prefix))[0], holder

    def acquire(self, service: str, key: str, invocation_id: InvocationId) -> None:
        """Make ``invocation_id`` the holder (the caller checked the key is free)."""
        writer = Writer(_VERSION)
        writer.invocation_id(invocation_id)
        self._txn.put(self._key(service, key), writer.finish(), db=self._db)

    def release(self, service: str, key: str) -> bool:
        """Free ``(service, key)``; True if it was held."""
        return self._txn.delete(self._key(service, key), db=self._db)
