"""Admin requests about a partition another engine process leads go to that process.

A process keeps current tables only for the WAL partitions it leads. Every process
advertises its admin URL and the partitions it leads in the metadata topic
(:mod:`engine.metadata.nodes`, written by :class:`Advertiser`), so any process can find
the leader of a partition in its metadata view and forward the request there: the same
method, path, query, body and content headers, plus ``x-logstrate-forwarded-by`` naming
the forwarding process. With an admin token configured the forwarded request carries this
process's own ``Authorization: Bearer`` (every process of a cluster is configured with the
same token; the caller's credentials are not relayed). A forwarded request is never forwarded again: a process that
does not lead the partition (the advert was a moment stale) answers as before, "not led
here". An unreachable leader is a 503 that names it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Final

import aiohttp
from aiohttp import web

from engine.config import Secret
from engine.logs import get_logger
from engine.metadata.errors import MetadataError
from engine.metadata.nodes import NodeAdvert
from engine.metadata.store import DeleteNode, MetadataStore, PutNode

__all__ = ["FORWARDED_HEADER", "Advertiser", "Forwarder"]

log = get_logger(__name__)

FORWARDED_HEADER: Final = "x-logstrate-forwarded-by"
_PASSED_HEADERS: Final = ("content-type", "accept")
_KEPT_RESPONSE_HEADERS: Final = ("content-type", "x-restate-id", "x-restate-error-source")
_TIMEOUT_S: Final = 30.0


class Forwarder:
    """Finds a partition's leader in the metadata view and relays requests to it."""

    def __init__(self, metadata: MetadataStore, instance: str, token: Secret | None = None) -> None:
        self._metadata = metadata
        self.instance = instance
        self._authorization = None if token is None else f"Bearer {token.get_secret_value()}"
        self._session: aiohttp.ClientSession | None = None

    def leader(self, partition: int) -> NodeAdvert | None:
        """The advertised leader of ``partition`` when it is another process."""
        node = self._metadata.view.partition_leader(partition)
        return None if node is None or node.instance == self.instance else node

    async def forward(
        self, request: web.Request, partition: int, path_qs: str | None = None, method: str | None = None
    ) -> web.Response | None:
        """``request`` answered by the leader of ``partition``; ``None`` when it is not to
        be forwarded (already forwarded once, no other leader advertised). ``path_qs`` and
        ``method`` (then without a body) ask the leader something else on the request's
        behalf, with its headers."""
        if FORWARDED_HEADER in request.headers:
            return None
        node = self.leader(partition)
        if node is None:
            return None
        url = node.admin_url.rstrip("/") + (request.path_qs if path_qs is None else path_qs)
        headers = {name: request.headers[name] for name in _PASSED_HEADERS if name in request.headers}
        headers[FORWARDED_HEADER] = self.instance
        if self._authorization is not None:
            headers["authorization"] = self._authorization
        body = b"" if method is not None else await request.read()
        try:
            async with self._client().request(method or request.method, url, data=body or None,
                                              headers=headers) as resp:
                content = await resp.read()
                kept = {name: resp.headers[name] for name in _KEPT_RESPONSE_HEADERS if name in resp.headers}
                return web.Response(status=resp.status, body=content, headers=kept)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.json_response(
                {"message": f"WAL partition {partition} is led by engine process {node.instance} at {node.admin_url}, "
                            f"which did not answer ({exc or type(exc).__name__}); retry"},
                status=503,
            )

    async def post(
        self, node: NodeAdvert, path: str, body: bytes, request: web.Request
    ) -> tuple[int, Mapping[str, str], bytes]:
        """``POST {node}{path}`` with ``body`` and ``request``'s content headers, marked as
        forwarded by this process (with the engine's admin token, when one is set): the
        status, headers and body of the answer.

        Raises:
            aiohttp.ClientError, TimeoutError: ``node`` did not answer.
        """
        headers = {name: request.headers[name] for name in _PASSED_HEADERS if name in request.headers}
        headers["content-type"] = "application/json"
        headers[FORWARDED_HEADER] = self.instance
        if self._authorization is not None:
            headers["authorization"] = self._authorization
        async with self._client().post(node.admin_url.rstrip("/") + path, data=body, headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_TIMEOUT_S))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Advertiser:
    """Keeps this process's advert in the metadata topic equal to what it leads.

    :meth:`update` may be called from any event-loop callback; one task writes the
    latest state, coalescing changes that come while a write is in flight. Nothing is
    written before :meth:`start` (leadership can begin before the admin API serves).
    """

    def __init__(self, metadata: MetadataStore, instance: str, admin_url: str) -> None:
        self._metadata = metadata
        self._instance = instance
        self._admin_url = admin_url
        self._wanted: dict[int, int] = {}
        self._written: dict[int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._stopped = False

    def start(self) -> None:
        """Write the advert (the admin API answers at ``admin_url`` from now on)."""
        self._started = True
        self.update(self._wanted)

    def update(self, leading: Mapping[int, int]) -> None:
        """This process now leads ``leading`` ({partition: epoch})."""
        self._wanted = dict(leading)
        if self._started and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while not self._stopped and self._written != self._wanted:
            wanted = dict(self._wanted)
            advert = NodeAdvert(self._instance, self._admin_url, wanted)
            try:
                await self._metadata.modify(lambda _view: (PutNode(advert), None))
            except MetadataError as exc:
                log.warning("could not advertise the partitions this process leads", error=str(exc))
                return
            self._written = wanted

    async def stop(self) -> None:
        """Withdraw the advert (a clean stop leads nothing)."""
        self._stopped = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if not self._started:
            return
        try:
            await asyncio.wait_for(self._metadata.modify(lambda _view: (DeleteNode(self._instance), None)), 5.0)
        except (MetadataError, TimeoutError) as exc:
            log.warning("could not withdraw this process's advert", error=str(exc))
