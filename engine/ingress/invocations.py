"""Ingress routes on existing invocations: ``attach`` and ``output``.

* ``GET /restate/invocation/{id}/attach|output``
* ``GET /restate/invocation/{service}/[{key}/]{handler}/{idempotency_key}/attach|output``
  (the invocation a request with that idempotency key created)
* ``GET /restate/workflow/{name}/{key}/attach|output`` (the workflow's ``run``)

``output`` answers at once: the result when the invocation completed, 470 "the
invocation exists but has not completed yet" otherwise, 404 when unknown (restate-server's
codes and messages). ``attach`` waits for the result: it appends ``AttachInvocation``
naming this request as one more response sink, so the answer survives a crash of the
engine between append and completion like any other call's.

What exists is read from this process's LMDB copy of the invocation's partition; with
several engine processes an id whose partition another process owns reads as unknown
here (forwarding between processes is not built yet).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from engine.ids import IdParseError, InvocationId, InvocationUuid
from engine.ingress.deps import DEPS, IngressDeps, error_response, result_response
from engine.ingress.routing import HandlerNotFound, ServiceNotFound
from engine.logs import get_logger
from engine.storage.invocation_status import InvocationStatus, StatusKind
from engine.wal.appender import WalAppendError
from engine.wal.partitioning import invocation_id_for
from engine.wal.records import AttachInvocation, IngressSink

__all__ = ["NOT_READY", "add_routes"]

log = get_logger(__name__)

NOT_READY = 470
"""restate-server's status for ``output`` of an invocation that has not completed."""


def add_routes(app: web.Application) -> None:
    """Register the routes (before the catch-all handler route)."""
    app.router.add_route("*", "/restate/invocation/{tail:.+}/{op:attach|output}", _by_invocation)
    app.router.add_route("*", "/restate/workflow/{name}/{key}/{op:attach|output}", _by_workflow)


async def _by_invocation(request: web.Request) -> web.StreamResponse:
    parts = request.match_info["tail"].split("/")
    if len(parts) == 1:
        try:
            invocation_id = InvocationId.parse(parts[0])
        except IdParseError as exc:
            return error_response(400, f"bad invocation id '{parts[0]}': {exc}")
    elif len(parts) in (3, 4):
        service, *key_part, handler, idempotency_key = parts
        key = key_part[0] if key_part else None
        uuid = InvocationUuid.for_idempotent_request(service, key, handler, idempotency_key)
        invocation_id = invocation_id_for(service, key, uuid)
    else:
        return error_response(
            404,
            "bad path, expected /restate/invocation/{id}/{attach|output} or "
            "/restate/invocation/{service}/[{key}/]{handler}/{idempotency_key}/{attach|output}",
        )
    return await _answer(request, invocation_id)


async def _by_workflow(request: web.Request) -> web.StreamResponse:
    name, key = request.match_info["name"], request.match_info["key"]
    invocation_id = invocation_id_for(name, key, InvocationUuid.for_workflow_run(name, key))
    return await _answer(request, invocation_id)


async def _answer(request: web.Request, invocation_id: InvocationId) -> web.StreamResponse:
    deps = request.app[DEPS]
    if request.method != "GET":
        return error_response(405, "method not allowed")
    status = deps.read_status(invocation_id)
    if status is None:
        return error_response(404, "invocation not found")
    content_type = _output_content_type(deps, status)
    if status.kind is StatusKind.COMPLETED and status.result is not None:
        return result_response(status.result, invocation_id, content_type)
    if request.match_info["op"] == "output":
        return error_response(NOT_READY, "the invocation exists but has not completed yet")

    request_id, future = deps.pending.register()
    record = AttachInvocation(invocation_id, IngressSink(deps.node_name, request_id))
    try:
        await deps.appender.append(deps.appender.partition_of(invocation_id), record)
    except WalAppendError as exc:
        deps.pending.discard(request_id)
        return error_response(503, f"the engine could not durably attach ({exc}); retry later")
    try:
        result = await future
    except asyncio.CancelledError:
        deps.pending.discard(request_id)
        raise
    return result_response(result, invocation_id, content_type)


def _output_content_type(deps: IngressDeps, status: InvocationStatus) -> str:
    try:
        return deps.resolve(status.target.service, status.target.handler).output_content_type
    except (ServiceNotFound, HandlerNotFound):
        return "application/json"
