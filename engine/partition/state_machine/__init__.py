"""The partition state machine: ``apply(tables, partition, envelope, ...) -> actions``.

Applying a WAL record is a pure function of the partition's LMDB state and the
record: it writes the tables inside the caller's transaction and returns the
:mod:`~engine.partition.actions` the leader should carry out after the commit.
Followers run exactly the same code and drop the actions. Nothing here reads the
clock, the network or the process's configuration beyond :class:`StateMachineOptions`.

The work is split by concern: :mod:`.fencing` (epochs and dedup), :mod:`.invoke`
(admission), :mod:`.journal_commands` (what each command does),
:mod:`.notifications`, :mod:`.lifecycle` (suspend, fail and retry, end, cleanup),
:mod:`.owned` (an invocation's timers and called children), :mod:`.timers`,
:mod:`.kill_cancel`, :mod:`.pause_resume`, :mod:`.restart` (restart as new),
:mod:`.attach`, :mod:`.leadership` and :mod:`.admin`. A record whose handler raises
is reported as :class:`~.poison.RecordApplyError`; applied again with ``poisoned``
set, it fails its invocation instead (:mod:`.poison`).

Every record, applied or dropped, stores its offset as the partition's applied
offset; a record at or below the stored offset was applied before and is skipped
without any write (a replay after a crash between commit and consumer position).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from engine.logs import get_logger
from engine.partition.actions import Action
from engine.partition.state_machine.admin import on_patch_state
from engine.partition.state_machine.attach import on_attach, on_get_output
from engine.partition.state_machine.context import (
    DEFAULT_OPTIONS,
    ApplyContext,
    StateMachineOptions,
)
from engine.partition.state_machine.fencing import admit_envelope
from engine.partition.state_machine.invoke import on_invoke
from engine.partition.state_machine.journal_commands import on_journal_append
from engine.partition.state_machine.kill_cancel import on_cancel, on_kill
from engine.partition.state_machine.leadership import on_announce_leader
from engine.partition.state_machine.lifecycle import (
    on_deployment_pinned,
    on_ended,
    on_failed_attempt,
    on_purge,
    on_suspended,
)
from engine.partition.state_machine.notifications import on_notify
from engine.partition.state_machine.pause_resume import on_pause, on_resume
from engine.partition.state_machine.poison import (
    WHOLE_RECORD,
    Poisoned,
    RecordApplyError,
    fail_poisoned,
    is_environmental,
)
from engine.partition.state_machine.responses import on_outbox_truncate
from engine.partition.state_machine.restart import on_restart_as_new
from engine.partition.state_machine.timers import on_timer_fired
from engine.storage.tables import StorageTables
from engine.wal import records as r
from engine.wal.partitioning import partition_for, partition_key_for_key

__all__ = ["DEFAULT_OPTIONS", "WHOLE_RECORD", "Poisoned", "RecordApplyError", "StateMachineOptions", "apply"]

_log = get_logger(__name__)

_HANDLERS: Final[dict[type[Any], Callable[[ApplyContext, Any], None]]] = {
    r.Invoke: on_invoke,
    r.JournalAppend: on_journal_append,
    r.InvocationSuspended: on_suspended,
    r.InvocationEnded: on_ended,
    r.InvocationFailedAttempt: on_failed_attempt,
    r.DeploymentPinned: on_deployment_pinned,
    r.Notify: on_notify,
    r.TimerFired: on_timer_fired,
    r.OutboxTruncate: on_outbox_truncate,
    r.AnnounceLeader: on_announce_leader,
    r.CancelInvocation: on_cancel,
    r.KillInvocation: on_kill,
    r.PurgeInvocation: on_purge,
    r.AttachInvocation: on_attach,
    r.PatchState: on_patch_state,
    r.PauseInvocation: on_pause,
    r.ResumeInvocation: on_resume,
    r.GetInvocationOutput: on_get_output,
    r.RestartAsNewInvocation: on_restart_as_new,
}


def apply(
    tables: StorageTables,
    partition: int,
    envelope: r.Envelope,
    offset: int,
    timestamp_ms: int,
    partition_count: int,
    *,
    options: StateMachineOptions = DEFAULT_OPTIONS,
    poisoned: Mapping[int, Poisoned] | None = None,
) -> list[Action]:
    """Apply one WAL record of ``partition`` at ``offset`` inside ``tables``' write transaction.

    Args:
        tables: The table handles bound to the batch's LMDB write transaction.
        partition: The WAL partition the record was read from.
        envelope: The decoded record and its stamps.
        offset: The record's Kafka offset; stored as the applied offset.
        timestamp_ms: The record's Kafka timestamp; the state machine's only clock.
        partition_count: The WAL's partition count (checks record placement).
        options: Cluster-wide settings (retention); the same on every process.
        poisoned: The records of this WAL record that raised when it was applied
            before (index 0, or the index in a ``RecordBatch``; :data:`WHOLE_RECORD`
            for all of it): their outcome is applied instead (:mod:`.poison`).

    Returns:
        The actions for the leader, in the order they arose.

    Raises:
        RecordApplyError: A record's handler raised (the caller must abort the
            transaction and apply again with the record in ``poisoned``). Errors of
            the storage itself (:func:`~.poison.is_environmental`) propagate as they are.
    """
    pt = tables.partition(partition)
    applied = pt.fsm.applied_offset()
    if applied is not None and offset <= applied:
        _log.debug(
            "record at or below the applied offset skipped", partition=partition, offset=offset
        )
        return []
    ctx = ApplyContext(
        tables=pt,
        partition=partition,
        partition_count=partition_count,
        offset=offset,
        now_ms=timestamp_ms,
        options=options,
        base_log=_log,
        poisoned=poisoned,
    )
    whole = None if poisoned is None else poisoned.get(WHOLE_RECORD)
    if whole is not None and whole.skip:
        ctx.log.error("WAL record could not be applied; skipped", error=whole.description)
    elif admit_envelope(ctx, envelope):
        record = envelope.record
        if _owned_here(ctx, record):
            if isinstance(record, r.RecordBatch):
                _on_record_batch(ctx, record)
            else:
                _apply_one(ctx, 0, record)
    elif isinstance(envelope.record, r.RecordBatch) and envelope.dedup_id is None:
        # Fenced off: a deposed leader's batch. The callers' Invokes it carried are not
        # the leader's records (see RecordBatch): they count, as if appended alone.
        for index, record in enumerate(envelope.record.records):
            if isinstance(record, r.Invoke) and _owned_here(ctx, record):
                _apply_one(ctx, index, record)
    pt.fsm.set_applied_offset(offset)
    return ctx.actions


def _on_record_batch(ctx: ApplyContext, batch: r.RecordBatch) -> None:
    # The batch passed fencing as a whole (one leader, one epoch); each record is then
    # what it would be as the next WAL record, its own routing check included.
    for index, record in enumerate(batch.records):
        rejected = ctx.rejected_speculations
        if rejected is not None and not isinstance(record, r.Invoke) and getattr(record, "invocation_id", None) in rejected:
            # A refused speculative attempt's record (see Invoke.speculation): the
            # invocation runs anew, from what the log holds.
            continue
        if _owned_here(ctx, record):
            _apply_one(ctx, index, record)


def _apply_one(ctx: ApplyContext, index: int, record: r.Record) -> None:
    """Apply ``record`` (number ``index`` of its WAL record), or its poison outcome."""
    poison = None
    if ctx.poisoned is not None:
        poison = ctx.poisoned.get(index) or ctx.poisoned.get(WHOLE_RECORD)
    try:
        if poison is None:
            handler = _HANDLERS.get(type(record))
            if handler is None:
                raise KeyError(f"no state machine handler for {type(record).__name__} records")
            handler(ctx, record)
        elif poison.skip:
            ctx.log.error("WAL record could not be applied; skipped", error=poison.description,
                          record=type(record).__name__, index=index)
        else:
            fail_poisoned(ctx, record, poison.description)
    except Exception as exc:
        if is_environmental(exc):
            raise
        raise RecordApplyError(index, exc) from exc


def _owned_here(ctx: ApplyContext, record: r.Record) -> bool:
    """Whether ``record`` concerns something this partition owns (routing sanity check)."""
    if isinstance(record, r.RecordBatch):
        return True  # checked record by record
    if isinstance(record, r.PatchState):
        partition_key: int = partition_key_for_key(record.service, record.key)
    elif isinstance(record, r.OutboxTruncate | r.AnnounceLeader):
        return True
    else:
        partition_key = record.invocation_id.partition_key
    owner = partition_for(partition_key, ctx.partition_count)
    if owner != ctx.partition:
        ctx.log.error(
            "record for another partition; ignored", record=type(record).__name__, owner=owner
        )
        return False
    return True
