"""``Notify``: a result for an invocation (a call's result, a run's result, a signal).

The notification is journaled once per notification id (a re-delivered ``Notify`` is
a no-op), encoded as the protocol message the awaiting command expects. A suspended
invocation waiting for it resumes; a running one gets it forwarded. Invocations that
are not in flight (queued, scheduled, completed, unknown) ignore it: nothing could be
waiting for it. The CANCEL signal is the exception: it cancels the invocation
(:func:`.kill_cancel.cancel`), which also ends one that has not started yet and reaches
the invocations it called.
"""

from __future__ import annotations

from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.journal_ops import (
    CANCEL_SIGNAL,
    append_notification,
    notification_arrived,
)
from engine.partition.state_machine.kill_cancel import cancel
from engine.storage.invocation_status import StatusKind
from engine.wal.records import Notify

__all__ = ["on_notify"]


def on_notify(ctx: ApplyContext, record: Notify) -> None:
    """Apply a ``Notify`` record."""
    invocation_id = record.invocation_id
    status = ctx.tables.status.get(invocation_id)
    if record.notification_id == CANCEL_SIGNAL and status is not None and status.kind is not StatusKind.COMPLETED:
        cancel(ctx, invocation_id, status)
        return
    if status is None or not status.in_flight:
        ctx.log_for(invocation_id).debug(
            "notification for an invocation that is not in flight; ignored",
            notification_id=repr(record.notification_id),
        )
        return
    status, index = append_notification(
        ctx, invocation_id, status, record.notification_id, record.result
    )
    if index is None:
        return
    status = notification_arrived(ctx, invocation_id, status, record.notification_id, index)
    ctx.tables.status.put(invocation_id, status)
