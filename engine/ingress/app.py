"""The Restate-compatible ingress HTTP API (default :8080).

A call is accepted only once its ``Invoke`` record is durable in the WAL; from then on a
crash loses nothing. ``/send`` answers right after that append; a plain call waits for
the invocation's result, which the partition leader hands to :class:`PendingResponses`.
Status codes and JSON error bodies follow restate-server's.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.typedefs import Middleware

from engine.auth import bearer_middleware
from engine.config import Secret
from engine.ids import InvocationId, InvocationUuid
from engine.ingress import awakeables, durable, invocations
from engine.ingress.pending import Answer
from engine.ingress.deps import DEPS, IngressDeps, error_response, result_response
from engine.ingress.routing import IngressError, parse_delay, parse_path
from engine.journal.limits import time_out_of_range
from engine.logs import get_logger
from engine.partition.actions import Submitted
from engine.wal.partitioning import invocation_id_for
from engine.wal.records import HandlerKind, Header, IngressSink, IngressSource, InvocationTarget, Invoke

log = get_logger(__name__)

# How long a send with a derived id waits to learn whether it was new (see
# _previously_accepted); the invocation is durable already, this only picks the answer.
_APPLY_WAIT_S = 5.0

# Headers that describe the HTTP hop, not the call; they are not handed to the handler.
_HOP_HEADERS = frozenset(
    {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade", "expect", "te",
     "proxy-connection", "accept-encoding"}
)

_NOT_PASSED = web.AppKey("not_passed_headers", frozenset[str])


def create_ingress_app(deps: IngressDeps, token: Secret | None = None) -> web.Application:
    """The ingress application; with ``token``, every route but ``/restate/health`` needs
    ``Authorization: Bearer <token>`` (:mod:`engine.auth`)."""
    middlewares: list[Middleware] = []
    if token is not None:
        middlewares.append(bearer_middleware(
            token, what="ingress", setting="ingress_token (LOGSTRATE_INGRESS_TOKEN)",
            error=lambda status, message: error_response(status, message),
            open_path=lambda path: path == "/restate/health",
        ))
    app = web.Application(client_max_size=deps.max_body_bytes + 1, middlewares=middlewares)
    app[DEPS] = deps
    # With an ingress token, Authorization carries the engine's credential, not the
    # caller's: it is neither handed to handlers nor written to the WAL.
    app[_NOT_PASSED] = _HOP_HEADERS | {"authorization"} if token is not None else _HOP_HEADERS
    app.router.add_get("/restate/health", _health)
    invocations.add_routes(app)
    awakeables.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", _invoke)
    return app


async def _health(request: web.Request) -> web.Response:
    deps: IngressDeps = request.app[DEPS]
    return web.json_response({"services": deps.service_names()})


async def _invoke(request: web.Request) -> web.StreamResponse:
    deps: IngressDeps = request.app[DEPS]
    arrived = asyncio.get_running_loop().time()  # the Kafka bound counts from here
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
            if time_out_of_range("the delayed send's start time", execute_at_ms) is not None:
                raise IngressError(
                    400, f"delay query parameter {delay_text!r} is too long: a send can be delayed until "
                    "9999-12-31 at the latest",
                )
    except IngressError as exc:
        return error_response(exc.status, exc.message)
    if len(body) > deps.appender.max_record_bytes:
        return durable.too_large(len(body), deps.appender.max_record_bytes, "request body")
    refused = durable.refuse_if_down(deps, "call")
    if refused is not None:
        return refused

    idempotency_key = request.headers.get("idempotency-key") or None
    derived = True
    if info.handler_kind is HandlerKind.WORKFLOW and target.key is not None:
        # One run per workflow id: every submission of it names the same invocation.
        uuid = InvocationUuid.for_workflow_run(info.service, target.key)
    elif idempotency_key is not None:
        # Retries with the same key reach the same invocation (and its kept result).
        uuid = InvocationUuid.for_idempotent_request(info.service, target.key, info.handler, idempotency_key)
    else:
        uuid, derived = InvocationUuid.generate(), False
    invocation_id = invocation_id_for(info.service, target.key, uuid)
    not_passed = request.app[_NOT_PASSED]
    headers = tuple(Header(k.lower(), v) for k, v in request.headers.items() if k.lower() not in not_passed)
    # A call waits for the result; a send with a derived id for whether it was new
    # (the Invoke's source names the request, see state_machine/invoke.py).
    request_id, future = (None, None) if target.send and not derived else deps.pending.register()
    sink = None if target.send or request_id is None else IngressSink(deps.node_name, request_id)
    source = IngressSource(deps.node_name, request_id or deps.pending.fresh_id())
    retention = info.target_info
    record = Invoke(
        invocation_id=invocation_id,
        target=InvocationTarget(info.service, info.handler, target.key, info.service_kind, info.handler_kind),
        argument=body,
        headers=headers,
        source=source,
        response_sink=sink,
        idempotency_key=idempotency_key,
        execute_at_ms=execute_at_ms,
        completion_retention_ms=None if retention is None else retention.completion_retention_ms(derived),
        journal_retention_ms=None if retention is None else retention.journal_retention_ms,
    )
    partition = deps.appender.partition_of(invocation_id)
    # A new random id: when this process leads the partition, its leader appends the
    # Invoke and starts the first attempt now (for a call, both leave in one WAL record).
    # Not while the WAL is known to be down: the append below refuses at once then, and a
    # first attempt started now would run the handler for a call that is not accepted.
    early = None if derived or not deps.appender.health.up else deps.start_early(partition, record)
    appended: asyncio.Future[int]
    if early is None:
        appended = durable.submit(deps, partition, record)
    else:
        appended = asyncio.ensure_future(early.appended)
        stop_early = early.stop
        # Stopped only once the append is known to have failed: after a 503 for a late
        # acknowledgement the record may still land, and then the attempt must run.
        appended.add_done_callback(lambda f: stop_early() if f.cancelled() or f.exception() else None)
    try:
        refused = await durable.await_durable(deps, appended, "call", str(invocation_id), arrived)
    except asyncio.CancelledError:
        # The client went away during the append (which goes on): nobody waits here.
        if request_id is not None:
            deps.pending.discard(request_id)
        raise
    if refused is not None:
        # Not accepted, or not known to be: nobody waits for an answer here. (Debug: the
        # WAL health logs the outage once, not once per refused request.)
        if request_id is not None:
            deps.pending.discard(request_id)
        log.debug("ingress append failed", status=refused.status, invocation_id=str(invocation_id),
                  service=info.service, handler=info.handler, key=target.key)
        return refused

    if target.send:
        previously_accepted = (
            future is not None and request_id is not None and await _previously_accepted(deps, request_id, future)
        )
        answer: dict[str, str] = {
            "invocationId": str(invocation_id),
            "status": "PreviouslyAccepted" if previously_accepted else "Accepted",
        }
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
    return result_response(result, invocation_id, info.output_content_type)


async def _previously_accepted(deps: IngressDeps, request_id: str, future: asyncio.Future[Answer]) -> bool:
    """Whether a send with a derived id (idempotency key, workflow run) found the
    invocation already there. The partition's leader answers once our ``Invoke`` is
    applied, whichever process that is; without an answer in time (an engine that does
    not send one) the send is "Accepted", as for a new one."""
    try:
        answer = await asyncio.wait_for(future, _APPLY_WAIT_S)
    except TimeoutError:
        return False
    finally:
        deps.pending.discard(request_id)
    return isinstance(answer, Submitted) and answer.previously_accepted


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
