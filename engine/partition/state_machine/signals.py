"""Awakeables and signals: one invocation completing something another one awaits.

An awakeable id (``sign_1…``) names an invocation and one of its signal indexes; the
SDK awaiting it waits for that signal. ``CompleteAwakeableCommand`` (from a handler)
and the ingress ``/restate/awakeables/{id}/resolve|reject`` both turn into a ``Notify``
of ``SignalIndex(index)`` for that invocation; ``SendSignalCommand`` (protocol v6+)
names the invocation and the signal directly. The ``Notify`` goes through the outbox,
so it reaches the target's partition exactly once even if it lives elsewhere; a second
completion of the same signal is a duplicate notification and is ignored there.
"""

from __future__ import annotations

from engine.ids import AwakeableId, AwakeableIdKind, IdParseError, InvocationId
from engine.journal.notifications import failure_of
from restate_protocol import pb
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.responses import send_outbox
from engine.storage.invocation_status import InvocationStatus
from engine.wal.records import (
    JournalAppend,
    NotificationResult,
    Notify,
    SignalIndex,
    SignalName,
    Value,
    Void,
)

__all__ = ["complete_awakeable", "send_signal"]


def complete_awakeable(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    """``CompleteAwakeableCommand``: resolve or reject another invocation's awakeable."""
    message = pb.CompleteAwakeableCommandMessage.FromString(record.message)
    log = ctx.log_for(iid, awakeable_id=message.awakeable_id)
    try:
        awakeable = AwakeableId.parse(message.awakeable_id)
    except IdParseError as exc:
        log.warning("awakeable completion with an invalid id; journaled without effect", error=str(exc))
        return status
    if awakeable.kind is not AwakeableIdKind.SIGNAL:
        log.warning("awakeable ids of protocol v1-v3 are not supported; journaled without effect")
        return status
    which = message.WhichOneof("result")
    result: NotificationResult
    if which == "value":
        result = Value(message.value.content)
    elif which == "failure":
        result = failure_of(message.failure)
    else:
        log.warning("awakeable completion without a result; journaled without effect")
        return status
    notify = Notify(awakeable.invocation_id, SignalIndex(awakeable.index), result)
    send_outbox(ctx, awakeable.invocation_id.partition_key, notify)
    log.debug("awakeable completed", target=str(awakeable.invocation_id), failed=which == "failure")
    return status


def send_signal(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    """``SendSignalCommand``: deliver a signal to the named invocation."""
    message = pb.SendSignalCommandMessage.FromString(record.message)
    log = ctx.log_for(iid, target=message.target_invocation_id)
    try:
        target = InvocationId.parse(message.target_invocation_id)
    except IdParseError as exc:
        log.warning("signal to an invalid invocation id; journaled without effect", error=str(exc))
        return status
    which_id = message.WhichOneof("signal_id")
    signal = SignalIndex(message.idx) if which_id == "idx" else SignalName(message.name)
    which = message.WhichOneof("result")
    result: NotificationResult
    if which == "value":
        result = Value(message.value.content)
    elif which == "failure":
        result = failure_of(message.failure)
    else:
        result = Void()
    send_outbox(ctx, target.partition_key, Notify(target, signal, result))
    return status
