"""``PauseInvocation`` and ``ResumeInvocation``: an operator parks or wakes an invocation.

An invocation is Paused when its retry policy gave up with "pause" (a failed attempt
with ``paused``, :func:`.lifecycle.on_failed_attempt`) or when an operator paused it
while it ran. Paused, it keeps everything (journal, lock of its key, pinned
deployment); notifications still land in its journal, but nothing runs it until:

* ``ResumeInvocation``: back to Invoked with a fresh count of attempts, and an attempt
  starts at once. Resuming a suspended invocation runs it now (it replays and
  suspends again if what it waits for is still missing); resuming one that is backing
  off before a retry runs the retry now; a running one is left as it is. With a
  ``deployment_id`` (schema v7), a paused or suspended invocation that has a pinned
  deployment is pinned to that one first (it keeps its protocol version, which the
  admin API checked the new deployment supports), so its next attempt replays the
  journal there; the change is dropped for an invocation that is running by then.
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
        if record.deployment_id is not None and record.deployment_id != status.deployment_id:
            log.info("resume of a running invocation: its deployment stays", deployment=str(status.deployment_id))
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
    deployment_id = status.deployment_id
    if record.deployment_id is not None and deployment_id is not None:
        deployment_id = record.deployment_id
    ctx.tables.status.put(
        invocation_id,
        status.touched(
            ctx.now_ms, kind=StatusKind.INVOKED, attempt=0, waiting_for=(), deployment_id=deployment_id
        ),
    )
    ctx.emit(InvokeAction(invocation_id))
    log.info(
        "invocation resumed", previous=previous.value, deployment=str(deployment_id),
        moved=deployment_id != status.deployment_id,
    )
