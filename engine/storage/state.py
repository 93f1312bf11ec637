"""Table ``state``: the K/V state of virtual objects and workflows.

Key: ``partition (u32) + object (service, key) component + state key component``. The
object component is :func:`engine.storage.keys.object_component`; the state key
component is ``0x00 + the raw state key`` when the whole LMDB key fits in 511 bytes,
else ``0x01 + sha256(state key)``. Value: version byte 1, the state key
(length-prefixed, so hashed keys can be listed), then the raw value bytes.

One object's rows are a contiguous range, so clearing or listing an object's state is
a prefix scan.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Final

import lmdb

from engine.storage.codec import Reader, Writer
from engine.storage.keys import (
    MAX_KEY_SIZE,
    ObjectComponent,
    iter_prefix,
    object_component,
    partition_prefix,
    read_object_component,
)
from engine.wal.records import StateEntry

__all__ = ["DB_NAME", "StateTable", "state_version"]

DB_NAME: Final = b"state"
_VERSION: Final = 1


def _decode(raw: bytes) -> StateEntry:
    reader = Reader(raw, _VERSION, "state")
    key = reader.bytes_()
    value = reader.raw(len(raw) - 1 - 4 - len(key))
    reader.done()
    return StateEntry(key, value)


def state_version(entries: list[StateEntry]) -> str:
    """The version of a whole object state, as Restate computes it (so the ``version``
    the restate CLI and UI send with a state patch is understood): SHA-256 over, for the
    ``i``-th entry in key order, ``i`` (u64 big-endian), ``0x01``, the key, ``0x02``,
    the value, ``0x03``; URL-safe base64 without padding.

    The admin API hands it out with the state and :class:`~engine.wal.records.PatchState`
    compares it, so a patch based on a stale read is refused.
    """
    digest = hashlib.sha256()
    for index, entry in enumerate(sorted(entries, key=lambda e: e.key)):
        digest.update(index.to_bytes(8, "big") + b"\x01" + entry.key + b"\x02" + entry.value + b"\x03")
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def legacy_state_version(entries: list[StateEntry]) -> str:
    """The version logstrate handed out before it used Restate's (hex SHA-256 over the
    sorted entries, each part length-prefixed): still accepted, as ``PatchState``
    records in the WAL may carry it and must apply as they did."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.key):
        for part in (entry.key, entry.value):
            digest.update(len(part).to_bytes(4, "big"))
            digest.update(part)
    return digest.hexdigest()


class StateTable:
    """The object state rows of one partition, inside one LMDB transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], db: lmdb._Database, partition: int) -> None:
        self._txn = txn
        self._db = db
        self._prefix = partition_prefix(partition)

    def _object_prefix(self, service: str, key: str) -> bytes:
        return self._prefix + object_component(service, key)

    def _row_key(self, service: str, key: str, state_key: bytes) -> bytes:
        prefix = self._object_prefix(service, key)
        if len(prefix) + 1 + len(state_key) <= MAX_KEY_SIZE:
            return prefix + b"\x00" + state_key
        return prefix + b"\x01" + hashlib.sha256(state_key).digest()

    def get(self, service: str, key: str, state_key: bytes) -> bytes | None:
        """The value of ``state_key``; ``None`` if absent (an empty value is present)."""
        raw = self._txn.get(self._row_key(service, key, state_key), db=self._db)
        return None if raw is None else _decode(raw).value

    def put(self, service: str, key: str, state_key: bytes, value: bytes) -> None:
        """Set ``state_key`` to ``value``."""
        writer = Writer(_VERSION)
        writer.bytes_(state_key)
        writer.raw(value)
        self._txn.put(self._row_key(service, key, state_key), writer.finish(), db=self._db)

    def delete(self, service: str, key: str, state_key: bytes) -> bool:
        """Remove ``state_key``; True if it existed."""
        return self._txn.delete(self._row_key(service, key, state_key), db=self._db)

    def scan(self, service: str, key: str) -> Iterator[StateEntry]:
        """Every entry of the object, in storage order (not necessarily key order)."""
        for _, value in iter_prefix(self._txn, self._db, self._object_prefix(service, key)):
            yield _decode(value)

    def scan_all(self) -> Iterator[tuple[ObjectComponent, StateEntry]]:
        """Every entry of the partition with its object (SQL introspection)."""
        for row, value in iter_prefix(self._txn, self._db, self._prefix):
            yield read_object_component(row, len(self._prefix))[0], _decode(value)

    def keys(self, service: str, key: str) -> list[bytes]:
        """The object's state keys, sorted bytewise (a canonical order for replies)."""
        return sorted(entry.key for entry in self.scan(service, key))

    def clear_all(self, service: str, key: str) -> int:
        """Delete the object's whole state; the number of keys removed."""
        rows = [
            row for row, _ in iter_prefix(self._txn, self._db, self._object_prefix(service, key))
        ]
        for row in rows:
            self._txn.delete(row, db=self._db)
        return len(rows)

    def version(self, service: str, key: str) -> str:
        """See :func:`state_version`."""
        return state_version(list(self.scan(service, key)))

    def version_matches(self, service: str, key: str, version: str) -> bool:
        """Whether ``version`` is the state's current one (or its :func:`legacy_state_version`)."""
        entries = list(self.scan(service, key))
        return version in (state_version(entries), legacy_state_version(entries))
