"""Waiting for another invocation's result: attach and get-output.

Two ways in:

* the ingress (``GET /restate/invocation/{id}/attach``) appends ``AttachInvocation``
  with an :class:`~engine.wal.records.IngressSink`;
* a handler journals ``AttachInvocationCommand`` or ``GetInvocationOutputCommand``.
  The caller's partition resolves the target to an invocation id (idempotent requests
  and workflow runs have deterministic ids) and sends ``AttachInvocation`` /
  ``GetInvocationOutput`` with an :class:`~engine.wal.records.InvocationSink` through
  the outbox to the target's partition, which answers with a ``Notify`` of the
  command's completion id, through the outbox again.

What the target's partition answers:

===========================  =====================================  ======================
target                       attach                                 get output
===========================  =====================================  ======================
unknown (or purged)          failure 404                            failure 404
not completed                its result, when it ends               ``Void`` (not ready)
completed                    the result                             the result
===========================  =====================================  ======================

A completed invocation keeps its result for as long as its status is retained, so
"completed" always has one; once the status is gone the target is unknown (a completed
status without a result, should one ever exist, is answered as unknown too rather than
left waiting).
"""

from __future__ import annotations

from typing import Final

from engine.ids import IdParseError, InvocationId, InvocationUuid
from restate_protocol import pb
from engine.partition.actions import RespondToIngress
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.invoke import attach_sink
from engine.partition.state_machine.journal_ops import complete_now
from engine.partition.state_machine.responses import answer_sinks, send_outbox
from engine.storage.invocation_status import InvocationStatus, StatusKind
from engine.wal.partitioning import invocation_id_for
from engine.wal.records import (
    AttachInvocation,
    CompletionId,
    Failure,
    GetInvocationOutput,
    IngressSink,
    InvocationSink,
    JournalAppend,
    Notify,
    OutputResult,
    Void,
)

__all__ = [
    "NOT_FOUND",
    "attach_command",
    "get_output_command",
    "on_attach",
    "on_get_output",
]

NOT_FOUND: Final = Failure(404, "invocation not found")
"""The answer for an attach or get-output whose target does not exist (never created,
or purged): restate-server's ingress code and message."""

_Target = pb.AttachInvocationCommandMessage | pb.GetInvocationOutputCommandMessage


def target_invocation_id(message: _Target) -> InvocationId:
    """The invocation a command's ``target`` names.

    Raises:
        ValueError: the target is missing or an invocation id that does not parse.
    """
    which = message.WhichOneof("target")
    if which == "invocation_id":
        try:
            return InvocationId.parse(message.invocation_id)
        except IdParseError as exc:
            raise ValueError(f"bad invocation id '{message.invocation_id}': {exc}") from None
    if which == "idempotent_request_target":
        t = message.idempotent_request_target
        key = t.service_key if t.HasField("service_key") else None
        uuid = InvocationUuid.for_idempotent_request(
            t.service_name, key, t.handler_name, t.idempotency_key
        )
        return invocation_id_for(t.service_name, key, uuid)
    if which == "workflow_target":
        w = message.workflow_target
        uuid = InvocationUuid.for_workflow_run(w.workflow_name, w.workflow_key)
        return invocation_id_for(w.workflow_name, w.workflow_key, uuid)
    raise ValueError("the command names no target invocation")


def attach_command(
    ctx: ApplyContext,
    caller: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    """Interpret a journaled ``AttachInvocationCommand``."""
    message = pb.AttachInvocationCommandMessage.FromString(record.message)
    return _ask(ctx, caller, status, message, wait=True)


def get_output_command(
    ctx: ApplyContext,
    caller: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    """Interpret a journaled ``GetInvocationOutputCommand``."""
    message = pb.GetInvocationOutputCommandMessage.FromString(record.message)
    return _ask(ctx, caller, status, message, wait=False)


def _ask(
    ctx: ApplyContext,
    caller: InvocationId,
    status: InvocationStatus,
    message: _Target,
    *,
    wait: bool,
) -> InvocationStatus:
    completion_id = message.result_completion_id
    try:
        target = target_invocation_id(message)
    except ValueError as exc:
        return complete_now(ctx, caller, status, completion_id, Failure(400, str(exc)))
    if target == caller:
        refusal = Failure(400, "an invocation cannot wait for its own result")
        return complete_now(ctx, caller, status, completion_id, refusal)
    sink = InvocationSink(caller, completion_id)
    record = AttachInvocation(target, sink) if wait else GetInvocationOutput(target, sink)
    send_outbox(ctx, target.partition_key, record)
    ctx.log_for(caller).debug("attach sent" if wait else "get output sent", target=str(target))
    return status


def on_attach(ctx: ApplyContext, record: AttachInvocation) -> None:
    """Apply an ``AttachInvocation`` record."""
    status = ctx.tables.status.get(record.invocation_id)
    if status is None or (status.kind is StatusKind.COMPLETED and status.result is None):
        ctx.log_for(record.invocation_id).info("attach to an unknown invocation")
        answer_sinks(ctx, record.invocation_id, (record.sink,), NOT_FOUND)
    else:
        attach_sink(ctx, record.invocation_id, status, record.sink)


def on_get_output(ctx: ApplyContext, record: GetInvocationOutput) -> None:
    """Apply a ``GetInvocationOutput`` record."""
    status = ctx.tables.status.get(record.invocation_id)
    result: OutputResult | Void
    if status is None:
        result = NOT_FOUND
    elif status.kind is not StatusKind.COMPLETED:
        result = Void()
    else:
        result = NOT_FOUND if status.result is None else status.result
    sink = record.sink
    if isinstance(sink, IngressSink):
        ctx.emit(RespondToIngress(sink.node_id, sink.request_id, record.invocation_id, result))
        return
    notify = Notify(sink.invocation_id, CompletionId(sink.completion_id), result)
    send_outbox(ctx, sink.invocation_id.partition_key, notify)
