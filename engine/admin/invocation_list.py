"""``GET /invocations``: the invocations of every WAL partition, newest first (a logstrate
addition; restate-server answers this with SQL on ``/query``).

Filters: ``service``, ``handler``, ``key`` match exactly; ``status`` is one or more of
scheduled, inboxed, invoked, suspended, paused, completed (comma-separated);
``deployment`` the pinned deployment id; ``limit`` defaults to 100. With ``key``, only
the key's partition is scanned. ``fresh=true`` first waits until each partition scanned
here applied every record the WAL held at that moment (a record accepted a moment ago
is durable before it is applied). The partitions this process leads are scanned here;
each other partition's leader is asked for its own (:func:`ask_leaders`, through
:mod:`engine.admin.forwarding`, with the internal ``partitions=`` parameter, which
restricts a listing to those partitions), and the answers are merged newest first and
cut at ``limit``. Partitions no leader answered for are named in
``not_local_partitions``. Row shape: :func:`engine.admin.invocation_render.invocation_json`.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from engine.admin.errors import AdminError
from engine.admin.forwarding import FORWARDED_HEADER
from engine.admin.invocation_render import invocation_json
from engine.admin.state import FORWARDER, access_of
from engine.ids import InvocationId
from engine.logs import get_logger
from engine.storage.invocation_status import InvocationStatus, StatusKind

__all__ = ["DEFAULT_LIST_LIMIT", "MAX_LIST_LIMIT", "ask_leaders", "list_invocations"]

log = get_logger(__name__)

DEFAULT_LIST_LIMIT: Final = 100
MAX_LIST_LIMIT: Final = 10_000

LeaderAnswer = tuple[dict[str, Any], list[int]]
"""A leader's listing and the partitions it was asked for."""


async def list_invocations(request: web.Request) -> web.Response:
    """See the module docstring."""
    access = access_of(request)
    service = request.query.get("service")
    handler = request.query.get("handler")
    key = request.query.get("key")
    deployment = request.query.get("deployment")
    kinds = _query_statuses(request)
    limit = _query_limit(request)
    wanted = list(range(access.partition_count))
    if key is not None:
        # The key alone places an object or workflow instance (see engine.wal.partitioning).
        wanted = [access.partition_of_object(service or "", key)]
    only = _query_partitions(request)
    if only is not None:
        wanted = [p for p in wanted if p in only]
    local = [p for p in wanted if access.is_local(p)]
    not_local = [p for p in wanted if not access.is_local(p)]
    if request.query.get("fresh") == "true":
        await asyncio.gather(*(access.catch_up(p) for p in local))

    def matches(status: InvocationStatus) -> bool:
        target = status.target
        return (
            (kinds is None or status.kind in kinds)
            and (service is None or target.service == service)
            and (handler is None or target.handler == handler)
            and (key is None or target.key == key)
            and (deployment is None or str(status.deployment_id) == deployment)
        )

    def scan() -> tuple[list[dict[str, Any]], bool]:
        found: list[tuple[int, str, InvocationId, InvocationStatus]] = []
        for partition in local:
            rows = access.read_any(partition, lambda t: [(i, s) for i, s in t.status.scan() if matches(s)])
            found.extend((s.created_at_ms, str(i), i, s) for i, s in rows)
        newest = heapq.nlargest(limit + 1, found, key=lambda row: (row[0], row[1]))
        return [invocation_json(i, s) for _, _, i, s in newest[:limit]], len(newest) > limit

    (invocations, truncated), remote = await asyncio.gather(
        asyncio.to_thread(scan), ask_leaders(request, not_local, request.query)
    )
    unanswered = set(not_local)
    for answer, partitions in remote:
        invocations.extend(answer["invocations"])
        truncated = truncated or bool(answer["truncated"])
        unanswered.difference_update(partitions)
        unanswered.update(int(p) for p in answer["not_local_partitions"])
    if remote:
        invocations.sort(key=lambda row: (row["created_at"], row["id"]), reverse=True)
        truncated = truncated or len(invocations) > limit
        del invocations[limit:]
    missing = sorted(unanswered)
    body: dict[str, Any] = {"invocations": invocations, "truncated": truncated, "not_local_partitions": missing}
    if missing:
        body["note"] = (
            f"WAL partitions {missing} are not led by this engine process and no other process answered for "
            "them, so their invocations are not listed"
        )
    return web.json_response(body)


async def ask_leaders(request: web.Request, partitions: list[int], query: Mapping[str, str]) -> list[LeaderAnswer]:
    """``GET /invocations?{query}`` of each other process leading some of ``partitions``,
    restricted to those; leaders that do not answer are left out (their partitions then
    count as unanswered). Nothing is asked on a request that was forwarded already."""
    forwarder = request.app.get(FORWARDER)
    if forwarder is None or FORWARDED_HEADER in request.headers:
        return []
    by_leader: dict[str, list[int]] = {}
    for partition in partitions:
        node = forwarder.leader(partition)
        if node is not None:
            by_leader.setdefault(node.instance, []).append(partition)

    async def ask(asked: list[int]) -> LeaderAnswer | None:
        wanted = urlencode({**query, "partitions": ",".join(map(str, asked))})
        resp = await forwarder.forward(request, asked[0], f"{_invocations_path(request.path)}?{wanted}", "GET")
        if resp is None or resp.status != 200 or not isinstance(resp.body, bytes):
            log.warning("a partition leader did not list its invocations", partitions=asked,
                        status=None if resp is None else resp.status)
            return None
        return json.loads(resp.body), asked

    answers = await asyncio.gather(*(ask(asked) for asked in by_leader.values()))
    return [answer for answer in answers if answer is not None]


def _invocations_path(path: str) -> str:
    """The listing's path with the version prefix ``path`` was asked under (``/v3/...``)."""
    for prefix in ("/v2/", "/v3/"):
        if path.startswith(prefix):
            return prefix + "invocations"
    return "/invocations"


def _query_partitions(request: web.Request) -> set[int] | None:
    text = request.query.get("partitions")
    if text is None:
        return None
    try:
        return {int(p) for p in text.split(",") if p}
    except ValueError:
        raise AdminError(
            400, f"the query parameter 'partitions' must be partition numbers separated by commas, got {text!r}"
        ) from None


def _query_statuses(request: web.Request) -> frozenset[StatusKind] | None:
    text = request.query.get("status")
    if text is None:
        return None
    kinds = set()
    for part in (p.strip().lower() for p in text.split(",")):
        try:
            kinds.add(StatusKind(part))
        except ValueError:
            options = ", ".join(k.value for k in StatusKind)
            raise AdminError(
                400, f"unknown invocation status {part!r}; use one or more of {options}, separated by commas"
            ) from None
    return frozenset(kinds)


def _query_limit(request: web.Request) -> int:
    text = request.query.get("limit")
    if text is None:
        return DEFAULT_LIST_LIMIT
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise AdminError(400, f"the query parameter 'limit' must be an integer from 1 to {MAX_LIST_LIMIT}, got {text!r}")
    return limit
