"""``KillInvocation`` and ``CancelInvocation`` (and the CANCEL signal sent to an invocation).

Kill stops an invocation without running its handler again: callers and waiting
ingress requests get Restate's kill failure (409 "killed"), the running attempt is
aborted, the key's lock passes to the next queued invocation, its pending timers are
dropped. Killing a queued or scheduled invocation removes it the same way. An unknown
id still gets an abort: the invoker may run an attempt the log no longer knows about.

Cancel asks the handler to stop: a running, suspended or paused invocation gets the
CANCEL signal journaled (and resumes, so the SDK sees it and can run compensations);
one that has not started yet is ended with Restate's cancel failure (409 "canceled")
without running at all. Completed invocations ignore both. A CANCEL signal another
invocation sends (``SendSignalCommand`` with index 1, which is how the official SDKs
cancel a call) is a cancel too.

Both reach the children: the invocations it called and still waits for get a
``KillInvocation`` / the CANCEL signal through the outbox, so a whole call tree stops
(children reached by a one-way send are left alone, as on restate-server). The SDKs
send the CANCEL signal to their pending calls themselves as well; the second one is a
duplicate notification and changes nothing.
"""

from __future__ import annotations

from typing import Final

from engine.ids import InvocationId
from engine.partition.actions import AbortInvocation, InvocationStopped
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.journal_ops import (
    CANCEL_SIGNAL,
    append_notification,
    notification_arrived,
)
from engine.partition.state_machine.lifecycle import complete
from engine.partition.state_machine.owned import pending_children
from engine.partition.state_machine.responses import send_outbox
from engine.storage.invocation_status import InvocationStatus, StatusKind
from engine.wal.records import CancelInvocation, Failure, KillInvocation, Notify, Void

__all__ = ["CANCELED", "KILLED", "cancel", "on_cancel", "on_kill", "stopped"]

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
    children = pending_children(ctx, invocation_id)
    for child in children:
        send_outbox(ctx, child.partition_key, KillInvocation(child))
    if status.in_flight:
        ctx.emit(AbortInvocation(invocation_id))
    complete(ctx, invocation_id, status, KILLED)
    ctx.emit(stopped(invocation_id, status, KILLED))
    log.info("invocation killed", previous=status.kind.value, children=[str(c) for c in children])


def on_cancel(ctx: ApplyContext, record: CancelInvocation) -> None:
    """Apply a ``CancelInvocation`` record."""
    status = ctx.tables.status.get(record.invocation_id)
    if status is None or status.kind is StatusKind.COMPLETED:
        ctx.log_for(record.invocation_id).debug("cancel of an unknown or completed invocation; ignored")
        return
    cancel(ctx, record.invocation_id, status)


def cancel(ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus) -> None:
    """Cancel an invocation that is not completed (see the module docstring)."""
    log = ctx.log_for(invocation_id)
    if status.kind in (StatusKind.SCHEDULED, StatusKind.INBOXED):
        complete(ctx, invocation_id, status, CANCELED)
        ctx.emit(stopped(invocation_id, status, CANCELED))
        log.info("invocation cancelled before it started")
        return
    children = pending_children(ctx, invocation_id)
    status, index = append_notification(ctx, invocation_id, status, CANCEL_SIGNAL, Void())
    if index is None:
        log.debug("invocation was cancelled already")
        return
    for child in children:
        send_outbox(ctx, child.partition_key, Notify(child, CANCEL_SIGNAL, Void()))
    status = notification_arrived(ctx, invocation_id, status, CANCEL_SIGNAL, index)
    ctx.tables.status.put(invocation_id, status)
    log.info("cancel signal delivered", children=[str(c) for c in children])


def stopped(invocation_id: InvocationId, status: InvocationStatus, result: Failure) -> InvocationStopped:
    """The action that counts and traces an invocation a kill or cancel ended."""
    target = status.target
    return InvocationStopped(
        invocation_id, target.service, target.handler, target.key, status.created_at_ms, status.headers, result.message
    )
