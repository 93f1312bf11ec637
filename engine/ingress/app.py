"""The Restate-compatible ingress HTTP API (default :8080).

A call is accepted only once its ``Invoke`` record is durable in the WAL; from then on a
crash loses nothing. ``/send`` answers right after that append; a plain call waits for
the invocation's result, which the partition leader hands to :class:`PendingResponses`.
Status codes and JSON error bodies follow restate-server's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from engine.ids import InvocationUuid
from engine.ingress.pending import PendingResponses
from engine.ingress.routing import IngressError, Resolver, ServiceKindLookup, parse_delay, parse_path
from engine.logs import get_logger
from engine.wal.appender import WalAppender, WalAppendError
from engine.wal.partitioning import invocation_id_for
from engine.wal.records import (
    Failure,
    Header,
    IngressSink,
    IngressSource,
    InvocationTarget,
    Invoke,
    OutputResult,
    Value,
)

log = get_logger(__name__)

# Headers that describe the HTTP hop, not the call; they are not handed to the handler.
_HOP_HEADERS = frozenset(
    {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade", "expect", "te",
     "proxy-connection", "accept-encoding"}
)


@dataclass
class IngressDeps:
    """What the ingress needs from the rest of the process."""

    node_name: str
    appender: WalAppender
    pending: PendingResponses
    resolve: Resolver
    service_kind: ServiceKindLookup
    service_names: Callable[[], list[str]]
    max_body_bytes: int = 10 * 1024 * 1024


def create_ingress_app(deps: IngressDeps) -> web.Application:
    """The ingress application."""
    app = web.Application(client_max_size=deps.max_body_bytes + 1)
    app["deps"] = deps
    app.router.add_get("/restate/health", _health)
    app.router.add_route("*", "/{tail:.*}", _invoke)
    return app


def error_response(status: int, message: str, source: str = "ingress", invocation_id: str | None = None) -> web.Response:
    """restate-server's error shape: ``{"code", "message", "source"}`` and a source header."""
    headers = {"x-restate-error-source": source}
    if invocation_id:
        headers["x-restate-id"] = invocation_id
    return web.json_response({"code": status, "message": message, "source": source}, status=status, headers=headers)


async def _health(request: web.Request) -> web.Response:
    deps: IngressDeps = request.app["deps"]
    return web.json_response({"services": deps.service_names()})


async def _invoke(request: web.Request) -> web.StreamResponse:
    deps: IngressDeps = request.app["deps"]
    if request.method not in ("POST", "GET", "PUT"):
        return error_response(405, f"method {request.method} not allowed; call handlers with POST")
    try:
        target = parse_path(request.path, deps.service_kind, deps.resolve)
        body = await _read_body(request, deps.max_body_bytes)
        info = target.handler
        _check_input(info.input_content_type, request.headers.get("content-type"), body)
        execute_at_ms = None
        delay_text = request.query.get("delay")
        if delay_text is not None:
            if not target.send:
                raise IngressError(400, "the delay query parameter is only allowed on /send requests")
            execute_at_ms = int(time.time() * 1000 + parse_delay(delay_text).total_seconds() * 1000)
    except IngressError as exc:
        return error_response(exc.status, exc.message)

    invocation_id = invocation_id_for(info.service, target.key, InvocationUuid.generate())
    headers = tuple(Header(k.lower(), v) for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS)
    request_id, future = (None, None) if target.send else deps.pending.register()
    sink = None if request_id is None else IngressSink(deps.node_name, request_id)
    record = Invoke(
        invocation_id=invocation_id,
        target=InvocationTarget(info.service, info.handler, target.key, info.service_kind, info.handler_kind),
        argument=body,
        headers=headers,
        source=IngressSource(deps.node_name, request_id or ""),
        response_sink=sink,
        idempotency_key=request.headers.get("idempotency-key"),
        execute_at_ms=execute_at_ms,
    )
    bound = log.bind(invocation_id=str(invocation_id), service=info.service, handler=info.handler, key=target.key)
    try:
        await deps.appender.append(deps.appender.partition_of(invocation_id), record)
    except WalAppendError as exc:
        if request_id is not None:
            deps.pending.discard(request_id)
        bound.warning("ingress append failed", error=str(exc))
        return error_response(503, f"the engine could not durably accept the call ({exc}); retry later")

    if target.send:
        answer: dict[str, str] = {"invocationId": str(invocation_id), "status": "Accepted"}
        if execute_at_ms is not None:
            answer["executionTime"] = datetime.fromtimestamp(execute_at_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
        return web.json_response(answer, status=202, headers={"x-restate-id": str(invocation_id)})

    assert future is not None and request_id is not None
    try:
        result = await future
    except asyncio.CancelledError:
        # The client went away; the invocation continues and keeps its result.
        deps.pending.discard(request_id)
        raise
    return _result_response(result, str(invocation_id), info.output_content_type)


def _result_response(result: OutputResult, invocation_id: str, content_type: str) -> web.Response:
    if isinstance(result, Value):
        return web.Response(body=result.content, status=200,
                            headers={"content-type": content_type, "x-restate-id": invocation_id})
    assert isinstance(result, Failure)
    status = result.code if 400 <= result.code <= 599 else 500
    return error_response(status, result.message, source="invocation", invocation_id=invocation_id)


def _check_input(expected: str | None, content_type: str | None, body: bytes) -> None:
    """Restate's input validation: the content type must match the handler's declared input."""
    if expected is None:
        if body or content_type is not None:
            raise IngressError(
                400,
                "input validation error: this handler takes no input; send neither a body nor a content-type "
                f"(got {len(body)} bytes, content-type {content_type!r})",
            )
        return
    if not body or content_type is None or expected == "*/*":
        return
    got = content_type.split(";")[0].strip().lower()
    want = expected.split(";")[0].strip().lower()
    if want.endswith("/*") and got.split("/")[0] == want.split("/")[0]:
        return
    if got != want:
        raise IngressError(400, f"input validation error: Content-type '{content_type}' does not match '{expected}'")


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise IngressError(413, f"request body of {request.content_length} bytes exceeds the limit of {limit} bytes")
    chunks = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        chunks.extend(chunk)
        if len(chunks) > limit:
            raise IngressError(413, f"request body exceeds the limit of {limit} bytes")
    return bytes(chunks)
