"""Durable promises of workflows: ``GetPromise``, ``PeekPromise``, ``CompletePromise``.

A promise belongs to one workflow instance ``(workflow, key)`` and is named by the
command's ``key`` field. All handlers of that instance run in the key's partition, so the
promise table (:mod:`engine.storage.promises`) is local to every command touching it.

* Get: answered at once when the promise is completed, else the command waits (its
  invocation and completion id are stored on the promise).
* Peek: answered at once, with the result or with Void when not completed.
* Complete: the first completion wins and wakes every waiter (a ``Notify`` through the
  outbox, so waiters and completer are settled in separate, ordered transactions); a
  second completion fails with Restate's 409 "promise was already completed".
"""

from __future__ import annotations

from typing import Final

from engine.ids import InvocationId
from engine.journal.notifications import failure_of
from restate_protocol import pb
from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.journal_ops import complete_now
from engine.partition.state_machine.responses import send_outbox
from engine.storage.invocation_status import InvocationStatus
from engine.storage.promises import Promise, PromiseWaiter
from engine.wal.records import (
    CompletionId,
    Failure,
    JournalAppend,
    Notify,
    OutputResult,
    Value,
    Void,
)

__all__ = ["ALREADY_COMPLETED", "complete_promise", "get_promise", "peek_promise"]

ALREADY_COMPLETED: Final = Failure(409, "promise was already completed")
"""What a second completion of a promise gets (restate-server's code and message)."""
_NOT_A_WORKFLOW: Final = Failure(
    400, "durable promises exist only in workflow handlers (this invocation has no workflow key)"
)


def _instance(status: InvocationStatus) -> tuple[str, str] | None:
    key = status.target.key
    return None if key is None else (status.target.service, key)


def get_promise(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    """``GetPromiseCommand``: the promise's result, now or once it is completed."""
    message = pb.GetPromiseCommandMessage.FromString(record.message)
    instance = _instance(status)
    if instance is None:
        return complete_now(ctx, iid, status, message.result_completion_id, _NOT_A_WORKFLOW)
    service, key = instance
    promise = ctx.tables.promises.get(service, key, message.key) or Promise()
    if promise.result is not None:
        return complete_now(ctx, iid, status, message.result_completion_id, promise.result)
    waiter = PromiseWaiter(iid, message.result_completion_id)
    if waiter not in promise.waiters:
        promise = Promise(None, (*promise.waiters, waiter))
        ctx.tables.promises.put(service, key, message.key, promise)
    ctx.log_for(iid, promise=message.key).debug("waiting for a durable promise")
    return status


def peek_promise(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    """``PeekPromiseCommand``: the result if completed, else Void; never waits."""
    message = pb.PeekPromiseCommandMessage.FromString(record.message)
    instance = _instance(status)
    if instance is None:
        return complete_now(ctx, iid, status, message.result_completion_id, _NOT_A_WORKFLOW)
    promise = ctx.tables.promises.get(*instance, message.key)
    result = Void() if promise is None or promise.result is None else promise.result
    return complete_now(ctx, iid, status, message.result_completion_id, result)


def complete_promise(
    ctx: ApplyContext,
    iid: InvocationId,
    status: InvocationStatus,
    _: int,
    record: JournalAppend,
) -> InvocationStatus:
    """``CompletePromiseCommand``: resolve or reject; the first completion wins."""
    message = pb.CompletePromiseCommandMessage.FromString(record.message)
    instance = _instance(status)
    if instance is None:
        return complete_now(ctx, iid, status, message.result_completion_id, _NOT_A_WORKFLOW)
    service, key = instance
    promise = ctx.tables.promises.get(service, key, message.key) or Promise()
    if promise.result is not None:
        return complete_now(ctx, iid, status, message.result_completion_id, ALREADY_COMPLETED)
    which = message.WhichOneof("completion")
    result: OutputResult
    if which == "completion_value":
        result = Value(message.completion_value.content)
    elif which == "completion_failure":
        result = failure_of(message.completion_failure)
    else:
        bad = Failure(400, "promise completion without a value or failure")
        return complete_now(ctx, iid, status, message.result_completion_id, bad)
    ctx.tables.promises.put(service, key, message.key, Promise(result))
    for waiter in promise.waiters:
        notify = Notify(waiter.invocation_id, CompletionId(waiter.completion_id), result)
        send_outbox(ctx, waiter.invocation_id.partition_key, notify)
    ctx.log_for(iid, promise=message.key).debug(
        "durable promise completed", waiters=len(promise.waiters), failed=isinstance(result, Failure)
    )
    return complete_now(ctx, iid, status, message.result_completion_id, Void())
