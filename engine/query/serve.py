"""The ``POST /query`` handler behind :mod:`engine.query.http`: runs the SQL with
DataFusion over Arrow tables of the partition rows. Imported on the first query, so an
engine that is never asked one does not load pyarrow and DataFusion (their memory and
threads) at start-up.
"""

from __future__ import annotations

import asyncio
import json

import pyarrow as pa
from aiohttp import web

from engine.admin.state import METADATA, PARTITIONS
from engine.query.catalog import PARTITIONED_TABLES
from engine.query.engine import QueryResult, ScanPlan, execute, plan, rows_of
from engine.query.errors import QuerySyntaxError
from engine.query.http import ARROW_STREAM, MISSING_HEADER
from engine.query.spec import to_table

__all__ = ["query"]


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"message": message}).encode(), content_type="application/json")


async def query(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(422, 'the request body must be JSON: {"query": "SELECT ..."}')
    sql = body.get("query") if isinstance(body, dict) else None
    if not isinstance(sql, str):
        return _error(422, 'the request body must name the SQL to run: {"query": "SELECT ..."}')
    try:
        result, missing = await asyncio.to_thread(_run, request.app, sql)
    except QuerySyntaxError as exc:
        return _error(400, f"Datafusion error: {exc}")
    headers = {MISSING_HEADER: ",".join(map(str, missing))} if missing else {}
    if request.headers.get("accept") == "application/json":
        from engine.query.json_rows import rows_json

        return web.Response(body=rows_json(result.batches), headers={**headers, "Content-Type": "application/json"})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, result.schema) as writer:
        for batch in result.batches:
            writer.write_batch(batch)
    return web.Response(body=sink.getvalue().to_pybytes(), headers={**headers, "Content-Type": ARROW_STREAM})


def _run(app: web.Application, sql: str) -> tuple[QueryResult, list[int]]:
    scans: list[ScanPlan] = plan(sql)
    access = app.get(PARTITIONS)
    loaded: dict[str, list[pa.Table]] = {}
    missing: set[int] = set()
    for scan in scans:
        spec = PARTITIONED_TABLES[scan.table]
        if access is None:
            continue
        count = access.partition_count
        for partition in scan.partitions(count):
            if not access.is_local(partition):
                missing.add(partition)
                continue
            rows = access.read_any(partition, lambda t: rows_of(spec, t, scan.constraints, count))
            loaded.setdefault(scan.table, []).append(to_table(spec.schema, rows))
    return execute(sql, loaded, app[METADATA].view), sorted(missing)
