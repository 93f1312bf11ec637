"""Admitting new invocations: schedule, queue behind the key's lock, or start.

``Invoke`` creates the invocation. One submitted with ``execute_at_ms`` after the
record's timestamp waits as Scheduled for its DELAYED_INVOKE timer. An exclusive
handler of a virtual object or workflow (and any keyed handler whose kind the record
does not name: serializing is always safe) takes the key's lock, or queues in the
key's inbox while another invocation holds it. Plain services and shared handlers
start right away. Starting writes the InputCommand as journal entry 0 and asks the
invoker to run the first attempt.

An ``Invoke`` for an id the partition already knows creates nothing: ingress retries,
re-sent outbox records and idempotency-key requests (whose ids are derived from the
key) all land here. If it brings a response sink the invocation does not have yet,
the sink is attached, so a retried request or a second caller with the same
idempotency key gets the same result; a completed invocation answers it at once. A
workflow's ``run`` is the exception: its id is derived from the workflow key, and a
second submission gets 409 "the workflow method was already invoked", as on
restate-server (attach through ``/restate/workflow/{name}/{key}/attach`` instead).

A ``/send`` with a derived id (an idempotency key, a workflow run) carries no response
sink, but its ingress request waits for whether it created the invocation
(``Accepted``) or found it (``PreviouslyAccepted``): the answer is a ``RespondToIngress``
of :class:`Submitted` addressed by the record's ``IngressSource``, delivered like any
answer (in-process, or through the responses topic when another process waits).
"""

from __future__ import annotations

from typing import Final

from engine.ids import InvocationId
from restate_protocol import MessageType, pb
from engine.partition.actions import InvokeAction, RegisterTimer, RespondToIngress, Submitted
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.journal_ops import append_command
from engine.partition.state_machine.responses import answer_sinks
from engine.storage.invocation_status import InvocationStatus, ResponseSinkEntry, StatusKind
from restate_protocol import JournalEntry
from engine.wal.records import (
    Failure,
    HandlerKind,
    Header,
    IngressSource,
    InvocationTarget,
    Invoke,
    TimerKey,
    TimerKind,
)

__all__ = [
    "WORKFLOW_ALREADY_INVOKED",
    "admit",
    "attach_sink",
    "input_entry",
    "lock_key",
    "needs_lock",
    "on_invoke",
    "speculation_holds",
    "start",
    "starts_when_applied",
]

WORKFLOW_ALREADY_INVOKED: Final = Failure(409, "the workflow method was already invoked")
"""What a second submission of a workflow's ``run`` gets (restate-server's answer)."""


def needs_lock(target: InvocationTarget) -> bool:
    """Whether an invocation of ``target`` must hold its key exclusively."""
    return target.key is not None and target.handler_kind is not HandlerKind.SHARED


def lock_key(status: InvocationStatus) -> str | None:
    """The key of ``status.target.service`` the invocation must hold while it runs.

    An exclusive handler holds its object's key. A keyless target (a plain service)
    with an ordering key holds that instead: the lock and inbox then serialise it with
    the service's other invocations of the same ordering key. A plain service has no
    object keys, so the two uses cannot meet; a keyed target ignores its ordering key.
    """
    target = status.target
    if needs_lock(target):
        return target.key
    if target.key is None:
        return status.ordering_key
    return None


def on_invoke(ctx: ApplyContext, record: Invoke) -> None:
    """Apply an ``Invoke`` record."""
    invocation_id = record.invocation_id
    existing = ctx.tables.status.get(invocation_id)
    _acknowledge_send(ctx, record, existing)
    if existing is not None:
        if record.response_sink is None:
            ctx.log_for(invocation_id).debug("invocation exists already; Invoke ignored")
        elif existing.target.handler_kind is HandlerKind.WORKFLOW:
            # A workflow runs once per id: a second submission is refused, running or not.
            answer_sinks(ctx, invocation_id, (record.response_sink,), WORKFLOW_ALREADY_INVOKED)
        else:
            attach_sink(ctx, invocation_id, existing, record.response_sink)
        return
    status = InvocationStatus(
        kind=StatusKind.SCHEDULED,
        target=record.target,
        argument=record.argument,
        headers=record.headers,
        source=record.source,
        response_sinks=() if record.response_sink is None else (record.response_sink,),
        idempotency_key=record.idempotency_key,
        execute_at_ms=record.execute_at_ms,
        created_at_ms=ctx.now_ms,
        modified_at_ms=ctx.now_ms,
        completion_retention_ms=record.completion_retention_ms,
        journal_retention_ms=record.journal_retention_ms,
        ordering_key=record.ordering_key,
    )
    if record.execute_at_ms is not None and record.execute_at_ms > ctx.now_ms:
        timer = TimerKey(record.execute_at_ms, invocation_id, TimerKind.DELAYED_INVOKE)
        ctx.tables.status.put(invocation_id, status)
        ctx.tables.timers.put(timer)
        ctx.emit(RegisterTimer(timer))
        ctx.log_for(invocation_id).debug("invocation scheduled", execute_at_ms=record.execute_at_ms)
        return
    if record.speculation is not None and not speculation_holds(ctx, status, record.speculation):
        ctx.log_for(invocation_id).debug("speculative first attempt refused: the key changed meanwhile")
        ctx.reject_speculation(invocation_id)
    admit(ctx, invocation_id, status)


