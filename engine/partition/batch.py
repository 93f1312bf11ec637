"""Applying one partition's batch of WAL records: one LMDB transaction, whatever happens.

The normal path is one write transaction for the whole batch, status rows written back
after each record, the applied offset stored with the state. Around it:

* **Poison records** (:mod:`engine.partition.state_machine.poison`): a record whose
  apply raises aborts the transaction; the batch is applied again from its start in a
  new transaction, with that record marked, so its outcome (its invocation fails) is
  applied instead. Aborting the whole transaction rather than nesting one per record
  keeps the normal path as it was (no child transaction per record) and discards
  everything of the failed attempt at once: its LMDB writes, the write-back status
  rows and status cache of its :class:`~engine.storage.tables.StorageTables` (built
  afresh per attempt) and the actions it produced. The records before the poison are
  applied again, to the same result: apply is deterministic.
* **A full map** (``lmdb.MapFullError``, from a write or the commit): the map grows
  (:mod:`engine.storage.growth`) and the batch is applied again. When it may not grow,
  or the disk is full or failing, the partition halts (:mod:`engine.partition.halt`).
* **A record of a newer WAL schema** halts the partition at that record: the records
  before it are committed, it is not marked applied.
* Any other unreadable record (corrupt bytes) is skipped with an error log, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import lmdb
from prometheus_client import Counter

from engine.ids import InvocationId
from engine.logs import get_logger
from engine.partition.actions import Action, InvokeAction
from engine.partition.consumer import WalMessage
from engine.partition.halt import STORAGE_RETRY_S, HaltReason, PartitionHalt
from engine.partition.state_machine import (
    WHOLE_RECORD,
    Poisoned,
    RecordApplyError,
    StateMachineOptions,
    apply,
)
from engine.partition.state_machine.poison import describe, is_environmental
from engine.partition.state_reader import InvocationTaskData, load_invocation_task_data
from engine.storage.growth import MapGrowth, StorageFullError
from engine.storage.tables import PartitionTables, StorageTables, TableHandles
from engine.wal import codec

__all__ = ["POISON_RECORDS", "BatchApplier", "BatchOutcome"]

log = get_logger(__name__)

POISON_RECORDS: Final = Counter(
    "logstrate_wal_poison_records",
    "WAL records whose apply raised; their invocation was failed (or they were skipped)",
    ["partition"],
)

# Attempts of one batch before giving up on containing its errors (each poison record
# costs one or two; a batch is at most the consumer's max batch).
_MAX_ATTEMPTS_PER_RECORD: Final = 3


@dataclass(slots=True)
class BatchOutcome:
    """What applying a batch did."""

    actions: list[Action] = field(default_factory=list)
    last_applied: int | None = None
    """The offset of the last record applied (committed); ``None``: nothing was."""
    halt: PartitionHalt | None = None
    """Set when the partition must stop before the record at ``halt.offset``."""


class _Poison(Exception):
    def __init__(self, offset: int, index: int, cause: BaseException) -> None:
        super().__init__(describe(cause))
        self.offset = offset
        self.index = index
        self.cause = cause


class BatchApplier:
    """Applies batches of one environment's partitions (the WAL consumer thread only)."""

    def __init__(
        self,
        env: lmdb.Environment,
        handles: TableHandles,
        *,
        partition_count: int,
        options: StateMachineOptions,
        growth: MapGrowth | None = None,
    ) -> None:
        self._env = env
        self._handles = handles
        self._partition_count = partition_count
        self._options = options
        self._growth = growth

    def apply(self, partition: int, messages: Sequence[WalMessage], *, load_task_data: bool) -> BatchOutcome:
        """Apply ``messages`` of ``partition`` in order (see the module docstring).

        ``load_task_data``: read each ``InvokeAction``'s task data in the transaction
        (the partition is led here)."""
        poisoned: dict[int, dict[int, Poisoned]] = {}
        for _ in range(_MAX_ATTEMPTS_PER_RECORD * len(messages) + 8):
            try:
                return self._attempt(partition, messages, poisoned, load_task_data)
            except _Poison as poison:
                if not self._mark(partition, poisoned, poison):
                    return BatchOutcome(halt=PartitionHalt(
                        partition, poison.offset, HaltReason.STORAGE_ERROR,
                        f"the WAL record at offset {poison.offset} can neither be applied nor skipped "
                        f"({describe(poison.cause)}): the partition's LMDB state may be corrupt; stop the "
                        "engine and move the data dir aside, the state is rebuilt from the WAL", STORAGE_RETRY_S,
                    ))
            except lmdb.MapFullError:
                halt = self._grow(partition, messages[0].offset)
                if halt is not None:
                    return BatchOutcome(halt=halt)
            except Exception as exc:
                if not is_environmental(exc):
                    raise
                log.exception("LMDB write failed", partition=partition)
                return BatchOutcome(halt=PartitionHalt(
                    partition, messages[0].offset, HaltReason.STORAGE_ERROR,
                    f"{describe(exc)}; free disk space or fix the data dir's disk (retried every "
                    f"{STORAGE_RETRY_S:.0f} s)", STORAGE_RETRY_S,
                ))
        # Not reachable unless containing a record raised in a way that was not seen
        # before on every attempt; stop rather than loop.
        return BatchOutcome(halt=PartitionHalt(
            partition, messages[0].offset, HaltReason.STORAGE_ERROR,
            "applying the batch kept failing in new ways; see the error log", STORAGE_RETRY_S,
        ))

    def _attempt(
        self,
        partition: int,
        messages: Sequence[WalMessage],
        poisoned: dict[int, dict[int, Poisoned]],
        load_task_data: bool,
    ) -> BatchOutcome:
        outcome = BatchOutcome()
        actions = outcome.actions
        with self._env.begin(write=True) as txn:
            # Fresh per attempt: a failed attempt's cached and written-back rows go with it.
            tables = StorageTables(txn, self._handles, write_back=True)
            for message in messages:
                offset = message.offset
                try:
                    envelope = codec.decode(message.value)
                except codec.WalSchemaTooNew as exc:
                    outcome.halt = PartitionHalt(partition, offset, HaltReason.WAL_SCHEMA_TOO_NEW, str(exc))
                    break
                except codec.WalCodecError as exc:
                    # A record we cannot read is skipped loudly, never retried forever:
                    # blocking the partition would stop every invocation in it.
                    log.error("unreadable WAL record skipped", partition=partition, offset=offset, error=str(exc))
                    tables.partition(partition).fsm.set_applied_offset(offset)
                    outcome.last_applied = offset
                    continue
                try:
                    actions.extend(apply(
                        tables, partition, envelope, offset, message.timestamp_ms, self._partition_count,
                        options=self._options, poisoned=poisoned.get(offset),
                    ))
                except RecordApplyError as exc:
                    raise _Poison(offset, exc.index, exc.cause) from exc
                except Exception as exc:
                    if is_environmental(exc):
                        raise
                    raise _Poison(offset, WHOLE_RECORD, exc) from exc
                try:
                    # Status rows are written back once per record (StorageTables.write_back).
                    tables.flush()
                except Exception as exc:
                    if is_environmental(exc):
                        raise
                    raise _Poison(offset, WHOLE_RECORD, exc) from exc
                outcome.last_applied = offset
            if load_task_data and actions:
                try:
                    outcome.actions = _with_task_data(tables.partition(partition), actions)
                except Exception as exc:
                    if is_environmental(exc):
                        raise
                    # The leader reads what it needs itself (and meets the error there).
                    log.error("task data of the batch's invocations could not be read", partition=partition,
                              error=describe(exc))
        return outcome

    def _mark(self, partition: int, poisoned: dict[int, dict[int, Poisoned]], poison: _Poison) -> bool:
        """Mark the record that raised for the next attempt; False when skipping it all
        raised too (nothing is left to try)."""
        marks = poisoned.setdefault(poison.offset, {})
        error = describe(poison.cause)
        bound = log.bind(partition=partition, offset=poison.offset, index=poison.index, error=error)
        whole = marks.get(WHOLE_RECORD)
        previous = marks.get(poison.index)
        if whole is not None and whole.skip:
            bound.error("a WAL record raised even when skipped", exc_info=poison.cause)
            return False
        if whole is not None or (previous is not None and previous.skip):
            # Its outcome raised too (or skipping a part was not enough): skip it all.
            description = whole.description if whole is not None else error
            marks.clear()
            marks[WHOLE_RECORD] = Poisoned(description, skip=True)
            bound.error("failing the invocation of a WAL record that raised raised too; the record is skipped")
        elif poison.index == WHOLE_RECORD:
            marks.clear()
            marks[WHOLE_RECORD] = Poisoned(error)
            POISON_RECORDS.labels(str(partition)).inc()
            bound.error("WAL record raised when applied; the invocations it concerns are failed instead",
                        exc_info=poison.cause)
        elif previous is None:
            marks[poison.index] = Poisoned(error)
            POISON_RECORDS.labels(str(partition)).inc()
            bound.error("WAL record raised when applied; its invocation is failed instead", exc_info=poison.cause)
        else:
            marks[poison.index] = Poisoned(previous.description, skip=True)
            bound.error("failing the invocation of a WAL record that raised raised too; the record is skipped")
        return True

    def _grow(self, partition: int, offset: int) -> PartitionHalt | None:
        if self._growth is None:
            return PartitionHalt(partition, offset, HaltReason.STORAGE_FULL, "the LMDB map is full", STORAGE_RETRY_S)
        try:
            self._growth.grow()
            return None
        except StorageFullError as exc:
            return PartitionHalt(partition, offset, HaltReason.STORAGE_FULL, str(exc), STORAGE_RETRY_S)
        except Exception as exc:
            if not is_environmental(exc):
                raise
            return PartitionHalt(
                partition, offset, HaltReason.STORAGE_ERROR,
                f"the LMDB map could not grow ({describe(exc)}); free disk space or address space", STORAGE_RETRY_S,
            )


def _with_task_data(tables: PartitionTables, actions: list[Action]) -> list[Action]:
    """``actions`` with every ``InvokeAction``'s task data read in the batch's transaction."""
    loaded: dict[InvocationId, InvocationTaskData | None] = {}
    out: list[Action] = []
    for action in actions:
        if isinstance(action, InvokeAction) and action.task is None:
            invocation_id = action.invocation_id
            if invocation_id not in loaded:
                loaded[invocation_id] = load_invocation_task_data(tables, invocation_id)
            data = loaded[invocation_id]
            out.append(action if data is None else InvokeAction(invocation_id, data))
        else:
            out.append(action)
    return out
