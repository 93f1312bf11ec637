"""The Restate-compatible admin HTTP API (default :9070).

Routes grow with the engine; this module wires them into one aiohttp application.
"""

from __future__ import annotations

from aiohttp import web

from engine.version import __version__

# The admin API versions whose request/response shapes this server follows (the restate
# CLI checks this range before talking to a server).
MIN_ADMIN_API_VERSION = 1
MAX_ADMIN_API_VERSION = 3


def create_admin_app(*, ingress_url: str) -> web.Application:
    """The admin application; ``ingress_url`` is advertised by ``GET /version``."""
    app = web.Application()
    app["ingress_url"] = ingress_url
    app.router.add_get("/health", _health)
    app.router.add_get("/version", _version)
    return app


async def _health(request: web.Request) -> web.Response:
    # The process only serves HTTP once Kafka, topics and storage are ready.
    return web.Response(status=200)


async def _version(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "version": __version__,
            "min_admin_api_version": MIN_ADMIN_API_VERSION,
            "max_admin_api_version": MAX_ADMIN_API_VERSION,
            "ingress_endpoint": request.app["ingress_url"],
            "features": {},
        }
    )
