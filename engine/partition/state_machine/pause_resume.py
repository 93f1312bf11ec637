"""``PauseInvocation`` and ``ResumeInvocation``: an operator parks or wakes an invocation.

An invocation is Paused when its retry policy gave up with "pause" (a failed attempt
with ``paused``, :func:`.lifecycle.on_failed_attempt`) or when an operator paused it
while it ran. Paused, it keeps everything (journal, lock of its key, pinned
deployment); notifications still land in its journal, but nothing runs it until:

* ``ResumeInvocation``: back to Invoked with a fresh count of attempts, and an attempt
  starts at once. Resuming a suspended invocation runs it now (it replays and
  suspends again if what it waits for is still missing); resuming one that is backing
  off before a retry runs the retry now; a running one is left as it is.
* the CANCEL signal (it resumes so the handler sees the cancellation), or a kill.

Pausing a running invocation aborts its attempt; anything else is left as it is (the
admin API refuses those requests before they reach the log).
"""

from __future__ import annotations

from engine.partition.actions import AbortInvocation, InvokeAction
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.owned import drop_timer
from engine.storage.invocation_status import StatusKind
from engine.wal.records import PauseInvocation, ResumeInvocation, TimerKey, TimerKind

__all__ = ["on_pause", "on_resume"]


def on_pause(ctx: ApplyContext, record: PauseInvocation) -> None:
    """Apply a ``PauseInvocation`` record."""
    invocation_id = record.invocation_id
    status = ctx.tables.status.get(invocation_id)
    log = ctx.log_for(invocation_id)
    if status is None or status.kind is not StatusKind.INVOKED:
        log.debug("pause of an invocation that is not running; ignored")
        return
    if status.last_failure is not None:
        drop_timer(ctx, TimerKey(status.last_failure.retry_at_ms, invocation_id, TimerKind.RETRY))
    ctx.emit(AbortInvocation(invocation_id))
    ctx.tables.status.put(invocation_id, status.touched(ctx.now_ms, kind=StatusKind.PAUSED))
    log.info("invocation paused")


def on_resume(ctx: ApplyContext, record: ResumeInvocation) -> None:
    """Apply a ``ResumeInvocation`` record."""
    invocation_id = record.invocation_id
    status = ctx.tables.status.get(invocation_id)
    log = ctx.log_for(invocation_id)
    if status is None or not status.in_flight:
        log.debug("resume of an invocation that is not in flight; ignored")
        return
    if status.kind is StatusKind.INVOKED:
        failure = status.last_failure
        if failure is None or not drop_timer(ctx, TimerKey(failure.retry_at_ms, invocation_id, TimerKind.RETRY)):
            log.debug("resume of a running invocation; nothing to do")
            return
        # Backing off: retry now. The retry timer is gone, so the record is the
        # only trigger; the stored retry time still names this retry.
        ctx.emit(InvokeAction(invocation_id))
        log.info("invocation resumed: retrying now instead of after the back-off")
        return
    previous = status.kind
    ctx.tables.status.put(
        invocation_id, status.touched(ctx.now_ms, kind=StatusKind.INVOKED, attempt=0, waiting_for=())
    )
    ctx.emit(InvokeAction(invocation_id))
    log.info("invocation resumed", previous=previous.value)
