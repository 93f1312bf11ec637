"""Serving an endpoint with aiohttp (no ASGI server needed).

``serve([svc, obj], port=9080)`` blocks and serves HTTP/1.1 in request/response mode;
``await start([svc], port=0)`` starts it inside a running event loop and returns a
:class:`RunningServer` (handy in tests and for embedding).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from sdk.endpoint import AsgiApp, Endpoint, Response
from sdk.service import ServiceDef

__all__ = ["RunningServer", "make_aiohttp_app", "serve", "start"]


async def _send(request: web.Request, response: Response) -> web.StreamResponse:
    if isinstance(response.body, bytes):
        return web.Response(status=response.status, body=response.body, headers=response.headers)
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    await stream.prepare(request)
    async for chunk in response.body:
        await stream.write(chunk)
    await stream.write_eof()
    return stream


def _endpoint(services: Iterable[ServiceDef] | Endpoint | AsgiApp) -> Endpoint:
    if isinstance(services, Endpoint):
        return services
    if isinstance(services, AsgiApp):
        return services.endpoint
    return Endpoint(services)


def make_aiohttp_app(services: Iterable[ServiceDef] | Endpoint | AsgiApp) -> web.Application:
    """An aiohttp application serving ``services`` (or the services of an endpoint/app)."""
    endpoint = _endpoint(services)

    async def discover(request: web.Request) -> web.StreamResponse:
        return await _send(request, endpoint.discover(request.headers.get("accept")))

    async def health(request: web.Request) -> web.StreamResponse:
        return web.Response(text="OK")

    async def invoke(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        response = endpoint.invoke(
            request.match_info["service"], request.match_info["handler"],
            request.headers.get("content-type"), headers, body,
        )
        return await _send(request, response)

    application = web.Application(client_max_size=64 * 1024 * 1024)
    application.router.add_get("/discover", discover)
    application.router.add_get("/health", health)
    application.router.add_post("/invoke/{service}/{handler}", invoke)
    return application


@dataclass
class RunningServer:
    """A started aiohttp endpoint; :meth:`stop` it when done."""

    runner: web.AppRunner
    port: int

    @property
    def url(self) -> str:
        """The URI to register with the runtime."""
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop serving."""
        await self.runner.cleanup()


async def start(
    services: Iterable[ServiceDef] | Endpoint | AsgiApp, host: str = "127.0.0.1", port: int = 0
) -> RunningServer:
    """Start serving ``services`` in the running event loop (``port=0``: any free port)."""
    runner = web.AppRunner(make_aiohttp_app(services), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    addresses = runner.addresses
    bound = int(addresses[0][1]) if addresses else port
    return RunningServer(runner, bound)


def serve(
    services: Iterable[ServiceDef] | Endpoint | AsgiApp, host: str = "0.0.0.0", port: int = 9080
) -> None:
    """Serve ``services`` until interrupted (blocking)."""

    async def main() -> None:
        server = await start(services, host, port)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    asyncio.run(main())
