"""``POST /restate/awakeables/{id}/resolve|reject``: complete an awakeable from outside.

The awakeable id names the waiting invocation and its signal index; the route appends a
``Notify`` of that signal to the invocation's WAL partition and answers 202 once it is
durable (restate-server answers 202 with an empty body too). ``resolve`` passes the body
as the value, ``reject`` the body text as the failure message. Completing the same
awakeable twice is harmless: the second notification is a duplicate and is dropped.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from engine.ids import AwakeableId, AwakeableIdKind, IdParseError
from engine.ingress import durable
from engine.ingress.deps import DEPS, error_response
from engine.logs import get_logger
from engine.wal.records import Failure, NotificationResult, Notify, SignalIndex, Value

__all__ = ["REJECTED_CODE", "add_routes"]

log = get_logger(__name__)

REJECTED_CODE: Final = 500
"""The failure code a rejected awakeable carries (the SDKs' default for a rejection)."""


def add_routes(app: web.Application) -> None:
    """Register the route (before the catch-all handler route)."""
    app.router.add_route("*", "/restate/awakeables/{id}/{op:resolve|reject}", _complete)


async def _complete(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    if request.method != "POST":
        return error_response(405, "method not allowed; complete awakeables with POST")
    text = request.match_info["id"]
    try:
        awakeable = AwakeableId.parse(text)
    except IdParseError as exc:
        return error_response(400, f"bad awakeable id '{text}': {exc}")
    if awakeable.kind is not AwakeableIdKind.SIGNAL:
        return error_response(
            400, f"bad awakeable id '{text}': ids of service protocol v1-v3 are not supported"
        )
    body = await request.read()
    result: NotificationResult
    if request.match_info["op"] == "resolve":
        result = Value(body)
    else:
        result = Failure(REJECTED_CODE, body.decode("utf-8", errors="replace"))
    target = awakeable.invocation_id
    record = Notify(target, SignalIndex(awakeable.index), result)
    refused = durable.refuse_if_down(deps, "awakeable completion")
    if refused is None:
        # A retry after an unknown outcome is harmless: an awakeable completes once.
        refused = await durable.await_durable(
            deps, durable.submit(deps, deps.appender.partition_of(target), record), "awakeable completion"
        )
    if refused is not None:
        return refused
    log.debug("awakeable completed", invocation_id=str(target), op=request.match_info["op"])
    return web.Response(status=202)
