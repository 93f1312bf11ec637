"""``/ui``: the web UI, static HTML/CSS/ES modules shipped as package data in ``engine/admin/ui/``.

The UI is a client of the admin API and ``POST /query`` on the same origin, nothing else,
so it needs no build step and no internet: the files are read once from the package when
the app is built and served from memory. Every answer carries a Content-Security-Policy
that allows only this origin's scripts, styles and requests (no inline code, no framing),
and an ETag with ``Cache-Control: no-cache``: file names carry no content hash, so the
browser revalidates each time and a new engine version is picked up at once, while an
unchanged file costs a 304 only.

The files themselves hold no secrets and are served without the admin token; the UI
sends the token the user enters with each API request (``Authorization: Bearer``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from typing import Final

from aiohttp import web

from engine.admin.errors import AdminError

__all__ = ["CONTENT_SECURITY_POLICY", "UI_ASSETS", "Asset", "add_routes", "load_assets"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file of the UI."""

    body: bytes
    content_type: str
    etag: str


UI_ASSETS = web.AppKey("ui_assets", dict[str, Asset])
"""The UI's files by path below ``/ui/`` (``index.html``, ``js/main.js``, ...)."""


def load_assets(root: Traversable | None = None) -> dict[str, Asset]:
    """Every file below ``root`` (default: the package's ``ui`` folder) with a known type."""
    base = root if root is not None else resources.files("engine.admin").joinpath("ui")
    assets: dict[str, Asset] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for item in folder.iterdir():
            if item.is_dir():
                walk(item, f"{prefix}{item.name}/")
                continue
            suffix = item.name[item.name.rfind(".") :] if "." in item.name else ""
            content_type = _CONTENT_TYPES.get(suffix)
            if content_type is None:
                continue
            body = item.read_bytes()
            assets[f"{prefix}{item.name}"] = Asset(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:20]}"')

    walk(base, "")
    return assets


def add_routes(app: web.Application) -> None:
    """Serve the UI at ``/ui`` (redirects to ``/ui/``) and its files below ``/ui/``."""
    app[UI_ASSETS] = load_assets()
    app.router.add_get("/ui", _redirect)
    app.router.add_get("/ui/", _file)
    app.router.add_get("/ui/{path:.+}", _file)


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/ui/")


async def _file(request: web.Request) -> web.Response:
    path = request.match_info.get("path", "index.html")
    asset = request.app[UI_ASSETS].get(path)
    if asset is None:
        raise AdminError(404, f"the web UI has no file {path!r}; open /ui/")
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
        "ETag": asset.etag,
    }
    if asset.etag in (t.strip() for t in request.headers.get("If-None-Match", "").split(",")):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})