def speculation_holds(ctx: ApplyContext, status: InvocationStatus, version: str) -> bool:
    """Whether an attempt that ran with object state ``version`` before this ``Invoke``
    was applied saw exactly what it would see if it started now: the key is free (an
    exclusive handler takes the lock at once) and its state has that version. Pure in
    the partition's state, so every replica decides the same."""
    target = status.target
    if target.key is None or target.handler_kind is HandlerKind.WORKFLOW:
        return False
    if needs_lock(target) and ctx.tables.locks.holder(target.service, target.key) is not None:
        return False
    return ctx.tables.state.version(target.service, target.key) == version


def _acknowledge_send(ctx: ApplyContext, record: Invoke, existing: InvocationStatus | None) -> None:
    """Tell the ingress request behind a send with a derived id whether it was new.

    The same ``Invoke`` applied twice (a retried append) finds its own source on the
    status, so it still reads as accepted by this request.
    """
    source = record.source
    if record.response_sink is not None or not isinstance(source, IngressSource):
        return
    if record.idempotency_key is None and record.target.handler_kind is not HandlerKind.WORKFLOW:
        return  # a random id: the ingress already knows the invocation is new
    previously = existing is not None and existing.source != source
    ctx.emit(RespondToIngress(source.node_id, source.request_id, record.invocation_id, Submitted(previously)))


def attach_sink(
    ctx: ApplyContext,
    invocation_id: InvocationId,
    status: InvocationStatus,
    sink: ResponseSinkEntry,
) -> None:
    """Send the invocation's result to ``sink`` too (now, if it has completed)."""
    if status.kind is StatusKind.COMPLETED:
        if status.result is not None:
            answer_sinks(ctx, invocation_id, (sink,), status.result)
        return
    if sink in status.response_sinks:
        ctx.log_for(invocation_id).debug("response sink already attached")
        return
    updated = status.touched(ctx.now_ms, response_sinks=(*status.response_sinks, sink))
    ctx.tables.status.put(invocation_id, updated)


def admit(ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus) -> None:
    """Start a new or scheduled invocation, or queue it behind its key's lock."""
    target = status.target
    key = lock_key(status)
    if key is not None:
        holder = ctx.tables.locks.holder(target.service, key)
        if holder is not None and holder != invocation_id:
            sequence = ctx.tables.fsm.allocate_inbox_sequence()
            ctx.tables.inbox.push(target.service, key, sequence, invocation_id)
            ctx.tables.status.put(
                invocation_id,
                status.touched(ctx.now_ms, kind=StatusKind.INBOXED, inbox_sequence=sequence),
            )
            ctx.log_for(invocation_id).debug(
                "key is locked; invocation inboxed", holder=str(holder)
            )
            return
        ctx.tables.locks.acquire(target.service, key, invocation_id)
    start(ctx, invocation_id, status)


def start(ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus) -> None:
    """Journal the input and hand the invocation to the invoker (the lock, if any, is held).

    A restarted invocation (:mod:`.restart`) was given its journal, the input first,
    when it was created: it starts with that journal as it is.
    """
    if status.restarted_from is not None and status.journal_length > 0:
        ctx.tables.status.put(invocation_id, status.touched(ctx.now_ms, kind=StatusKind.INVOKED, inbox_sequence=None))
        ctx.emit(InvokeAction(invocation_id))
        ctx.log_for(invocation_id).debug("restarted invocation started", journal_length=status.journal_length)
        return
    started = status.touched(
        ctx.now_ms, kind=StatusKind.INVOKED, inbox_sequence=None, journal_length=0, commands=0
    )
    started = journal_input(ctx, invocation_id, started)
    ctx.tables.status.put(invocation_id, started)
    ctx.emit(InvokeAction(invocation_id))
    ctx.log_for(invocation_id).debug("invocation started", service=status.target.service)


def input_entry(headers: tuple[Header, ...], argument: bytes) -> JournalEntry:
    """Journal entry 0: the InputCommand of an invocation's argument and headers (the
    same bytes wherever it is built: an early first attempt sends it before it is
    stored, and later attempts replay the stored one)."""
    input_command = pb.InputCommandMessage(
        headers=[pb.Header(key=h.name, value=h.value) for h in headers],
        value=pb.Value(content=argument),
    )
    return JournalEntry(MessageType.INPUT_COMMAND, input_command.SerializeToString(deterministic=True))


def journal_input(ctx: ApplyContext, invocation_id: InvocationId, status: InvocationStatus) -> InvocationStatus:
    """Append the InputCommand built from the status's argument and headers."""
    return append_command(ctx, invocation_id, status, input_entry(status.headers, status.argument))


def starts_when_applied(record: Invoke) -> bool:
    """Whether applying ``record`` always starts its invocation at once, with the input
    as its whole journal: a new id (no idempotency key, not a workflow), no delay, and
    no key or ordering lock to queue behind. The leader may then start the first
    attempt before the record is read back (see ``leader.invocations``): nothing that
    applying it could decide differs from what the submitter already knows.

    A fresh invocation id is the caller's promise (ingress ids are random); the answer
    here only covers what the record itself says."""
    target = record.target
    return (
        record.idempotency_key is None
        and record.execute_at_ms is None
        and record.ordering_key is None
        and target.key is None
        and target.handler_kind is not HandlerKind.WORKFLOW
    )
