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

from engine.admin.state import METADATA
from engine.query.callers import fill_callers, needs_callers
from engine.query.engine import execute, plan
from engine.query.errors import QuerySyntaxError
from engine.query.fanout import load, scan
from engine.query.http import ARROW_STREAM, MISSING_HEADER

__all__ = ["query", "scan"]


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
        scans = await asyncio.to_thread(plan, sql)
        loaded, missing = await load(request, scans)
        if needs_callers(sql):
            await fill_callers(loaded, lambda more: load(request, more))
        result = await asyncio.to_thread(execute, sql, loaded, request.app[METADATA].view)
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

