"""Writing to an invocation's journal: commands, notifications, and waking it up.

Both kinds of entries go through here so the journal length, the command count and
the notification index always move together with the rows.
"""

from __future__ import annotations

from engine.ids import InvocationId
from engine.journal.notifications import completion_types, encode_notification
from restate_protocol import ProtocolError
from engine.partition.actions import ForwardNotification, InvokeAction
from engine.partition.state_machine.context import ApplyContext
from engine.storage.invocation_status import InvocationStatus, StatusKind
from restate_protocol import JournalEntry
from engine.wal.records import (
    CompletionId,
    NotificationId,
    NotificationResult,
    Notify,
    SignalIndex,
)

__all__ = [
    "CANCEL_SIGNAL",
    "append_command",
    "append_notification",
    "complete_now",
    "notification_arrived",
    "resume",
]

CANCEL_SIGNAL = SignalIndex(1)
"""The built-in CANCEL signal (protocol ``BuiltInSignal.CANCEL``)."""


def append_command(
    ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus, entry: JournalEntry
) -> InvocationStatus:
    """Store command ``entry`` at the end of the journal; returns the updated status.

    Also records the completion ids the command announces and the notification type
    that will answer each, so a later ``Notify`` is journaled as the right message.
    """
    index = status.journal_length
    ctx.tables.journal.put(invocation_id, index, entry, ctx.now_ms)
    try:
        expected = completion_types(entry.message_type, entry.message)
    except ProtocolError as exc:
        # Stored anyway: it is what the SDK sent, and replay must show it back.
        ctx.log_for(invocation_id).warning(
            "journaled a command that does not parse", error=str(exc)
        )
        expected = {}
    for completion_id, notification_type in expected.items():
        ctx.tables.journal.expect_completion(invocation_id, completion_id, notification_type)
    return status.touched(
        ctx.now_ms,
        journal_length=index + 1,
        commands=status.commands + 1,
        retries_since_last_entry=0,
    )


def append_notification(
    ctx: ApplyContext,
    invocation_id: InvocationId,
    status: InvocationStatus,
    notification_id: NotificationId,
    result: NotificationResult,
) -> tuple[InvocationStatus, int | None]:
    """Journal a notification unless one with ``notification_id`` is already there.

    Returns the updated status and the new entry's index, or ``None`` when nothing was
    appended (a duplicate, or a result the awaiting command cannot take).
    """
    journal = ctx.tables.journal
    slot = journal.slot(invocation_id, notification_id)
    if slot is not None and slot.entry_index is not None:
        ctx.log_for(invocation_id).debug(
            "notification already journaled", notification_id=repr(notification_id)
        )
        return status, None
    try:
        encoded = encode_notification(
            Notify(invocation_id, notification_id, result),
            None if slot is None else slot.expected_type,
        )
    except ValueError as exc:
        # No command announced this completion id, or it cannot carry this result:
        # the record is inconsistent with the journal, and guessing a message type
        # would hand the SDK something it cannot replay.
        ctx.log_for(invocation_id).error(
            "dropping a notification the journal cannot take",
            notification_id=repr(notification_id),
            error=str(exc),
        )
        return status, None
    index = status.journal_length
    journal.put(invocation_id, index, JournalEntry(encoded.message_type, encoded.message), ctx.now_ms)
    journal.record_notification(invocation_id, notification_id, index)
    return status.touched(ctx.now_ms, journal_length=index + 1), index


def resume(
    ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus
) -> InvocationStatus:
    """Make the invocation Invoked and ask the invoker for a new attempt."""
    ctx.emit(InvokeAction(invocation_id))
    return status.touched(ctx.now_ms, kind=StatusKind.INVOKED, waiting_for=())


def notification_arrived(
    ctx: ApplyContext,
    invocation_id: InvocationId,
    status: InvocationStatus,
    notification_id: NotificationId,
    entry_index: int,
) -> InvocationStatus:
    """React to a notification just journaled at ``entry_index``.

    A suspended invocation resumes when it waited for this id, and on the CANCEL
    signal whatever it waited for (the handler must get the chance to react); so does
    a paused one on the CANCEL signal, with a fresh count of attempts. A running one
    gets it forwarded (useful to streaming attempts only).
    """
    if status.kind is StatusKind.SUSPENDED:
        if notification_id in status.waiting_for or notification_id == CANCEL_SIGNAL:
            return resume(ctx, invocation_id, status)
    elif status.kind is StatusKind.PAUSED:
        if notification_id == CANCEL_SIGNAL:
            return resume(ctx, invocation_id, status.touched(ctx.now_ms, attempt=0))
    elif status.kind is StatusKind.INVOKED:
        ctx.emit(ForwardNotification(invocation_id, entry_index, notification_id))
    return status


def complete_now(
    ctx: ApplyContext,
    invocation_id: InvocationId,
    status: InvocationStatus,
    completion_id: int,
    result: NotificationResult,
) -> InvocationStatus:
    """Answer a command of the invocation being applied right away (same transaction)."""
    notification_id = CompletionId(completion_id)
    status, index = append_notification(ctx, invocation_id, status, notification_id, result)
    if index is not None:
        status = notification_arrived(ctx, invocation_id, status, notification_id, index)
    return status
