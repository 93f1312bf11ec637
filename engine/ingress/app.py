"""The Restate-compatible ingress HTTP API (default :8080)."""

from __future__ import annotations

from aiohttp import web


def create_ingress_app() -> web.Application:
    """The ingress application."""
    app = web.Application()
    app.router.add_get("/restate/health", _health)
    return app


async def _health(request: web.Request) -> web.Response:
    return web.json_response({})
