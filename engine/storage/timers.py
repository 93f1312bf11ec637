"""Table ``timers``: every pending timer of a partition, ordered by fire time.

Key: ``partition (u32) + fire time (biased i64, so order is time order) + invocation
id (24 bytes) + kind tag (u8) + completion id (0x00, or 0x01 + u64)``: the whole
:class:`~engine.wal.records.TimerKey`, so a scan rebuilds the keys without reading
values, and two timers differing in any field are two rows. Value: version byte 1
(timers carry no data yet; the byte leaves room for some).

The leader's timer service loads the rows on becoming leader and appends
``TimerFired`` when one is due; applying it deletes the row, so a timer fired twice
(restart, leader change) acts once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import lmdb

from engine.ids import InvocationId
from engine.storage.codec import StorageCorruptError
from engine.storage.keys import iter_prefix, ordered_i64, partition_prefix, read_ordered_i64, u64
from engine.wal.records import TimerKey, TimerKind

__all__ = ["DB_NAME", "TimersTable"]

DB_NAME: Final = b"timers"
_VALUE: Final = b"\x01"

# Frozen tags: on disk.
_KIND_TAGS: Final = {
    TimerKind.SLEEP: 1,
    TimerKind.DELAYED_INVOKE: 2,
    TimerKind.RETRY: 3,
    TimerKind.CLEANUP: 4,
}
_KINDS: Final = {tag: kind for kind, tag in _KIND_TAGS.items()}


class TimersTable:
    """The timers of one partition, inside one LMDB transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], db: lmdb._Database, partition: int) -> None:
        self._txn = txn
        self._db = db
        self._prefix = partition_prefix(partition)

    def _key(self, timer: TimerKey) -> bytes:
        completion = b"\x00" if timer.completion_id is None else b"\x01" + u64(timer.completion_id)
        return (
            self._prefix
            + ordered_i64(timer.fire_at_ms)
            + timer.invocation_id.to_bytes()
            + bytes((_KIND_TAGS[timer.kind],))
            + completion
        )

    def _parse(self, key: bytes) -> TimerKey:
        body = key[len(self._prefix) :]
        if len(body) not in (34, 42):
            raise StorageCorruptError(f"timer key of unexpected length {len(key)}")
        kind = _KINDS.get(body[32])
        if kind is None:
            raise StorageCorruptError(f"unknown timer kind tag {body[32]}")
        completion_id = int.from_bytes(body[34:], "big") if body[33] == 1 else None
        return TimerKey(
            fire_at_ms=read_ordered_i64(body[:8]),
            invocation_id=InvocationId.from_bytes(body[8:32]),
            kind=kind,
            completion_id=completion_id,
        )

    def put(self, timer: TimerKey) -> None:
        """Register ``timer`` (idempotent)."""
        self._txn.put(self._key(timer), _VALUE, db=self._db)

    def exists(self, timer: TimerKey) -> bool:
        """Whether ``timer`` is pending."""
        return self._txn.get(self._key(timer), db=self._db) is not None

    def delete(self, timer: TimerKey) -> bool:
        """Drop ``timer``; True if it was pending."""
        return self._txn.delete(self._key(timer), db=self._db)

    def scan(self) -> Iterator[TimerKey]:
        """Every pending timer, earliest first."""
        for key, _ in iter_prefix(self._txn, self._db, self._prefix):
            yield self._parse(key)

    def count_by_kind(self) -> dict[TimerKind, int]:
        """Pending timers of the partition by kind (reads keys only, no parsing)."""
        counts = dict.fromkeys(_KIND_TAGS, 0)
        cursor = self._txn.cursor(self._db)
        if not cursor.set_range(self._prefix):
            return counts
        prefix, tag_at = self._prefix, len(self._prefix) + 32
        by_tag = dict.fromkeys(_KINDS, 0)
        for row in cursor.iternext(keys=True, values=False):
            if not row.startswith(prefix):
                break
            tag = row[tag_at]
            if tag in by_tag:
                by_tag[tag] += 1
        for tag, n in by_tag.items():
            counts[_KINDS[tag]] = n
        return counts

    def due(self, until_ms: int, limit: int | None = None) -> list[TimerKey]:
        """Timers with ``fire_at_ms <= until_ms``, earliest first, at most ``limit``."""
        out: list[TimerKey] = []
        end = self._prefix + ordered_i64(until_ms + 1) if until_ms < 2**63 - 1 else None
        for key, _ in iter_prefix(self._txn, self._db, self._prefix):
            if (end is not None and key >= end) or (limit is not None and len(out) >= limit):
                break
            out.append(self._parse(key))
        return out
