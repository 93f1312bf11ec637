"""The rows a query needs, from every partition: this process's and the other leaders'.

A process applies only the WAL partitions the consumer group assigns it, so it holds no
replica of the others (docs/ARCHITECTURE.md, "Admin: invocations and state"). For each
scanned table (:class:`~engine.query.engine.ScanPlan`) the partitions its constraints
allow are read here when this process leads them; the rest are asked of their leaders,
found in the node adverts of the metadata view (:mod:`engine.admin.forwarding`): one
``POST /internal/query/scan`` per table and leader, all at once, answered as an Arrow IPC
stream of that table's rows for the partitions the leader really leads (named in
``x-logstrate-scanned-partitions``; an advert a moment stale answers for fewer). The
query then runs over the union. Partitions nobody answered for are returned as missing
(the ``x-logstrate-missing-partitions`` header of the answer).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, Final

import aiohttp
import pyarrow as pa
from aiohttp import web

from engine.admin.forwarding import FORWARDED_HEADER, Forwarder
from engine.admin.partitions import PartitionAccess
from engine.admin.state import FORWARDER, METADATA, PARTITIONS
from engine.logs import get_logger
from engine.metadata.nodes import NodeAdvert
from engine.metadata.view import MetadataView
from engine.query.catalog import PARTITIONED_TABLES
from engine.query.engine import ScanPlan, rows_of
from engine.query.http import ARROW_STREAM, SCAN_PATH
from engine.query.pushdown import Constraints
from engine.query.spec import to_table

__all__ = ["SCANNED_HEADER", "SCAN_PATH", "load", "scan"]

log = get_logger(__name__)

SCANNED_HEADER: Final = "x-logstrate-scanned-partitions"

Loaded = dict[str, list[pa.Table]]


def _read_local(access: PartitionAccess, jobs: Sequence[tuple[str, Constraints, Sequence[int]]],
                view: MetadataView) -> Loaded:
    """The rows of ``jobs`` ({table, constraints, partitions}) from the local tables."""
    count = access.partition_count
    loaded: Loaded = {}
    for table, constraints, partitions in jobs:
        spec = PARTITIONED_TABLES[table]
        for partition in partitions:
            rows = access.read_any(partition, lambda t: rows_of(spec, t, constraints, count, view))
            if rows:
                loaded.setdefault(table, []).append(to_table(spec.schema, rows))
    return loaded


async def load(request: web.Request, scans: Sequence[ScanPlan]) -> tuple[Loaded, list[int]]:
    """The rows of every partition ``scans`` need, and the partitions no one answered for."""
    access = request.app.get(PARTITIONS)
    if access is None:
        return {}, []
    forwarder = request.app.get(FORWARDER)
    if FORWARDED_HEADER in request.headers:
        forwarder = None  # a query is answered where it was asked; nothing goes round
    count = access.partition_count
    local: list[tuple[str, Constraints, Sequence[int]]] = []
    remote: list[tuple[ScanPlan, NodeAdvert, list[int]]] = []
    missing: set[int] = set()
    for plan in scans:
        here: list[int] = []
        elsewhere: dict[str, tuple[NodeAdvert, list[int]]] = {}
        for partition in plan.partitions(count):
            if access.is_local(partition):
                here.append(partition)
                continue
            node = None if forwarder is None else forwarder.leader(partition)
            if node is None:
                missing.add(partition)
            else:
                elsewhere.setdefault(node.instance, (node, []))[1].append(partition)
        if here:
            local.append((plan.table, plan.constraints, here))
        remote.extend((plan, node, partitions) for node, partitions in elsewhere.values())

    local_task = asyncio.to_thread(_read_local, access, local, request.app[METADATA].view)
    if not remote or forwarder is None:
        return await local_task, sorted(missing)
    answers = await asyncio.gather(local_task, *(_ask(forwarder, request, *job) for job in remote))
    loaded: Loaded = answers[0]
    for (plan, _node, asked), (table, answered) in zip(remote, answers[1:], strict=True):
        if table is not None and table.num_rows:
            loaded.setdefault(plan.table, []).append(table)
        missing.update(set(asked) - answered)
    return loaded, sorted(missing)


async def _ask(
    forwarder: Forwarder, request: web.Request, plan: ScanPlan, node: NodeAdvert, partitions: list[int]
) -> tuple[pa.Table | None, set[int]]:
    """``plan``'s rows of ``partitions`` from their leader ``node``, and the partitions it answered for."""
    body = json.dumps({"table": plan.table, "constraints": plan.constraints.to_json(), "partitions": partitions})
    try:
        status, headers, content = await forwarder.post(node, SCAN_PATH, body.encode(), request)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("a partition leader did not answer a query scan", node=node.instance, partitions=partitions,
                    error=str(exc) or type(exc).__name__)
        return None, set()
    if status != 200:
        log.warning("a partition leader refused a query scan", node=node.instance, partitions=partitions,
                    status=status, body=content[:200].decode(errors="replace"))
        return None, set()
    answered = {int(p) for p in headers.get(SCANNED_HEADER, "").split(",") if p}
    schema = PARTITIONED_TABLES[plan.table].schema
    table = await asyncio.to_thread(lambda: pa.ipc.open_stream(content).read_all())
    if not table.schema.equals(schema):
        table = table.cast(schema)  # an engine of another version: same columns, or the cast says which differ
    return table, answered


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"message": message}).encode(), content_type="application/json")


async def scan(request: web.Request) -> web.Response:
    """``POST /internal/query/scan``: ``{"table", "constraints", "partitions"}`` read from the
    partitions this process leads among those asked, as an Arrow IPC stream."""
    try:
        body: Any = await request.json()
        table = body["table"]
        constraints = Constraints.from_json(body["constraints"])
        partitions = [int(p) for p in body["partitions"]]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return _error(400, 'the body must be {"table": <system table>, "constraints": {...}, "partitions": [...]}')
    spec = PARTITIONED_TABLES.get(table) if isinstance(table, str) else None
    if spec is None:
        return _error(400, f"{table!r} is not a partitioned system table; one of {sorted(PARTITIONED_TABLES)}")
    access = request.app.get(PARTITIONS)
    if access is None:
        return _error(503, "this admin API runs without WAL partitions")
    here = [p for p in partitions if access.is_local(p)]
    loaded = await asyncio.to_thread(_read_local, access, [(table, constraints, here)], request.app[METADATA].view)

    def encode() -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, spec.schema) as writer:
            for part in loaded.get(table, []):
                writer.write_table(part)
        return bytes(sink.getvalue().to_pybytes())

    content = await asyncio.to_thread(encode)
    return web.Response(body=content, headers={"Content-Type": ARROW_STREAM, SCANNED_HEADER: ",".join(map(str, here))})
