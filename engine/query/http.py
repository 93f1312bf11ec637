"""``POST /query`` on the admin API: ``{"query": "<SQL>"}`` answered as
``application/json`` (``{"rows": [...]}``, when the request accepts exactly that, as the
restate CLI asks for it) or as an Arrow IPC stream (``application/vnd.apache.arrow.stream``,
otherwise, as ``restate sql`` reads it). SQL DataFusion refuses is a 400 with its
message. Rows come from every partition: this process's own and, through the internal
``POST /internal/query/scan``, those other engine processes lead
(:mod:`engine.query.fanout`); partitions no process answered for are named in the
``x-logstrate-missing-partitions`` header.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Final

from aiohttp import web

__all__ = ["ARROW_STREAM", "MISSING_HEADER", "SCAN_PATH", "add_routes", "query", "scan"]

ARROW_STREAM: Final = "application/vnd.apache.arrow.stream"
MISSING_HEADER: Final = "x-logstrate-missing-partitions"
SCAN_PATH: Final = "/internal/query/scan"
_SERVE: Final = "engine.query.serve"
_loaded: ModuleType | None = None


async def _serve() -> ModuleType:
    # pyarrow and DataFusion load with the first query, not at engine start-up: they
    # cost ~70 MiB of RSS and threads an engine that is never queried has no use for.
    # The import (about a second) runs off the event loop, which invocations share.
    # Not ``sys.modules``: it holds the module from the start of its import, so a second
    # query arriving meanwhile (the CLI sends several at once) would find it half
    # initialised. A second import in a thread waits for the first one to finish.
    global _loaded
    if _loaded is None:
        _loaded = await asyncio.to_thread(importlib.import_module, _SERVE)
    return _loaded


async def query(request: web.Request) -> web.Response:
    handler: Callable[[web.Request], Awaitable[web.Response]] = (await _serve()).query
    return await handler(request)


async def scan(request: web.Request) -> web.Response:
    """Another process's query asks for rows of partitions led here (internal)."""
    handler: Callable[[web.Request], Awaitable[web.Response]] = (await _serve()).scan
    return await handler(request)


def add_routes(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_post(f"{prefix}/query", query)
    if prefix == "":
        router.add_post(SCAN_PATH, scan)
