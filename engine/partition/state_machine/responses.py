"""Sending things out: the outbox, and answers to whoever waits for a result."""

from __future__ import annotations

from collections.abc import Iterable

from engine.ids import InvocationId
from engine.partition.actions import RespondToIngress, SendOutbox
from engine.partition.state_machine.context import ApplyContext
from engine.storage.invocation_status import ResponseSinkEntry
from engine.storage.outbox import OutboxMessage
from engine.wal.records import (
    CompletionId,
    IngressSink,
    Notify,
    OutboxTruncate,
    OutputResult,
    Record,
)

__all__ = ["answer_sinks", "on_outbox_truncate", "send_outbox"]


def send_outbox(ctx: ApplyContext, target_partition_key: int, record: Record) -> int:
    """Put ``record`` in the outbox for the partition owning ``target_partition_key``.

    Returns the outbox sequence. The row is written now and the leader delivers it
    (``SendOutbox``); after a crash it re-reads undelivered rows, so nothing is lost
    between this transaction and the delivery.
    """
    sequence = ctx.tables.fsm.allocate_outbox_sequence()
    ctx.tables.outbox.put(OutboxMessage(sequence, target_partition_key, record))
    ctx.emit(SendOutbox(sequence, target_partition_key, record))
    return sequence


def answer_sinks(
    ctx: ApplyContext,
    invocation_id: InvocationId,
    sinks: Iterable[ResponseSinkEntry],
    result: OutputResult,
) -> None:
    """Deliver ``result`` to every sink: ingress requests directly, calling invocations
    as a ``Notify`` of the call's result completion id through the outbox."""
    for sink in sinks:
        if isinstance(sink, IngressSink):
            ctx.emit(RespondToIngress(sink.node_id, sink.request_id, invocation_id, result))
        else:
            notify = Notify(sink.invocation_id, CompletionId(sink.completion_id), result)
            send_outbox(ctx, sink.invocation_id.partition_key, notify)


def on_outbox_truncate(ctx: ApplyContext, record: OutboxTruncate) -> None:
    """The leader delivered the outbox up to ``record.sequence``: drop those rows."""
    removed = ctx.tables.outbox.truncate(record.sequence)
    ctx.log.debug("outbox truncated", up_to=record.sequence, removed=removed)
