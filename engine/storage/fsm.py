"""Table ``fsm``: per-partition bookkeeping of the state machine itself.

One row per (partition, field):

=====================  ==========================================================
field                  value
=====================  ==========================================================
applied offset         the Kafka offset of the last WAL record applied
leader                 the current leader epoch and node id (from AnnounceLeader)
next outbox sequence   the sequence number the next outbox row takes
next inbox sequence    the sequence number the next inbox row takes
=====================  ==========================================================

Key: ``partition (u32) + field tag (u8)``. Values: version byte 1, then the fields in
the :mod:`engine.storage.codec` layout. Every row is written in the same LMDB
transaction as the state it describes, so the applied offset always matches the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import lmdb

from engine.storage.codec import Reader, Writer
from engine.storage.keys import partition_prefix

__all__ = ["DB_NAME", "FsmTable", "LeaderEpoch"]

DB_NAME: Final = b"fsm"
_VERSION: Final = 1

_APPLIED_OFFSET: Final = b"\x01"
_LEADER: Final = b"\x02"
_NEXT_OUTBOX: Final = b"\x03"
_NEXT_INBOX: Final = b"\x04"


@dataclass(frozen=True, slots=True)
class LeaderEpoch:
    """Who leads the partition, since which epoch."""

    epoch: int
    node_id: str


class FsmTable:
    """The ``fsm`` rows of one partition, inside one LMDB transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], db: lmdb._Database, partition: int) -> None:
        self._txn = txn
        self._db = db
        self._prefix = partition_prefix(partition)

    def _get_int(self, field: bytes) -> int | None:
        raw = self._txn.get(self._prefix + field, db=self._db)
        if raw is None:
            return None
        reader = Reader(raw, _VERSION, "fsm")
        value = reader.int_()
        reader.done()
        return value

    def _put_int(self, field: bytes, value: int) -> None:
        writer = Writer(_VERSION)
        writer.int_(value)
        self._txn.put(self._prefix + field, writer.finish(), db=self._db)

    # --- applied offset ---------------------------------------------------------------

    def applied_offset(self) -> int | None:
        """The offset of the last applied WAL record; ``None`` before the first one."""
        return self._get_int(_APPLIED_OFFSET)

    def set_applied_offset(self, offset: int) -> None:
        """Record that everything up to and including ``offset`` is applied."""
        self._put_int(_APPLIED_OFFSET, offset)

    # --- leadership -------------------------------------------------------------------

    def leader(self) -> LeaderEpoch | None:
        """The current leader; ``None`` until the first AnnounceLeader is applied."""
        raw = self._txn.get(self._prefix + _LEADER, db=self._db)
        if raw is None:
            return None
        reader = Reader(raw, _VERSION, "fsm leader")
        leader = LeaderEpoch(reader.int_(), reader.str_())
        reader.done()
        return leader

    def current_epoch(self) -> int:
        """The current leader epoch; 0 (older than any real epoch) before any leader."""
        leader = self.leader()
        return 0 if leader is None else leader.epoch

    def set_leader(self, leader: LeaderEpoch) -> None:
        """Store a new leader epoch."""
        writer = Writer(_VERSION)
        writer.int_(leader.epoch)
        writer.str_(leader.node_id)
        self._txn.put(self._prefix + _LEADER, writer.finish(), db=self._db)

    # --- sequences ----------------------------------------------------------------------

    def next_outbox_sequence(self) -> int:
        """The sequence the next outbox row will take (0 for a fresh partition)."""
        return self._get_int(_NEXT_OUTBOX) or 0

    def allocate_outbox_sequence(self) -> int:
        """Take the next outbox sequence number."""
        sequence = self.next_outbox_sequence()
        self._put_int(_NEXT_OUTBOX, sequence + 1)
        return sequence

    def next_inbox_sequence(self) -> int:
        """The sequence the next inbox row will take (0 for a fresh partition)."""
        return self._get_int(_NEXT_INBOX) or 0

    def allocate_inbox_sequence(self) -> int:
        """Take the next inbox sequence number."""
        sequence = self.next_inbox_sequence()
        self._put_int(_NEXT_INBOX, sequence + 1)
        return sequence
