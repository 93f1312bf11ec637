"""Poison records: a WAL record whose apply raises fails its invocation, not the partition.

A record that makes a handler of the state machine raise (an out-of-range value that
does not fit the storage layout, a record type without a handler, a bug) would raise
again on every replica and after every restart: letting it escape would stop the
partition for good, or crash every process that takes the partition over in turn.
Instead the caller (:mod:`engine.partition.batch`) throws the whole LMDB transaction
away (every write of the failed record, the status rows it cached, the actions it
produced) and applies the batch again with the record marked *poisoned*; this module
then applies the deterministic outcome in its place:

* the invocation the record belongs to ends with :func:`poison_failure` (code 500,
  naming the record, its offset and the error), as a kill would end it: callers and
  waiting requests get that failure, its lock passes on, its timers are dropped;
* an ``Invoke`` (or ``AttachInvocation``, ``GetInvocationOutput``) answers its response
  sink with the failure instead (an ``Invoke`` that fails creates no invocation);
* a record that belongs to no invocation (leadership, outbox truncation, state
  patches) is skipped with an error log.

If even that outcome raises, the record is skipped (only its offset is stored).
Everything here depends only on the record and the state before it, and the error's
description comes from the same code on every replica, so replicas agree.

Errors of the environment are not the record's fault and are never contained here:
``lmdb.MapFullError`` (grow the map and retry), full disks and I/O errors (halt the
partition), see :func:`is_environmental`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import lmdb

from engine.partition.actions import AbortInvocation
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.lifecycle import complete
from engine.partition.state_machine.responses import answer_sinks
from engine.storage.invocation_status import StatusKind
from engine.wal import records as r

__all__ = [
    "WHOLE_RECORD",
    "Poisoned",
    "RecordApplyError",
    "describe",
    "fail_poisoned",
    "is_environmental",
    "poison_failure",
]

POISON_CODE: Final = 500

WHOLE_RECORD: Final = -1
"""The index of a poison mark that concerns the whole WAL record (every record of a
``RecordBatch``), not one record inside it."""

# Errors a write can raise that say nothing about the record: the same record applies
# on another machine, or here once the map is grown or the disk has room.
_RECORD_LMDB_ERRORS: Final = (lmdb.BadValsizeError, lmdb.KeyExistsError, lmdb.NotFoundError)


def is_environmental(exc: BaseException) -> bool:
    """True for errors of the storage or the process, not of the record being applied."""
    if isinstance(exc, _RECORD_LMDB_ERRORS):
        return False  # a key or value the record made too large: deterministic
    return isinstance(exc, lmdb.Error | OSError | MemoryError)


@dataclass(frozen=True, slots=True)
class Poisoned:
    """How to apply a record that raised: fail its invocation, or (``skip``: failing it
    raised too) only store its offset."""

    description: str
    skip: bool = False


class RecordApplyError(Exception):
    """Applying the record at ``index`` of a WAL record (0, or its index in a
    ``RecordBatch``) raised ``cause``."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(f"record {index}: {describe(cause)}")
        self.index = index
        self.cause = cause


def describe(exc: BaseException) -> str:
    """What went wrong, the same on every replica running this code."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return f"{name}: {exc}"[:300]


def poison_failure(ctx: ApplyContext, record: r.Record, description: str) -> r.Failure:
    """The failure an invocation ends with when one of its records cannot be applied."""
    return r.Failure(
        POISON_CODE,
        f"the engine could not apply a {type(record).__name__} record of this invocation "
        f"(WAL partition {ctx.partition}, offset {ctx.offset}: {description}); the invocation was "
        "failed so that the partition goes on. Check the values the handler passed (times, "
        "sizes) and report it if they were valid",
    )


def fail_poisoned(ctx: ApplyContext, record: r.Record, description: str) -> None:
    """Apply the outcome of a poison ``record`` (see the module docstring)."""
    invocation_id = getattr(record, "invocation_id", None)
    log = ctx.log.bind(record=type(record).__name__, error=description)
    if invocation_id is None:
        log.error("WAL record could not be applied and belongs to no invocation; skipped")
        return
    failure = poison_failure(ctx, record, description)
    log = log.bind(invocation_id=str(invocation_id))
    if isinstance(record, r.Invoke | r.AttachInvocation | r.GetInvocationOutput):
        # Such a record creates the invocation or adds someone waiting for it: whoever
        # waits for this record's answer gets the failure; an invocation created by an
        # earlier record is not this record's to fail.
        sink = record.response_sink if isinstance(record, r.Invoke) else record.sink
        if sink is not None:
            answer_sinks(ctx, invocation_id, (sink,), failure)
        log.error("WAL record could not be applied; its caller was answered with the failure")
        return
    status = ctx.tables.status.get(invocation_id)
    if status is None or status.kind is StatusKind.COMPLETED:
        log.error("WAL record could not be applied; its invocation is unknown or completed, skipped")
        return
    if status.in_flight:
        ctx.emit(AbortInvocation(invocation_id))
    complete(ctx, invocation_id, status, failure)
    log.error("WAL record could not be applied; its invocation was failed", previous=status.kind.value)
