"""Table ``outbox``: records a partition must deliver to other partitions, in order.

The state machine puts a row here when an invocation calls or sends to another one
(an ``Invoke``) or completes with a caller waiting (a ``Notify``). The leader's outbox
shuffle appends each record to the partition owning ``target_partition_key`` and then
``OutboxTruncate`` to its own partition, which deletes the delivered rows.

Key: ``partition (u32) + sequence (u64)``; sequences come from the partition's outbox
counter (:mod:`engine.storage.fsm`). Value: version byte 1, the target partition key
(u64, big-endian), then the record in the WAL encoding (:mod:`engine.wal.codec`), so
it is delivered byte-for-byte as it would be written to Kafka.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import lmdb

from engine.storage.codec import StorageCorruptError
from engine.storage.keys import iter_prefix, partition_prefix, u64
from engine.wal import codec
from engine.wal.records import Record

__all__ = ["DB_NAME", "OutboxMessage", "OutboxTable"]

DB_NAME: Final = b"outbox"
_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One record waiting to be delivered to the partition owning ``target_partition_key``."""

    sequence: int
    target_partition_key: int
    record: Record


class OutboxTable:
    """The outbox of one partition, inside one LMDB transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], db: lmdb._Database, partition: int) -> None:
        self._txn = txn
        self._db = db
        self._prefix = partition_prefix(partition)

    def _decode(self, key: bytes, raw: bytes) -> OutboxMessage:
        if len(raw) < 9 or raw[0] != _VERSION:
            raise StorageCorruptError("outbox value is truncated or has an unknown layout version")
        try:
            envelope = codec.decode(raw[9:])
        except codec.WalCodecError as exc:
            raise StorageCorruptError(f"outbox record does not decode: {exc}") from exc
        return OutboxMessage(
            sequence=int.from_bytes(key[len(self._prefix) :], "big"),
            target_partition_key=int.from_bytes(raw[1:9], "big"),
            record=envelope.record,
        )

    def put(self, message: OutboxMessage) -> None:
        """Store ``message`` under its sequence."""
        value = (
            bytes((_VERSION,)) + u64(message.target_partition_key) + codec.encode(message.record)
        )
        self._txn.put(self._prefix + u64(message.sequence), value, db=self._db)

    def get(self, sequence: int) -> OutboxMessage | None:
        """The message at ``sequence``, if not yet truncated."""
        key = self._prefix + u64(sequence)
        raw = self._txn.get(key, db=self._db)
        return None if raw is None else self._decode(key, raw)

    def scan(self, from_sequence: int = 0) -> Iterator[OutboxMessage]:
        """Messages with ``sequence >= from_sequence``, in sequence order."""
        start = self._prefix + u64(from_sequence)
        for key, raw in iter_prefix(self._txn, self._db, self._prefix, start):
            yield self._decode(key, raw)

    def truncate(self, up_to: int) -> int:
        """Delete every message with ``sequence <= up_to``; how many were deleted."""
        if up_to < 0:
            return 0
        end = self._prefix + u64(up_to)
        keys: list[bytes] = []
        for key, _ in iter_prefix(self._txn, self._db, self._prefix):
            if key > end:
                break
            keys.append(key)
        for key in keys:
            self._txn.delete(key, db=self._db)
        return len(keys)
