"""An invocation's life after it started: suspend, fail and retry, pin, end, clean up.

Ending is shared by every way an invocation can finish (the handler returned, it was
killed, a not-yet-started one was cancelled): answer the response sinks, drop its
pending timers, give the key's lock to the next invocation in the inbox, drop the
journal (unless a journal retention applies), and keep the status with its result for
the retention period (a CLEANUP timer deletes it), or delete it at once when the
retention is 0.

Retention: the invocation's own ``completion_retention_ms`` (resolved from the
service's idempotency or workflow completion retention when it was created), else the
engine default of :class:`StateMachineOptions`. A journal retention keeps the journal
until the cleanup too; for invocations without an idempotency key or workflow id it
also stretches the retention to at least the journal retention (restate-server caps
the journal retention by the idempotency / workflow retention instead, and so does
this for those).

A failed attempt whose retry policy gave up with "pause" parks the invocation in the
Paused status: no timer, no attempt, until ``ResumeInvocation`` (:mod:`.pause_resume`).
"""

from __future__ import annotations

from engine.ids import InvocationId
from engine.partition.actions import InvokeAction, RegisterTimer
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.dead_letters import send_dead_letter
from engine.partition.state_machine.invoke import lock_key, start
from engine.partition.state_machine.owned import drop_timer, drop_timers
from engine.partition.state_machine.responses import answer_sinks
from engine.storage.invocation_status import InvocationStatus, LastFailure, StatusKind
from engine.wal.records import (
    DeploymentPinned,
    Failure,
    HandlerKind,
    InvocationEnded,
    InvocationFailedAttempt,
    InvocationSuspended,
    InvocationTarget,
    OutputResult,
    PurgeInvocation,
    TimerKey,
    TimerKind,
)

__all__ = [
    "complete",
    "on_cleanup_due",
    "on_deployment_pinned",
    "on_ended",
    "on_failed_attempt",
    "on_purge",
    "on_retry_due",
    "on_suspended",
    "release_lock",
]


def on_suspended(ctx: ApplyContext, record: InvocationSuspended) -> None:
    """The attempt suspended: wait, unless an awaited notification is already journaled."""
    invocation_id = record.invocation_id
    status = ctx.tables.status.get(invocation_id)
    log = ctx.log_for(invocation_id)
    if status is None or status.kind is not StatusKind.INVOKED:
        log.debug("suspension for an invocation that is not running; ignored")
        return
    journal = ctx.tables.journal
    if any(journal.has_notification(invocation_id, n) for n in record.waiting_for):
        # It arrived while the attempt was finishing: the SDK just did not see it.
        ctx.emit(InvokeAction(invocation_id))
        ctx.tables.status.put(invocation_id, status.touched(ctx.now_ms))
        log.debug("awaited notification already journaled; resuming at once")
        return
    if not record.waiting_for:
        log.warning("suspended without waiting for anything; only kill or cancel can wake it")
    ctx.tables.status.put(
        invocation_id,
        status.touched(ctx.now_ms, kind=StatusKind.SUSPENDED, waiting_for=record.waiting_for),
    )


def on_ended(ctx: ApplyContext, record: InvocationEnded) -> None:
    """The handler returned a value or failed terminally."""
    status = ctx.tables.status.get(record.invocation_id)
    if status is None or status.kind is not StatusKind.INVOKED:
        ctx.log_for(record.invocation_id).debug(
            "end for an invocation that is not running; ignored"
        )
        return
    complete(ctx, record.invocation_id, status, record.result)
    if isinstance(record.result, Failure):
        # Subscription events that asked for it keep their input on a dead-letter topic.
        send_dead_letter(ctx, record.invocation_id, status, record.result)


def on_failed_attempt(ctx: ApplyContext, record: InvocationFailedAttempt) -> None:
    """An attempt failed with a retryable error: remember why, retry at ``retry_at_ms``
    (or, when the retry policy gave up with "pause", park the invocation as Paused)."""
    invocation_id = record.invocation_id
    status = ctx.tables.status.get(invocation_id)
    if status is None or status.kind is not StatusKind.INVOKED:
        ctx.log_for(invocation_id).debug(
            "failed attempt for an invocation that is not running; ignored"
        )
        return
    if status.last_failure is not None:
        # A retry that was due early (resume) may leave its timer behind.
        drop_timer(ctx, TimerKey(status.last_failure.retry_at_ms, invocation_id, TimerKind.RETRY))
    failed = status.touched(
        ctx.now_ms,
        attempt=record.attempt,
        retries_since_last_entry=status.retries_since_last_entry + 1,
        last_failure=LastFailure(
            record.code,
            record.message,
            record.retry_at_ms,
            record.related_command_index,
            record.related_command_name,
            record.related_command_type,
        ),
    )
    if record.paused:
        ctx.tables.status.put(invocation_id, failed.touched(ctx.now_ms, kind=StatusKind.PAUSED))
        ctx.log_for(invocation_id).warning(
            "attempts used up; invocation paused until resumed",
            code=record.code,
            attempt=record.attempt,
            error=record.message,
        )
        return
    timer = TimerKey(record.retry_at_ms, invocation_id, TimerKind.RETRY)
    ctx.tables.status.put(invocation_id, failed)
    ctx.tables.timers.put(timer)
    ctx.emit(RegisterTimer(timer))
    ctx.log_for(invocation_id).info(
        "attempt failed; retry scheduled",
        code=record.code,
        attempt=record.attempt,
        retry_at_ms=record.retry_at_ms,
    )


