"""``JournalAppend``: store a command the SDK sent, then do what the command says.

Whether an append is stored: always at the end of the journal, and only while the
invocation is Invoked. Records since WAL schema v5 carry the command's
``command_index`` (its index among the commands, as the SDK counts them): stored when
exactly that many commands are journaled; a lower index is the same command again (a
retried emit, a stale attempt) and is dropped, a higher one leaves a gap and is dropped
too. Notifications the state machine journals on its own while the attempt runs (a
call's invocation id, a lazy state read, a result arriving) do not shift this count.

Older records carry only ``entry_index``, the invoker's guess of the journal position
(the replayed journal plus the commands it appended since, notifications not counted).
They keep the rule they were applied with, so replaying an old log gives the same
journal: stored when ``entry_index`` is the journal length, or lower with only
notifications from ``entry_index`` on (they raced ahead of it); dropped when a command
already sits at or after it, or when it lies beyond the end. That rule lost commands:
after two commands that each got a notification at once (two sends), the third
command's ``entry_index`` pointed at the second and was taken for a duplicate
(issue 13: ``[send, send, call]`` never answered), which is why v5 numbers commands.

What each command does, besides being journaled:

==========================  ===============================================================
SetState / ClearState /     write the object's state table (keyed targets only)
ClearAllState
GetLazyState(Keys)          answer at once: journal the completion read from the state table
Sleep                       a SLEEP timer at ``wake_up_time`` for its completion id
Call / OneWayCall           an ``Invoke`` for the callee into the outbox, and the callee's
                            invocation id journaled as a notification
Output                      remembered as the invocation's result until it ends
CompleteAwakeable,          a ``Notify`` of the target's signal (:mod:`.signals`)
SendSignal
Get/Peek/CompletePromise    the workflow's durable promise (:mod:`.promises`)
Input, GetEager*, Run,      nothing (a run's result arrives as a ``Notify``)
custom entries
AttachInvocation,           ``AttachInvocation`` / ``GetInvocationOutput`` to the target's
GetInvocationOutput         partition through the outbox (:mod:`.attach`)
==========================  ===============================================================

The callee of a call gets a deterministic id, so a caller replayed from the log on
another replica creates the same callee: the uuid is derived from the caller's id and
the command's entry index, or from the idempotency key when the call has one (then
every caller using that key reaches the same invocation, as with ingress requests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from google.protobuf.message import DecodeError

from engine.ids import InvocationId, InvocationUuid
from engine.journal.notifications import failure_of
from restate_protocol import MessageType, is_command, is_custom, message_name, pb
from restate_protocol import is_notification as is_notification_type
from engine.partition.actions import RegisterTimer
from engine.partition.state_machine.attach import attach_command, get_output_command
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.journal_ops import append_command, complete_now
from engine.partition.state_machine.promises import complete_promise, get_promise, peek_promise
from engine.partition.state_machine.signals import complete_awakeable, send_signal
from engine.partition.state_machine.responses import send_outbox
from engine.storage.invocation_status import InvocationStatus, StatusKind
from restate_protocol import JournalEntry
from engine.wal.partitioning import invocation_id_for
from engine.wal.records import (
    CallTarget,
    HandlerKind,
    Header,
    InvocationIdResult,
    InvocationSink,
    InvocationSource,
    InvocationTarget,
    Invoke,
    JournalAppend,
    NotificationResult,
    ServiceKind,
    StateKeys,
    TimerKey,
    TimerKind,
    Value,
    Void,
)

__all__ = ["callee_invocation_id", "on_journal_append"]

_Interpreter = Callable[
    [ApplyContext, InvocationId, InvocationStatus, int, JournalAppend], InvocationStatus
]


def on_journal_append(ctx: ApplyContext, record: JournalAppend) -> None:
    """Apply a ``JournalAppend`` record."""
    invocation_id = record.invocation_id
    log = ctx.log_for(invocation_id, entry_index=record.entry_index)
    status = ctx.tables.status.get(invocation_id)
    if status is None or status.kind is not StatusKind.INVOKED:
        log.debug("journal append for an invocation that is not running; ignored")
        return
    if not (is_command(record.message_type) or is_custom(record.message_type)):
        log.warning(
            "journal append of a non-command message; ignored",
            message=message_name(record.message_type),
        )
        return
    if record.message_type == MessageType.INPUT_COMMAND:
        log.warning("journal append of an InputCommand; only the engine writes it; ignored")
        return
    if record.command_index is not None:
        if not _takes_next_command(ctx, invocation_id, status, record.command_index):
            return
    elif not _takes_next_index(ctx, invocation_id, status, record.entry_index):
        return
    index = status.journal_length
    status = append_command(
        ctx, invocation_id, status, JournalEntry(record.message_type, record.message)
    )
    interpret = _INTERPRETERS.get(record.message_type)
    if interpret is not None:
        try:
            status = interpret(ctx, invocation_id, status, index, record)
        except DecodeError as exc:
            log.warning("command does not parse; journaled without effect", error=str(exc))
    elif not is_custom(record.message_type):
        log.debug("command journaled", message=message_name(record.message_type))
    ctx.tables.status.put(invocation_id, status)


def _takes_next_command(
    ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus, command_index: int
) -> bool:
    """Whether command number ``command_index`` is the next one (see the module docstring)."""
    commands = status.commands
    if command_index == commands:
        return True
    log = ctx.log_for(invocation_id, command_index=command_index, commands=commands)
    if command_index < commands:
        log.debug("journal append of a command journaled already; duplicate ignored")
    else:
        log.warning("journal append beyond the next command; ignored")
    return False


def _takes_next_index(
    ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus, index: int
) -> bool:
    """Whether an append numbered ``index`` belongs at the end, by the rule of records
    without a command index (see the module docstring)."""
    length = status.journal_length
    if index == length:
        return True
    log = ctx.log_for(invocation_id, entry_index=index, journal_length=length)
    if index > length:
        log.warning("journal append beyond the end of the journal; ignored")
        return False
    for _, entry in ctx.tables.journal.entries(invocation_id, start=index):
        if not is_notification_type(entry.message_type):
            log.debug("journal append for an index holding a command already; duplicate ignored")
            return False
    return True


def callee_invocation_id(
    caller: InvocationId,
    entry_index: int,
    service: str,
    key: str | None,
    handler: str,
    idempotency_key: str | None,
) -> InvocationId:
    """The id of the invocation a call or one-way call at ``entry_index`` creates."""
    if idempotency_key:
        uuid = InvocationUuid.for_idempotent_request(service, key, handler, idempotency_key)
    else:
        # NEVER CHANGE: callee ids are in the journal, the outbox and the WAL.
        uuid = InvocationUuid.derive("call", caller.to_bytes(), entry_index.to_bytes(8, "big"))
    return invocation_id_for(service, key, uuid)


# --- state -------------------------------------------------------------------------------


def _object_key(
    ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus
) -> str | None:
    key = status.target.key
    if key is None:
        ctx.log_for(invocation_id).warning(
            "state command from a plain service (no key); no state written"
        )
    return key


def _set_state(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    message = pb.SetStateCommandMessage.FromString(record.message)
    key = _object_key(ctx, iid, status)
    if key is not None:
        ctx.tables.state.put(status.target.service, key, message.key, message.value.content)
    return status


def _clear_state(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    message = pb.ClearStateCommandMessage.FromString(record.message)
    key = _object_key(ctx, iid, status)
    if key is not None:
        ctx.tables.state.delete(status.target.service, key, message.key)
    return status


def _clear_all_state(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    pb.ClearAllStateCommandMessage.FromString(record.message)  # validates the body
    key = _object_key(ctx, iid, status)
    if key is not None:
        ctx.tables.state.clear_all(status.target.service, key)
    return status


def _get_lazy_state(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    message = pb.GetLazyStateCommandMessage.FromString(record.message)
    key = _object_key(ctx, iid, status)
    value = None if key is None else ctx.tables.state.get(status.target.service, key, message.key)
    result: NotificationResult = Void() if value is None else Value(value)
    return complete_now(ctx, iid, status, message.result_completion_id, result)


def _get_lazy_state_keys(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    message = pb.GetLazyStateKeysCommandMessage.FromString(record.message)
    key = _object_key(ctx, iid, status)
    keys = () if key is None else tuple(ctx.tables.state.keys(status.target.service, key))
    return complete_now(ctx, iid, status, message.result_completion_id, StateKeys(keys))


# --- timers, calls, output ---------------------------------------------------------------


def _sleep(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    message = pb.SleepCommandMessage.FromString(record.message)
    timer = TimerKey(message.wake_up_time, iid, TimerKind.SLEEP, message.result_completion_id)
    ctx.tables.timers.put(timer)
    ctx.emit(RegisterTimer(timer))
    return status


def _call(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    index: int,
    record: JournalAppend,
) -> InvocationStatus:
    message = pb.CallCommandMessage.FromString(record.message)
    idempotency_key = message.idempotency_key if message.HasField("idempotency_key") else None
    return _send(
        ctx,
        iid,
        status,
        index,
        message,
        headers=_callee_headers(message, record.trace_parent),
        idempotency_key=idempotency_key,
        result_completion_id=message.result_completion_id,
        execute_at_ms=None,
        call_target=record.call_target,
    )


def _one_way_call(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    index: int,
    record: JournalAppend,
) -> InvocationStatus:
    message = pb.OneWayCallCommandMessage.FromString(record.message)
    idempotency_key = message.idempotency_key if message.HasField("idempotency_key") else None
    return _send(
        ctx,
        iid,
        status,
        index,
        message,
        headers=_callee_headers(message, record.trace_parent),
        idempotency_key=idempotency_key,
        result_completion_id=None,
        # 0 means "now"; a past time also starts at once (the callee compares).
        execute_at_ms=message.invoke_time or None,
        call_target=record.call_target,
    )


def _callee_headers(
    message: pb.CallCommandMessage | pb.OneWayCallCommandMessage, trace_parent: str | None
) -> tuple[Header, ...]:
    """The callee's headers: the command's, plus the calling attempt's trace context
    (WAL schema v11, tracing on) unless the command carries a ``traceparent`` itself."""
    headers = tuple(Header(h.key, h.value) for h in message.headers)
    if trace_parent is not None and not any(h.name.lower() == "traceparent" for h in headers):
        headers += (Header("traceparent", trace_parent),)
    return headers


def _send(
    ctx: ApplyContext,
    caller: InvocationId,
    status: InvocationStatus,
    index: int,
    message: pb.CallCommandMessage | pb.OneWayCallCommandMessage,
    *,
    headers: tuple[Header, ...],
    idempotency_key: str | None,
    result_completion_id: int | None,
    execute_at_ms: int | None,
    call_target: CallTarget | None,
) -> InvocationStatus:
    key = message.key or None
    if call_target is None:
        # Written before schema v2 (the command names no service kind): an empty key
        # means a plain service, a keyed target an exclusive virtual-object handler.
        call_target = CallTarget(
            ServiceKind.SERVICE if key is None else ServiceKind.VIRTUAL_OBJECT,
            None if key is None else HandlerKind.EXCLUSIVE,
        )
    target = InvocationTarget(
        service=message.service_name,
        handler=message.handler_name,
        key=key,
        service_kind=call_target.service_kind,
        handler_kind=call_target.handler_kind,
    )
    callee = callee_invocation_id(
        caller, index, target.service, key, target.handler, idempotency_key
    )
    invoke = Invoke(
        invocation_id=callee,
        target=target,
        argument=message.parameter,
        headers=headers,
        source=InvocationSource(caller, index),
        response_sink=None
        if result_completion_id is None
        else InvocationSink(caller, result_completion_id),
        idempotency_key=idempotency_key,
        execute_at_ms=execute_at_ms,
        completion_retention_ms=call_target.completion_retention_ms(bool(idempotency_key)),
        journal_retention_ms=call_target.journal_retention_ms,
    )
    send_outbox(ctx, callee.partition_key, invoke)
    ctx.log_for(caller).debug(
        "call sent", callee=str(callee), service=target.service, handler=target.handler
    )
    return complete_now(
        ctx, caller, status, message.invocation_id_notification_idx, InvocationIdResult(callee)
    )


def _output(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    message = pb.OutputCommandMessage.FromString(record.message)
    which = message.WhichOneof("result")
    if which == "value":
        return status.touched(ctx.now_ms, result=Value(message.value.content))
    if which == "failure":
        return status.touched(ctx.now_ms, result=failure_of(message.failure))
    ctx.log_for(iid).warning("OutputCommand without a result")
    return status


_INTERPRETERS: Final[dict[int, _Interpreter]] = {
    MessageType.SET_STATE_COMMAND: _set_state,
    MessageType.CLEAR_STATE_COMMAND: _clear_state,
    MessageType.CLEAR_ALL_STATE_COMMAND: _clear_all_state,
    MessageType.GET_LAZY_STATE_COMMAND: _get_lazy_state,
    MessageType.GET_LAZY_STATE_KEYS_COMMAND: _get_lazy_state_keys,
    MessageType.SLEEP_COMMAND: _sleep,
    MessageType.CALL_COMMAND: _call,
    MessageType.ONE_WAY_CALL_COMMAND: _one_way_call,
    MessageType.OUTPUT_COMMAND: _output,
    MessageType.COMPLETE_AWAKEABLE_COMMAND: complete_awakeable,
    MessageType.SEND_SIGNAL_COMMAND: send_signal,
    MessageType.GET_PROMISE_COMMAND: get_promise,
    MessageType.PEEK_PROMISE_COMMAND: peek_promise,
    MessageType.COMPLETE_PROMISE_COMMAND: complete_promise,
    MessageType.ATTACH_INVOCATION_COMMAND: attach_command,
    MessageType.GET_INVOCATION_OUTPUT_COMMAND: get_output_command,
}
