"""All partition tables, opened once per environment and bound to a transaction.

LMDB named databases must be opened outside of other write transactions, so the
process opens every table once at start-up (:meth:`TableHandles.open`) and each
transaction binds the handles: ``StorageTables(txn, handles).partition(p)`` gives the
typed table objects of partition ``p``. Binding is cheap (no I/O), so the partition
processor binds per batch and the invoker per read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lmdb

from engine.storage import (
    dedup,
    fsm,
    inbox,
    invocation_status,
    journal,
    locks,
    outbox,
    promises,
    state,
    timers,
)
from engine.storage.dedup import DedupTable
from engine.storage.fsm import FsmTable
from engine.storage.inbox import InboxTable
from engine.storage.invocation_status import InvocationStatusTable
from engine.storage.journal import JournalTable
from engine.storage.locks import LocksTable
from engine.storage.outbox import OutboxTable
from engine.storage.promises import PromisesTable
from engine.storage.state import StateTable
from engine.storage.timers import TimersTable

__all__ = ["PartitionTables", "StorageTables", "TableHandles"]


@dataclass(frozen=True, slots=True)
class TableHandles:
    """The opened named databases of every partition table."""

    fsm: lmdb._Database
    invocation_status: lmdb._Database
    journal: lmdb._Database
    journal_notifications: lmdb._Database
    state: lmdb._Database
    inbox: lmdb._Database
    locks: lmdb._Database
    timers: lmdb._Database
    outbox: lmdb._Database
    dedup: lmdb._Database
    promises: lmdb._Database

    @classmethod
    def open(cls, env: lmdb.Environment) -> TableHandles:
        """Open (creating if missing) every table; call with no transaction active."""
        return cls(
            fsm=env.open_db(fsm.DB_NAME),
            invocation_status=env.open_db(invocation_status.DB_NAME),
            journal=env.open_db(journal.DB_NAME),
            journal_notifications=env.open_db(journal.INDEX_DB_NAME),
            state=env.open_db(state.DB_NAME),
            inbox=env.open_db(inbox.DB_NAME),
            locks=env.open_db(locks.DB_NAME),
            timers=env.open_db(timers.DB_NAME),
            outbox=env.open_db(outbox.DB_NAME),
            dedup=env.open_db(dedup.DB_NAME),
            promises=env.open_db(promises.DB_NAME),
        )

    def all(self) -> dict[str, lmdb._Database]:
        """Every handle by table name (for dumps in tests and tools)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class StorageTables:
    """The table handles bound to one LMDB transaction (read or write)."""

    txn: lmdb.Transaction[bytes]
    handles: TableHandles
    # Status writes kept until :meth:`flush` (the partition processor's transactions).
    write_back: bool = False
    _partitions: dict[int, PartitionTables] = field(default_factory=dict, compare=False, repr=False)

    def partition(self, partition: int) -> PartitionTables:
        """The tables of ``partition`` in this transaction (the same objects every call,
        so what they cache about the transaction is shared by every record of a batch)."""
        tables = self._partitions.get(partition)
        if tables is None:
            tables = self._partitions[partition] = PartitionTables(
                self.txn, self.handles, partition, write_back=self.write_back
            )
        return tables

    def flush(self) -> None:
        """Write what write-back tables keep (call before the transaction commits)."""
        for tables in self._partitions.values():
            tables.status.flush()


class PartitionTables:
    """One partition's tables in one transaction, as typed table objects."""

    def __init__(
        self, txn: lmdb.Transaction[bytes], handles: TableHandles, partition: int, *, write_back: bool = False
    ) -> None:
        self.txn = txn
        self.partition = partition
        self.fsm = FsmTable(txn, handles.fsm, partition)
        self.status = InvocationStatusTable(txn, handles.invocation_status, partition, write_back=write_back)
        self.journal = JournalTable(txn, handles.journal, handles.journal_notifications, partition)
        self.state = StateTable(txn, handles.state, partition)
        self.inbox = InboxTable(txn, handles.inbox, partition)
        self.locks = LocksTable(txn, handles.locks, partition)
        self.timers = TimersTable(txn, handles.timers, partition)
        self.outbox = OutboxTable(txn, handles.outbox, partition)
        self.dedup = DedupTable(txn, handles.dedup, partition)
        self.promises = PromisesTable(txn, handles.promises, partition)
