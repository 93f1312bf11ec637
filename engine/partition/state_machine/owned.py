"""What an invocation owns besides its status and journal: pending timers and children.

When an invocation ends (returned, killed, cancelled before it started) nothing it set
in motion may outlive it by accident: its sleep, retry and delayed-start timers are
deleted (a dead invocation's timer must not fire later), and kill and cancel reach the
invocations it is still waiting on through a call. Children reached by a one-way send
are not its business (as on restate-server): they run on.

Both are found from the journal, so they need no index of their own: a Sleep command
names its wake-up time and completion id (that is its timer's key), and a Call command
whose result completion has not arrived names a callee whose id is derived from the
caller and the command's index (:func:`.journal_commands.callee_invocation_id`).
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from engine.ids import InvocationId
from restate_protocol import MessageType, pb
from engine.partition.actions import CancelTimer
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.journal_commands import callee_invocation_id
from engine.storage.invocation_status import InvocationStatus
from engine.wal.records import CompletionId, TimerKey, TimerKind

__all__ = ["drop_timer", "drop_timers", "pending_children"]


def drop_timer(ctx: ApplyContext, timer: TimerKey) -> bool:
    """Delete ``timer`` if it is pending, and tell the leader to forget it."""
    if not ctx.tables.timers.delete(timer):
        return False
    ctx.emit(CancelTimer(timer))
    return True


def drop_timers(ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus) -> int:
    """Delete every pending timer of the invocation (not its CLEANUP timer); returns how
    many there were. Call before the journal is deleted: sleep timers are found in it."""
    timers: list[TimerKey] = []
    if status.execute_at_ms is not None:
        timers.append(TimerKey(status.execute_at_ms, invocation_id, TimerKind.DELAYED_INVOKE))
    if status.last_failure is not None:
        timers.append(TimerKey(status.last_failure.retry_at_ms, invocation_id, TimerKind.RETRY))
    for _, entry in ctx.tables.journal.entries(invocation_id):
        if entry.message_type != MessageType.SLEEP_COMMAND:
            continue
        try:
            sleep = pb.SleepCommandMessage.FromString(entry.message)
        except DecodeError:
            continue  # journaled without effect when it arrived: no timer either
        timers.append(
            TimerKey(sleep.wake_up_time, invocation_id, TimerKind.SLEEP, sleep.result_completion_id)
        )
    dropped = sum(1 for timer in timers if drop_timer(ctx, timer))
    if dropped:
        ctx.log_for(invocation_id).debug("pending timers of an ended invocation dropped", timers=dropped)
    return dropped


def pending_children(ctx: ApplyContext, invocation_id: InvocationId) -> list[InvocationId]:
    """The invocations this one called and still waits for (no result journaled yet)."""
    journal = ctx.tables.journal
    children: list[InvocationId] = []
    for index, entry in journal.entries(invocation_id):
        if entry.message_type != MessageType.CALL_COMMAND:
            continue
        try:
            call = pb.CallCommandMessage.FromString(entry.message)
        except DecodeError:
            continue  # journaled without effect: no callee was created
        if journal.has_notification(invocation_id, CompletionId(call.result_completion_id)):
            continue
        idempotency_key = call.idempotency_key if call.HasField("idempotency_key") else None
        children.append(
            callee_invocation_id(
                invocation_id, index, call.service_name, call.key or None, call.handler_name, idempotency_key
            )
        )
    return children