def on_retry_due(ctx: ApplyContext, invocation_id: InvocationId, timer: TimerKey) -> None:
    """A RETRY timer fired: start the next attempt if this is still the pending retry."""
    status = ctx.tables.status.get(invocation_id)
    if (
        status is None
        or status.kind is not StatusKind.INVOKED
        or status.last_failure is None
        or status.last_failure.retry_at_ms != timer.fire_at_ms
    ):
        ctx.log_for(invocation_id).debug("stale retry timer ignored")
        return
    ctx.emit(InvokeAction(invocation_id))


def on_deployment_pinned(ctx: ApplyContext, record: DeploymentPinned) -> None:
    """The first attempt chose a deployment; every later attempt must use the same one."""
    status = ctx.tables.status.get(record.invocation_id)
    if status is None or not status.in_flight or status.deployment_id is not None:
        ctx.log_for(record.invocation_id).debug(
            "deployment pin ignored (not running, or pinned already)"
        )
        return
    ctx.tables.status.put(
        record.invocation_id,
        status.touched(
            ctx.now_ms, deployment_id=record.deployment_id, protocol_version=record.protocol_version
        ),
    )


def on_cleanup_due(ctx: ApplyContext, invocation_id: InvocationId, timer: TimerKey) -> None:
    """A CLEANUP timer fired: forget the completed invocation it was set for."""
    status = ctx.tables.status.get(invocation_id)
    # The id may have been purged and reused (idempotency keys, workflow ids) since.
    if (
        status is None
        or status.kind is not StatusKind.COMPLETED
        or status.cleanup_at_ms != timer.fire_at_ms
    ):
        ctx.log_for(invocation_id).debug("stale cleanup timer ignored")
        return
    _forget(ctx, invocation_id, status)


def on_purge(ctx: ApplyContext, record: PurgeInvocation) -> None:
    """Delete a completed invocation before its retention ends (admin purge)."""
    status = ctx.tables.status.get(record.invocation_id)
    if status is None or status.kind is not StatusKind.COMPLETED:
        ctx.log_for(record.invocation_id).debug(
            "purge of an invocation that is not completed; ignored"
        )
        return
    if status.cleanup_at_ms is not None:
        drop_timer(ctx, TimerKey(status.cleanup_at_ms, record.invocation_id, TimerKind.CLEANUP))
    _forget(ctx, record.invocation_id, status)


def _forget(ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus) -> None:
    """Delete a completed invocation; a workflow run takes its instance's state and
    promises with it (they live as long as the run's retention, as on restate-server)."""
    ctx.tables.status.delete(invocation_id)
    ctx.tables.journal.delete_all(invocation_id)
    target = status.target
    if target.handler_kind is HandlerKind.WORKFLOW and target.key is not None:
        states = ctx.tables.state.clear_all(target.service, target.key)
        promises = ctx.tables.promises.clear_all(target.service, target.key)
        ctx.log_for(invocation_id).debug(
            "workflow instance forgotten", state_keys=states, promises=promises
        )


def release_lock(ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus) -> None:
    """Free the key if ``invocation_id`` holds it, and start the next queued invocation."""
    target = status.target
    key = lock_key(status)
    if key is None or ctx.tables.locks.holder(target.service, key) != invocation_id:
        return
    ctx.tables.locks.release(target.service, key)
    while (entry := ctx.tables.inbox.pop(target.service, key)) is not None:
        waiting = ctx.tables.status.get(entry.invocation_id)
        if waiting is None or waiting.kind is not StatusKind.INBOXED:
            # Not reachable while kill/cancel remove their inbox rows; skip defensively.
            ctx.log_for(entry.invocation_id).warning(
                "inbox entry without an inboxed status; skipped"
            )
            continue
        ctx.tables.locks.acquire(target.service, key, entry.invocation_id)
        start(ctx, entry.invocation_id, waiting)
        return


def complete(
    ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus, result: OutputResult
) -> None:
    """Finish the invocation with ``result`` (see the module docstring)."""
    answer_sinks(ctx, invocation_id, status.response_sinks, result)
    target = status.target
    queued_on = lock_key(status)
    if status.kind is StatusKind.INBOXED and status.inbox_sequence is not None and queued_on:
        ctx.tables.inbox.remove(target.service, queued_on, status.inbox_sequence)
    drop_timers(ctx, invocation_id, status)
    retention, keep_journal = _retention(ctx, status)
    if not keep_journal:
        ctx.tables.journal.delete_all(invocation_id)
    if retention > 0:
        cleanup_at = ctx.now_ms + retention
        ctx.tables.status.put(
            invocation_id,
            status.touched(
                ctx.now_ms,
                kind=StatusKind.COMPLETED,
                result=result,
                cleanup_at_ms=cleanup_at,
                response_sinks=(),
                waiting_for=(),
                inbox_sequence=None,
                journal_length=status.journal_length if keep_journal else 0,
            ),
        )
        timer = TimerKey(cleanup_at, invocation_id, TimerKind.CLEANUP)
        ctx.tables.timers.put(timer)
        ctx.emit(RegisterTimer(timer))
    else:
        ctx.tables.status.delete(invocation_id)
    # Last: the next invocation of the key starts after this one is fully settled.
    release_lock(ctx, invocation_id, status)
    ctx.log_for(invocation_id).debug(
        "invocation completed", failed=isinstance(result, Failure), retention_ms=retention
    )


def _retention(ctx: ApplyContext, status: InvocationStatus) -> tuple[int, bool]:
    """How long to keep the completed invocation (ms), and whether its journal too."""
    base = status.completion_retention_ms
    if base is None:
        base = ctx.options.retention_for(status)
    journal = status.journal_retention_ms or 0
    capped = status.idempotency_key is not None or status.target.handler_kind is HandlerKind.WORKFLOW
    retention = base if capped else max(base, journal)
    return retention, journal > 0 and retention > 0
