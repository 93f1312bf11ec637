"""What every ingress route shares: the process dependencies and restate-server's
response shapes for results and errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from engine.ids import InvocationId
from engine.ingress.pending import Answer, PendingResponses
from engine.ingress.routing import Resolver, ServiceKindLookup
from engine.storage.invocation_status import InvocationStatus
from engine.wal.appender import WalAppender
from engine.wal.records import Failure, FailureMetadata, Invoke, Value, Void

__all__ = [
    "DEPS",
    "NOT_READY",
    "EarlyStart",
    "IngressDeps",
    "StartedEarly",
    "StatusLookup",
    "error_response",
    "result_response",
]

StatusLookup = Callable[[InvocationId], InvocationStatus | None]
"""The invocation's status as this process's partition tables have it."""

@dataclass(frozen=True, slots=True)
class StartedEarly:
    """An ``Invoke`` the partition's leader took over: it appends it (for a call, in the
    same WAL record as the first attempt's records) and runs the first attempt now."""

    appended: Awaitable[int]
    """Done once the ``Invoke`` is durable (the offset of the WAL record it is in)."""
    stop: Callable[[], None]
    """Stops the attempt (the append failed)."""


EarlyStart = Callable[[int, Invoke], StartedEarly | None]
"""``(partition, invoke)`` for an ``Invoke`` with a new random id: when this process
leads the partition and the record allows it (``PartitionLeader.start_early``), the
leader appends it and starts its first attempt at once; ``None`` when it did not, and
the caller appends the record itself."""


def _no_early_start(partition: int, record: Invoke) -> StartedEarly | None:
    return None


@dataclass
class IngressDeps:
    """What the ingress needs from the rest of the process."""

    node_name: str
    appender: WalAppender
    pending: PendingResponses
    resolve: Resolver
    service_kind: ServiceKindLookup
    service_names: Callable[[], list[str]]
    read_status: StatusLookup
    max_body_bytes: int = 10 * 1024 * 1024
    workflow_handler: Callable[[str], str | None] = lambda _name: None
    """The name of a registered workflow's ``run`` handler (``None``: not a known workflow)."""
    start_early: EarlyStart = _no_early_start
    kafka_timeout_s: float = 5.0
    """How long a request waits for Kafka's acknowledgement (``ingress_kafka_timeout_s``)."""


DEPS = web.AppKey("deps", IngressDeps)
"""Where the routes find the :class:`IngressDeps` on the application."""


def error_response(
    status: int,
    message: str,
    source: str = "ingress",
    invocation_id: str | None = None,
    metadata: tuple[FailureMetadata, ...] = (),
    headers: dict[str, str] | None = None,
) -> web.Response:
    """restate-server's error shape and a source header: ``{"code", "message", "source"}``,
    with ``"metadata": {key: value}`` after the message when the failure carries any
    (a terminal error's metadata, protocol v6+; restate-server leaves the key out when
    there is none). A key given twice keeps its last value, as in a JSON object."""
    headers = {**(headers or {}), "x-restate-error-source": source}
    if invocation_id:
        headers["x-restate-id"] = invocation_id
    body: dict[str, object] = {"code": status, "message": message}
    if metadata:
        body["metadata"] = {m.key: m.value for m in metadata}
    body["source"] = source
    return web.json_response(body, status=status, headers=headers)


NOT_READY = 470
"""restate-server's status for ``output`` of an invocation that has not completed."""


def result_response(result: Answer, invocation_id: InvocationId, content_type: str) -> web.Response:
    """An invocation's result as restate-server sends it: the value, or the error JSON
    (``Void``, the answer of an output query for a running invocation: 470)."""
    if isinstance(result, Void):
        return error_response(
            NOT_READY, "the invocation exists but has not completed yet", invocation_id=str(invocation_id)
        )
    if isinstance(result, Value):
        return web.Response(
            body=result.content,
            status=200,
            headers={"content-type": content_type, "x-restate-id": str(invocation_id)},
        )
    assert isinstance(result, Failure)
    status = result.code if 400 <= result.code <= 599 else 500
    return error_response(
        status, result.message, source="invocation", invocation_id=str(invocation_id),
        metadata=result.metadata,
    )
