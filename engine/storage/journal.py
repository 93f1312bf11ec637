"""Tables ``journal`` and ``journal_notifications``: each invocation's journal.

``journal`` holds the entries in order. Key: ``partition (u32) + invocation id (24
bytes) + entry index (u32)``. Value (a :class:`restate_protocol.JournalEntry`): version byte 1, the protocol message type id
(u16, big-endian), then the protobuf body exactly as it goes on the wire: commands as
the SDK sent them, notifications as the engine built them. Version 2 (written by the
state machine) puts the time the entry was applied (u64 ms since the epoch, the
record's timestamp; ``appended_at`` in SQL) between the type id and the body. Replaying an attempt is
reading this range and framing each row.

``journal_notifications`` indexes the journal by notification id, answering "is this
awaited notification already there?" without scanning. Key: ``partition + invocation
id + notification id``, where the notification id is ``0x01 + u64`` (completion id),
``0x02 + u64`` (signal index) or ``0x03 +`` a bounded name (see
:func:`engine.storage.keys.bounded`). Value: version byte 1, then two optional ints:
the completion message type the awaiting command announced (so the notification can
be encoded as the matching protocol message), and the entry index of the notification
once it arrived.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import lmdb

from engine.ids import InvocationId
from engine.storage.codec import Reader, StorageCorruptError, Writer
from engine.storage.keys import bounded, iter_prefix, partition_prefix, u32, u64
from engine.wal import records as r
from restate_protocol import JournalEntry

__all__ = ["DB_NAME", "INDEX_DB_NAME", "JournalTable", "NotificationSlot"]

DB_NAME: Final = b"journal"
INDEX_DB_NAME: Final = b"journal_notifications"
_VERSION: Final = 1
_VERSION_TIMED: Final = 2
_MAX_INLINE_SIGNAL_NAME: Final = 300


@dataclass(frozen=True, slots=True)
class NotificationSlot:
    """What the index knows about one notification id of one invocation."""

    expected_type: int | None
    """The completion message type announced by the command awaiting it, if any."""
    entry_index: int | None
    """Where the notification sits in the journal; ``None`` until it arrived."""


def _encode_entry(entry: JournalEntry, appended_at_ms: int | None) -> bytes:
    head = entry.message_type.to_bytes(2, "big")
    if appended_at_ms is None:
        return bytes((_VERSION,)) + head + entry.message
    return bytes((_VERSION_TIMED,)) + head + appended_at_ms.to_bytes(8, "big") + entry.message


def _decode_timed(raw: bytes) -> tuple[JournalEntry, int | None]:
    if len(raw) >= 3 and raw[0] == _VERSION:
        return JournalEntry(int.from_bytes(raw[1:3], "big"), raw[3:]), None
    if len(raw) >= 11 and raw[0] == _VERSION_TIMED:
        return JournalEntry(int.from_bytes(raw[1:3], "big"), raw[11:]), int.from_bytes(raw[3:11], "big")
    raise StorageCorruptError("journal entry value is truncated or has an unknown layout version")


def _decode_entry(raw: bytes) -> JournalEntry:
    return _decode_timed(raw)[0]


def _notification_component(notification_id: r.NotificationId) -> bytes:
    if isinstance(notification_id, r.CompletionId):
        return b"\x01" + u64(notification_id.id)
    if isinstance(notification_id, r.SignalIndex):
        return b"\x02" + u64(notification_id.index)
    return b"\x03" + bounded(notification_id.name.encode("utf-8"), _MAX_INLINE_SIGNAL_NAME)


class JournalTable:
    """The journals of one partition, inside one LMDB transaction."""

    def __init__(
        self,
        txn: lmdb.Transaction[bytes],
        db: lmdb._Database,
        index_db: lmdb._Database,
        partition: int,
    ) -> None:
        self._txn = txn
        self._db = db
        self._index_db = index_db
        self._prefix = partition_prefix(partition)

    def _invocation_prefix(self, invocation_id: InvocationId) -> bytes:
        return self._prefix + invocation_id.to_bytes()

    # --- entries ------------------------------------------------------------------------

    def get(self, invocation_id: InvocationId, index: int) -> JournalEntry | None:
        """The entry at ``index``, if stored."""
        raw = self._txn.get(self._invocation_prefix(invocation_id) + u32(index), db=self._db)
        return None if raw is None else _decode_entry(raw)

    def put(
        self, invocation_id: InvocationId, index: int, entry: JournalEntry, appended_at_ms: int | None = None
    ) -> None:
        """Store ``entry`` at ``index`` (the caller keeps the journal length), with the
        time it was appended when given."""
        self._txn.put(
            self._invocation_prefix(invocation_id) + u32(index), _encode_entry(entry, appended_at_ms), db=self._db
        )

    def entries(
        self, invocation_id: InvocationId, start: int = 0
    ) -> Iterator[tuple[int, JournalEntry]]:
        """``(index, entry)`` pairs in index order, from ``start``."""
        prefix = self._invocation_prefix(invocation_id)
        for key, value in iter_prefix(self._txn, self._db, prefix, prefix + u32(start)):
            yield int.from_bytes(key[len(prefix) :], "big"), _decode_entry(value)

    def timed_entries(self, invocation_id: InvocationId) -> Iterator[tuple[int, JournalEntry, int | None]]:
        """``(index, entry, appended_at_ms)`` in index order (the time is ``None`` for
        entries stored without one)."""
        prefix = self._invocation_prefix(invocation_id)
        for key, value in iter_prefix(self._txn, self._db, prefix):
            yield (int.from_bytes(key[len(prefix) :], "big"), *_decode_timed(value))

    def timed_scan(self) -> Iterator[tuple[InvocationId, int, JournalEntry, int | None]]:
        """Every entry of the partition with its append time (SQL introspection)."""
        start = len(self._prefix)
        for key, value in iter_prefix(self._txn, self._db, self._prefix):
            yield (InvocationId.from_bytes(key[start : start + 24]), int.from_bytes(key[start + 24 :], "big"),
                   *_decode_timed(value))

    def scan(self) -> Iterator[tuple[InvocationId, int, JournalEntry]]:
        """Every entry of the partition, by invocation id then index (SQL introspection)."""
        start = len(self._prefix)
        for key, value in iter_prefix(self._txn, self._db, self._prefix):
            yield (InvocationId.from_bytes(key[start : start + 24]), int.from_bytes(key[start + 24 :], "big"),
                   _decode_entry(value))

    def delete_all(self, invocation_id: InvocationId) -> int:
        """Delete the journal of ``invocation_id`` and its notification index; rows removed."""
        prefix = self._invocation_prefix(invocation_id)
        removed = 0
        for db in (self._db, self._index_db):
            # Collect first: deleting under a live cursor would skip rows.
            keys = [key for key, _ in iter_prefix(self._txn, db, prefix)]
            for key in keys:
                self._txn.delete(key, db=db)
            if db is self._db:
                removed = len(keys)
        return removed

    # --- notification index -------------------------------------------------------------

    def _slot_key(self, invocation_id: InvocationId, notification_id: r.NotificationId) -> bytes:
        return self._invocation_prefix(invocation_id) + _notification_component(notification_id)

    def slot(
        self, invocation_id: InvocationId, notification_id: r.NotificationId
    ) -> NotificationSlot | None:
        """The index row of ``notification_id``, if a command announced it or it arrived."""
        raw = self._txn.get(self._slot_key(invocation_id, notification_id), db=self._index_db)
        if raw is None:
            return None
        reader = Reader(raw, _VERSION, "journal notification index")
        slot = NotificationSlot(reader.optional(reader.int_), reader.optional(reader.int_))
        reader.done()
        return slot

    def _put_slot(
        self, invocation_id: InvocationId, notification_id: r.NotificationId, slot: NotificationSlot
    ) -> None:
        writer = Writer(_VERSION)
        writer.optional(slot.expected_type, writer.int_)
        writer.optional(slot.entry_index, writer.int_)
        self._txn.put(
            self._slot_key(invocation_id, notification_id), writer.finish(), db=self._index_db
        )

    def expect_completion(
        self, invocation_id: InvocationId, completion_id: int, message_type: int
    ) -> None:
        """A command announced ``completion_id``, to be answered with ``message_type``."""
        notification_id = r.CompletionId(completion_id)
        current = self.slot(invocation_id, notification_id)
        arrived = None if current is None else current.entry_index
        self._put_slot(invocation_id, notification_id, NotificationSlot(message_type, arrived))

    def has_notification(
        self, invocation_id: InvocationId, notification_id: r.NotificationId
    ) -> bool:
        """Whether the journal already holds a notification for ``notification_id``."""
        slot = self.slot(invocation_id, notification_id)
        return slot is not None and slot.entry_index is not None

    def record_notification(
        self, invocation_id: InvocationId, notification_id: r.NotificationId, entry_index: int
    ) -> None:
        """The notification for ``notification_id`` is now at ``entry_index``."""
        current = self.slot(invocation_id, notification_id)
        expected = None if current is None else current.expected_type
        self._put_slot(invocation_id, notification_id, NotificationSlot(expected, entry_index))
