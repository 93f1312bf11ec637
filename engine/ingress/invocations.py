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

Invocations of **private** handlers (``ingress_private``, or ``public: false``) are as
closed to these routes as to calls: 400, whether the path names the handler (idempotency
key, workflow) or only the id (derived ids can be computed by anyone who knows the key).
The check uses the handler's current setting, from the status row when this process has
it, else from the path.

A completed or running invocation in this process's LMDB copy of its partition is
answered from there. Anything else (a partition another engine process leads, or a
``/send`` whose ``Invoke`` is durable but not applied yet) is asked through the log:
``AttachInvocation`` or ``GetInvocationOutput`` with this request as the sink, appended
after that ``Invoke`` in the partition, answered by its leader (through the responses
topic when that is another process) with the result, "not ready" or 404.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from engine.ids import IdParseError, InvocationId, InvocationUuid
from engine.ingress import durable
from engine.ingress.deps import DEPS, NOT_READY, IngressDeps, error_response, result_response
from engine.ingress.routing import HandlerNotFound, ServiceNotFound
from engine.logs import get_logger
from engine.partition.state_machine.attach import NOT_FOUND
from engine.storage.invocation_status import StatusKind
from engine.wal.partitioning import invocation_id_for
from engine.wal.records import AttachInvocation, GetInvocationOutput, IngressSink

__all__ = ["add_routes"]

log = get_logger(__name__)

OUTPUT_NOT_RETAINED = (
    "invocation not found: it completed, but its output was not retained. To attach to an invocation "
    "or read its output after it completed, send it with an idempotency key (its output is kept for "
    "the idempotency retention) or make it a workflow"
)
"""404 for a completed invocation whose result was not kept (restate-server: "invocation not found")."""


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
        refused = _refuse_private(request.app[DEPS], service, handler)
        if refused is not None:
            return refused
        uuid = InvocationUuid.for_idempotent_request(service, key, handler, idempotency_key)
        invocation_id = invocation_id_for(service, key, uuid)
        return await _answer(request, invocation_id, (service, handler))
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
    run = request.app[DEPS].workflow_handler(name)
    return await _answer(request, invocation_id, None if run is None else (name, run))


async def _answer(
    request: web.Request, invocation_id: InvocationId, target: tuple[str, str] | None = None
) -> web.StreamResponse:
    """Answer ``attach``/``output``; ``target`` (service, handler) when the path names it."""
    deps = request.app[DEPS]
    if request.method != "GET":
        return error_response(405, "method not allowed")
    wait = request.match_info["op"] == "attach"
    status = deps.read_status(invocation_id)
    checked = (status.target.service, status.target.handler) if status is not None else target
    if checked is not None:
        refused = _refuse_private(deps, *checked)
        if refused is not None:
            return refused
    if status is not None:
        content_type = _output_content_type(deps, (status.target.service, status.target.handler))
        if status.kind is StatusKind.COMPLETED and status.result is not None:
            return result_response(status.result, invocation_id, content_type)
        if status.kind is StatusKind.COMPLETED:
            # Nothing would ever answer an attach: restate-server has no status left then (404).
            return error_response(404, OUTPUT_NOT_RETAINED, invocation_id=str(invocation_id))
        if not wait:
            return error_response(NOT_READY, "the invocation exists but has not completed yet")
    else:
        # Not in this process's tables: its partition is led by another process, or its
        # Invoke (a /send a moment ago) is not applied yet. Ask the partition itself:
        # the record lands after that Invoke in the log, and the leader answers, here
        # or through the responses topic, with the result, "not ready" or 404.
        content_type = _output_content_type(deps, target)

    refused = durable.refuse_if_down(deps, "request")
    if refused is not None:
        return refused
    request_id, future = deps.pending.register()
    sink = IngressSink(deps.node_name, request_id)
    record = AttachInvocation(invocation_id, sink) if wait else GetInvocationOutput(invocation_id, sink)
    try:
        refused = await durable.await_durable(
            deps, durable.submit(deps, deps.appender.partition_of(invocation_id), record), "request"
        )
    except asyncio.CancelledError:
        deps.pending.discard(request_id)
        raise
    if refused is not None:
        # Safe to retry either way: attach and output change nothing.
        deps.pending.discard(request_id)
        return refused
    try:
        result = await future
    except asyncio.CancelledError:
        deps.pending.discard(request_id)
        raise
    if result == NOT_FOUND:
        return error_response(404, NOT_FOUND.message)  # the ingress's answer, as restate-server's
    return result_response(result, invocation_id, content_type)


def _refuse_private(deps: IngressDeps, service: str, handler: str) -> web.Response | None:
    """The 400 for attach/output of a private handler's invocation, else ``None``."""
    try:
        info = deps.resolve(service, handler)
    except (ServiceNotFound, HandlerNotFound):
        return None  # unknown now: the lookup answers (404) as for any unknown invocation
    if info.public:
        return None
    return error_response(
        400,
        f"the handler '{service}/{handler}' is private; its invocations can only be attached to or read "
        "from other handlers (make it public with PATCH /services/{name} to reach it from the ingress)",
    )


def _output_content_type(deps: IngressDeps, target: tuple[str, str] | None) -> str:
    if target is None:
        return "application/json"
    try:
        return deps.resolve(*target).output_content_type
    except (ServiceNotFound, HandlerNotFound):
        return "application/json"
