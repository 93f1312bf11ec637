"""``TimerFired``: the leader found a timer due.

A timer acts only if its row still exists, and the row is deleted as it acts: a timer
fired twice (the leader restarted, leadership moved) changes nothing the second time.

======================  ==================================================================
SLEEP                   journal the sleep's completion (Void); resume if suspended on it
DELAYED_INVOKE          start the Scheduled invocation (or queue it behind its key's lock)
RETRY                   start the next attempt, if this is still the pending retry
CLEANUP                 forget the completed invocation
======================  ==================================================================
"""

from __future__ import annotations

from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.invoke import admit
from engine.partition.state_machine.journal_ops import append_notification, notification_arrived
from engine.partition.state_machine.lifecycle import on_cleanup_due, on_retry_due
from engine.storage.invocation_status import StatusKind
from engine.wal.records import CompletionId, TimerFired, TimerKey, TimerKind, Void

__all__ = ["on_timer_fired"]


def on_timer_fired(ctx: ApplyContext, record: TimerFired) -> None:
    """Apply a ``TimerFired`` record."""
    timer = record.timer
    if not ctx.tables.timers.delete(timer):
        ctx.log_for(timer.invocation_id).debug(
            "timer fired that is not pending; ignored", kind=timer.kind.value
        )
        return
    if timer.kind is TimerKind.SLEEP:
        _sleep_done(ctx, timer)
    elif timer.kind is TimerKind.DELAYED_INVOKE:
        _delayed_invoke(ctx, timer)
    elif timer.kind is TimerKind.RETRY:
        on_retry_due(ctx, timer.invocation_id, timer)
    else:
        on_cleanup_due(ctx, timer.invocation_id, timer)


def _sleep_done(ctx: ApplyContext, timer: TimerKey) -> None:
    invocation_id = timer.invocation_id
    status = ctx.tables.status.get(invocation_id)
    if status is None or not status.in_flight or timer.completion_id is None:
        ctx.log_for(invocation_id).debug("sleep timer for an invocation not in flight; ignored")
        return
    notification_id = CompletionId(timer.completion_id)
    status, index = append_notification(ctx, invocation_id, status, notification_id, Void())
    if index is None:
        return
    status = notification_arrived(ctx, invocation_id, status, notification_id, index)
    ctx.tables.status.put(invocation_id, status)


def _delayed_invoke(ctx: ApplyContext, timer: TimerKey) -> None:
    status = ctx.tables.status.get(timer.invocation_id)
    if status is None or status.kind is not StatusKind.SCHEDULED:
        ctx.log_for(timer.invocation_id).debug(
            "delayed invoke for an invocation not scheduled; ignored"
        )
        return
    admit(ctx, timer.invocation_id, status)
