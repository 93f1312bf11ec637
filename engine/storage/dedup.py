"""Table ``dedup``: per partition, the highest sequence applied from each producer.

Records that may be appended more than once (outbox deliveries re-sent after a crash,
Kafka subscription events re-read) carry ``DedupId(producer, sequence)``; a producer's
sequences only grow, so anything at or below the stored sequence was applied already.

Key: ``partition (u32) + producer name`` (bounded: inline when short, SHA-256 when
long, see :func:`engine.storage.keys.bounded`). Value: version byte 1 and the sequence.
"""

from __future__ import annotations

from typing import Final

import lmdb

from engine.storage.codec import Reader, Writer
from engine.storage.keys import bounded, partition_prefix

__all__ = ["DB_NAME", "DedupTable"]

DB_NAME: Final = b"dedup"
_VERSION: Final = 1
_MAX_INLINE_PRODUCER: Final = 400


class DedupTable:
    """The dedup sequences of one partition, inside one LMDB transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], db: lmdb._Database, partition: int) -> None:
        self._txn = txn
        self._db = db
        self._prefix = partition_prefix(partition)

    def _key(self, producer: str) -> bytes:
        return self._prefix + bounded(producer.encode("utf-8"), _MAX_INLINE_PRODUCER)

    def highest(self, producer: str) -> int | None:
        """The highest sequence applied from ``producer``; ``None`` if none yet."""
        raw = self._txn.get(self._key(producer), db=self._db)
        if raw is None:
            return None
        reader = Reader(raw, _VERSION, "dedup")
        sequence = reader.int_()
        reader.done()
        return sequence

    def is_duplicate(self, producer: str, sequence: int) -> bool:
        """Whether ``(producer, sequence)`` was applied already (at or below the highest)."""
        highest = self.highest(producer)
        return highest is not None and sequence <= highest

    def store(self, producer: str, sequence: int) -> None:
        """Record ``sequence`` as the highest applied from ``producer``."""
        writer = Writer(_VERSION)
        writer.int_(sequence)
        self._txn.put(self._key(producer), writer.finish(), db=self._db)
