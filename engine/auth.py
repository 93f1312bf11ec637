"""Bearer-token authentication of the admin API and the ingress, and the protected mode.

Each API has its own optional token (``admin_token``, ``ingress_token`` in
:class:`engine.config.EngineConfig`). With a token set, every request must carry
``Authorization: Bearer <token>``, compared in constant time (:func:`hmac.compare_digest`
over the UTF-8 bytes); anything else is a 401 with ``WWW-Authenticate: Bearer`` and a JSON
body in the API's own error shape that says what to send. A few paths stay open (health
checks, the web UI's static files, which hold no data); they are listed where the apps
are built.

Protected mode (as Redis has it): without an admin token, the admin API may only listen on
loopback unless the operator says explicitly that it should be open
(``admin_allow_unauthenticated``). :func:`check_protected_mode` runs at start-up, before
anything else, and its error says how to fix it.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Collection
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from engine.config import EngineConfig, Secret
from engine.errors import StartupError

__all__ = ["BEARER_CHALLENGE", "ErrorBody", "bearer_middleware", "check_protected_mode", "is_loopback_host", "open_paths"]

BEARER_CHALLENGE: Final = "Bearer"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorBody = Callable[[int, str], web.Response]
"""Builds the API's error answer from (status, message)."""


def bearer_middleware(
    token: Secret,
    *,
    what: str,
    setting: str,
    error: ErrorBody,
    open_path: Callable[[str], bool] = lambda _path: False,
) -> Middleware:
    """An aiohttp middleware that lets through only requests bearing ``token``.

    ``what`` names the API in messages ("admin API"), ``setting`` the config key that
    holds the token (for the operator reading a complaint); ``open_path`` says which
    paths need no token."""
    expected = token.get_secret_value().encode("utf-8")

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if open_path(request.path):
            return await handler(request)
        header = request.headers.get("Authorization")
        if header is None:
            return _unauthorized(
                error, f"the {what} requires a bearer token: send the header 'Authorization: Bearer <token>' "
                f"with the token configured as {setting} on the engine (the restate CLI sends RESTATE_AUTH_TOKEN)")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return _unauthorized(error, f"the {what} accepts only 'Authorization: Bearer <token>' (got a "
                                        f"{scheme or 'blank'!r} authorization)")
        if not hmac.compare_digest(presented.strip().encode("utf-8", "surrogateescape"), expected):
            return _unauthorized(error, f"the token in 'Authorization: Bearer <token>' is not the one configured "
                                        f"as {setting} for the {what}; check the token you send")
        return await handler(request)

    return authenticate


def _unauthorized(error: ErrorBody, message: str) -> web.Response:
    response = error(401, message)
    response.headers["WWW-Authenticate"] = BEARER_CHALLENGE
    return response


def is_loopback_host(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address (``127.0.0.0/8``,
    ``::1``, ``localhost``). Wildcards (``0.0.0.0``, ``::``) and names that resolve to
    any other address are not."""
    literal = _ip_loopback(host)
    if literal is not None:
        return literal
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addresses = {str(info[4][0]) for info in infos}
    return bool(addresses) and all(_ip_loopback(a) for a in addresses)


def _ip_loopback(text: str) -> bool | None:
    """Whether an IP address literal is loopback; ``None`` when ``text`` is not one."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def check_protected_mode(cfg: EngineConfig, loopback: Callable[[str], bool] = is_loopback_host) -> None:
    """Refuse to serve an unauthenticated admin API beyond loopback (a :class:`StartupError`
    that names both ways out), unless ``admin_allow_unauthenticated`` is set."""
    if cfg.admin_token is not None or cfg.admin_allow_unauthenticated:
        return
    host, port = cfg.admin_address
    if loopback(host):
        return
    raise StartupError(
        f"protected mode: admin_bind {host}:{port} is reachable beyond loopback but no admin token is set, so "
        "anyone who can reach it could register deployments and run code through them. Either set a token "
        "(env LOGSTRATE_ADMIN_TOKEN, TOML admin_token, or --admin-token; clients then send "
        "'Authorization: Bearer <token>', the restate CLI via RESTATE_AUTH_TOKEN), or bind the admin API to "
        "loopback (--admin-bind 127.0.0.1:9070), or, if a firewall or proxy guards it, say so explicitly with "
        "--admin-allow-unauthenticated (env LOGSTRATE_ADMIN_ALLOW_UNAUTHENTICATED=true, TOML "
        "admin_allow_unauthenticated = true)"
    )


def open_paths(prefixes: Collection[str], exact: Collection[str]) -> Callable[[str], bool]:
    """A path predicate: ``path`` is in ``exact`` or starts with one of ``prefixes``."""
    exact_set = frozenset(exact)
    prefix_tuple = tuple(prefixes)
    return lambda path: path in exact_set or path.startswith(prefix_tuple)
