"""Halted partitions: a WAL partition this process stops applying, with a reason.

Some records cannot be applied here and must not be skipped either: skipping would
make this replica's state diverge from the log for good. Then the partition *halts*:
the WAL consumer pauses it at the record, nothing after it is applied, this process
stops leading it, and every other partition goes on. The process stays up (the admin
API answers, ``/metrics`` shows why), so a halt is never a crash loop.

Reasons (the ``reason`` label of ``logstrate_partition_halted``):

* ``wal_schema_too_new``: the record was written by a newer engine (schema version
  above this engine's). Upgrade this process; the new engine applies the record
  (nothing was marked applied). No retry here: this engine will never read it.
* ``storage_full``: the LMDB map reached ``lmdb_max_map_size_mb``. Raise it and
  restart. Retried every :data:`STORAGE_RETRY_S` too (state may have been purged).
* ``storage_error``: the disk is full or failing (``ENOSPC``, I/O errors). Retried every
  :data:`STORAGE_RETRY_S`: once the disk has room the partition goes on by itself.

A halt ends when the partition is revoked (the next assignment tries again) or its
retry is due (the consumer seeks back to ``applied + 1`` and resumes).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum
from typing import Final

from prometheus_client import Gauge

from engine.logs import get_logger

__all__ = ["HALTED", "STORAGE_RETRY_S", "HaltReason", "PartitionHalt", "clear_halt", "report_halt"]

log = get_logger(__name__)

STORAGE_RETRY_S: Final = 30.0

HALTED: Final = Gauge(
    "logstrate_partition_halted",
    "1 while this engine process has stopped applying the WAL partition, by reason "
    "(wal_schema_too_new: upgrade the engine; storage_full / storage_error: see the error log)",
    ["partition", "reason"],
)


class HaltReason(Enum):
    WAL_SCHEMA_TOO_NEW = "wal_schema_too_new"
    STORAGE_FULL = "storage_full"
    STORAGE_ERROR = "storage_error"


@dataclass(frozen=True, slots=True)
class PartitionHalt:
    """Partition ``partition`` stopped before the record at ``offset``."""

    partition: int
    offset: int
    reason: HaltReason
    message: str
    retry_after_s: float | None = None
    """Seconds until the consumer tries the record again; ``None``: only a new
    assignment (or an upgraded engine) does."""


_lock = threading.Lock()
_reported: dict[int, HaltReason] = {}


def report_halt(halt: PartitionHalt) -> None:
    """Log the halt (at error level the first time, then at warning) and set its gauge."""
    with _lock:
        previous = _reported.get(halt.partition)
        _reported[halt.partition] = halt.reason
    if previous is not None and previous is not halt.reason:
        HALTED.remove(str(halt.partition), previous.value)
    HALTED.labels(str(halt.partition), halt.reason.value).set(1)
    emit = log.error if previous is not halt.reason else log.warning
    emit(
        "WAL partition halted: nothing after this record is applied until the cause is fixed",
        partition=halt.partition,
        offset=halt.offset,
        reason=halt.reason.value,
        error=halt.message,
        retry_after_s=halt.retry_after_s,
    )


def clear_halt(partition: int) -> None:
    """The partition is no longer halted here (revoked, or resumed)."""
    with _lock:
        previous = _reported.pop(partition, None)
    if previous is not None:
        HALTED.remove(str(partition), previous.value)
