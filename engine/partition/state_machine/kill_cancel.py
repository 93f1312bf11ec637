"""``KillInvocation`` and ``CancelInvocation``.

Kill stops an invocation without running its handler again: callers and waiting
ingress requests get Restate's kill failure (409 "killed"), the running attempt is
aborted, the key's lock passes to the next queued invocation. Killing a queued or
scheduled invocation removes it the same way. An unknown id still gets an abort: the
invoker may run an attempt the log no longer knows about.

Cancel asks the handler to stop: a running or suspended invocation gets the CANCEL
signal journaled (and resumes, so the SDK sees it and can run compensations); one that
has not started yet is ended with Restate's cancel failure (409 "canceled") without
running at all. Completed invocations ignore both.
"""

from __future__ import annotations

from typing import Final

from engine.partition.actions import AbortInvocation
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.journal_ops import (
    CANCEL_SIGNAL,
    append_notification,
    notification_arrived,
)
from engine.partition.state_machine.lifecycle import complete
from engine.storage.invocation_status import StatusKind
from engine.wal.records import CancelInvocation, Failure, KillInvocation, Void

__all__ = ["CANCELED", "KILLED", "on_cancel", "on_kill"]

KILLED: Final = Failure(409, "killed")
"""The result of a killed invocation (Restate's ``KILLED_INVOCATION_ERROR``)."""
CANCELED: Final = Failure(409, "canceled")
"""The result of an invocation cancelled before it started (``CANCELED_INVOCATION_ERROR``)."""


def on_kill(ctx: ApplyContext, record: KillInvocation) -> None:
    """Apply a ``KillInvocation`` record."""
    invocation_id = record.invocation_id
    status = ctx.tables.status.get(invocation_id)
    log = ctx.log_for(invocation_id)
    if status is None:
        ctx.emit(AbortInvocation(invocation_id))
        log.debug("kill of an unknown invocation; abort sent anyway")
        return
    if status.kind is StatusKind.COMPLETED:
        log.debug("kill of a completed invocation; ignored")
        return
    if status.in_flight:
        ctx.emit(AbortInvocation(invocation_id))
    complete(ctx, invocation_id, status, KILLED)
    log.info("invocation killed", previous=status.kind.value)


def on_cancel(ctx: ApplyContext, record: CancelInvocation) -> None:
    """Apply a ``CancelInvocation`` record."""
    invocation_id = record.invocation_id
    status = ctx.tables.status.get(invocation_id)
    log = ctx.log_for(invocation_id)
    if status is None or status.kind is StatusKind.COMPLETED:
        log.debug("cancel of an unknown or completed invocation; ignored")
        return
    if status.kind in (StatusKind.SCHEDULED, StatusKind.INBOXED):
        complete(ctx, invocation_id, status, CANCELED)
        log.info("invocation cancelled before it started")
        return
    status, index = append_notification(ctx, invocation_id, status, CANCEL_SIGNAL, Void())
    if index is None:
        log.debug("invocation was cancelled already")
        return
    status = notification_arrived(ctx, invocation_id, status, CANCEL_SIGNAL, index)
    ctx.tables.status.put(invocation_id, status)
    log.info("cancel signal delivered")
