"""``RestartAsNewInvocation``: run a completed invocation again under a new id.

The new invocation has the old one's target, input, headers, retention and ordering
key, no idempotency key and nobody waiting for its answer (attach to it by id). Its
journal starts with the old journal's entries ``0..copy_prefix_up_to_index`` (entry 0
is the input), then the completions, found further on in the old journal, of the
commands among them: so those steps replay from the journal instead of running again,
as on restate-server. Restarting from 0 keeps only the input; the status keeps the
argument and headers, so that works even when the old journal was not retained (then
the input is journaled from the status). With a prefix the SDK's random seed stays the
old invocation's (``random_seed_from``), so random values used by the copied steps come
out the same on replay.

The pinned deployment and protocol version are inherited (``deployment_id`` replaces
the deployment, keeping the version); an unpinned old invocation gives an unpinned new
one. The new invocation is then admitted like any other: it takes its key's lock or
waits in the inbox.

The admin API checked the request against the status it read (:mod:`engine.admin.restart`);
what can change before the record is applied is checked again here, and the record is
dropped (the answer says so) when the old invocation is gone or not completed any more,
the new id is taken, or the prefix is no longer in the journal.
"""

from __future__ import annotations

from engine.ids import InvocationId
from engine.journal.notifications import completion_types, decode_notification
from restate_protocol import ProtocolError, is_notification
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.invoke import admit, journal_input
from engine.partition.state_machine.journal_ops import append_command
from engine.storage.invocation_status import InvocationStatus, StatusKind
from restate_protocol import JournalEntry
from engine.wal.records import CompletionId, RestartAsNewInvocation, ServiceKind

__all__ = ["on_restart_as_new"]


def on_restart_as_new(ctx: ApplyContext, record: RestartAsNewInvocation) -> None:
    """Apply a ``RestartAsNewInvocation`` record."""
    old_id, new_id, last = record.invocation_id, record.new_invocation_id, record.copy_prefix_up_to_index
    log = ctx.log_for(old_id)
    old = ctx.tables.status.get(old_id)
    if old is None or old.kind is not StatusKind.COMPLETED or old.target.service_kind is ServiceKind.WORKFLOW:
        log.info("restart as new dropped: the invocation is not a completed, restartable one any more")
        return
    if ctx.tables.status.get(new_id) is not None:
        log.error("restart as new dropped: the new invocation id exists already", new_invocation_id=str(new_id))
        return
    if last >= old.journal_length and not (last == 0 and old.journal_length == 0):
        log.info("restart as new dropped: the journal prefix is not stored", journal_length=old.journal_length)
        return
    deployment_id, protocol_version = old.deployment_id, old.protocol_version
    if record.deployment_id is not None and deployment_id is not None:
        deployment_id = record.deployment_id
    status = InvocationStatus(
        kind=StatusKind.SCHEDULED,
        target=old.target,
        argument=old.argument,
        headers=old.headers,
        created_at_ms=ctx.now_ms,
        modified_at_ms=ctx.now_ms,
        deployment_id=deployment_id,
        protocol_version=protocol_version,
        completion_retention_ms=old.completion_retention_ms,
        journal_retention_ms=old.journal_retention_ms,
        ordering_key=old.ordering_key,
        restarted_from=old_id,
        random_seed_from=(old.random_seed_from or old_id) if last > 0 else None,
    )
    if old.journal_length == 0:
        status = journal_input(ctx, new_id, status)
    else:
        status = _copy_prefix(ctx, old_id, old.journal_length, new_id, status, last)
    log.info(
        "invocation restarted as new", new_invocation_id=str(new_id), copied_entries=status.journal_length,
        deployment=str(deployment_id),
    )
    admit(ctx, new_id, status)


def _copy_prefix(
    ctx: ApplyContext,
    old_id: InvocationId,
    old_length: int,
    new_id: InvocationId,
    status: InvocationStatus,
    last: int,
) -> InvocationStatus:
    """Copy entries ``0..last`` of the old journal (``old_length`` entries), then the
    completions of the copied commands found after them; returns the new status with
    its journal counts."""
    journal = ctx.tables.journal
    missing: set[int] = set()
    for index in range(last + 1):
        entry = journal.get(old_id, index)
        if entry is None:
            break
        if is_notification(entry.message_type):
            completion = _completion_of(entry)
            if completion is not None:
                missing.discard(completion)
            status = _append_notification(ctx, new_id, status, entry)
            continue
        status = append_command(ctx, new_id, status, entry)
        try:
            missing.update(completion_types(entry.message_type, entry.message))
        except ProtocolError:
            pass  # stored as the SDK sent it; it announces nothing readable
    for index in range(last + 1, old_length):
        if not missing:
            break
        entry = journal.get(old_id, index)
        if entry is None or not is_notification(entry.message_type):
            continue
        completion = _completion_of(entry)
        if completion is not None and completion in missing:
            missing.discard(completion)
            status = _append_notification(ctx, new_id, status, entry)
    return status


def _completion_of(entry: JournalEntry) -> int | None:
    """The completion id a notification entry completes (``None``: a signal, or unreadable)."""
    try:
        notification_id, _ = decode_notification(entry)
    except ProtocolError:
        return None
    return notification_id.id if isinstance(notification_id, CompletionId) else None


def _append_notification(
    ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus, entry: JournalEntry
) -> InvocationStatus:
    """Copy a notification entry verbatim to the end of the journal, indexed by its id."""
    index = status.journal_length
    ctx.tables.journal.put(invocation_id, index, entry, ctx.now_ms)
    try:
        notification_id, _ = decode_notification(entry)
    except ProtocolError:
        notification_id = None
    if notification_id is not None:
        ctx.tables.journal.record_notification(invocation_id, notification_id, index)
    return status.touched(ctx.now_ms, journal_length=index + 1)
