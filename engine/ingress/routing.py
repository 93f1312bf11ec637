"""Parsing ingress paths into invocation targets, with Restate's error shapes.

``/{Service}/{handler}``, ``/{Object}/{key}/{handler}`` and ``/{Workflow}/{id}/{handler}``,
each optionally followed by ``/send``. Which form applies depends on the service's kind,
so the path is parsed against the registered service, as Restate does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import unquote

from engine.wal.records import CallTarget, HandlerKind, ServiceKind


@dataclass(frozen=True, slots=True)
class IngressError(Exception):
    """An ingress request refused before anything was written; becomes a JSON error reply."""

    status: int
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    """What ingress needs to know about a registered handler."""

    service: str
    service_kind: ServiceKind
    handler: str
    handler_kind: HandlerKind | None
    public: bool = True
    input_content_type: str | None = "application/json"
    """Required request content type; None accepts anything (including no body)."""
    output_content_type: str = "application/json"
    target_info: CallTarget | None = None
    """The handler's kinds and retention settings for the ``Invoke`` (``None``: defaults)."""


class ServiceNotFound(Exception):
    """Raised by a resolver when no service of that name is registered."""


class HandlerNotFound(Exception):
    """Raised by a resolver when the service exists but the handler does not."""


Resolver = Callable[[str, str], HandlerInfo]
"""Looks up (service, handler); raises ServiceNotFound / HandlerNotFound."""

ServiceKindLookup = Callable[[str], ServiceKind | None]
"""The kind of a registered service, or None when unknown."""


@dataclass(frozen=True, slots=True)
class IngressTarget:
    """A parsed ingress request path."""

    handler: HandlerInfo
    key: str | None
    send: bool


_BAD_PATH = "bad path, expected either /:service-name/:handler or /:object-name/:object-key/:handler"


def parse_path(path: str, service_kind: ServiceKindLookup, resolve: Resolver) -> IngressTarget:
    """Parse ``path`` (already without query) into a target, or raise :class:`IngressError`."""
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    send = len(parts) >= 1 and parts[-1] == "send" and len(parts) in (3, 4)
    if send:
        parts = parts[:-1]
    if not parts:
        raise IngressError(404, "not found")
    service = parts[0]
    kind = service_kind(service)
    if kind is None:
        raise IngressError(404, f"service '{service}' not found, make sure to register the service before calling it.")
    keyed = kind in (ServiceKind.VIRTUAL_OBJECT, ServiceKind.WORKFLOW)
    if (keyed and len(parts) != 3) or (not keyed and len(parts) != 2):
        raise IngressError(400, _BAD_PATH)
    key = parts[1] if keyed else None
    handler_name = parts[-1]
    try:
        info = resolve(service, handler_name)
    except ServiceNotFound:
        raise IngressError(404, f"service '{service}' not found, make sure to register the service before calling it.") from None
    except HandlerNotFound:
        raise IngressError(
            404,
            f"the service '{service}' exists, but the handler '{handler_name}' was not found, "
            "check that the handler exists in the latest registered service version.",
        ) from None
    if not info.public:
        raise IngressError(400, f"the handler '{service}/{handler_name}' is private; it can only be called from other handlers")
    return IngressTarget(info, key, send)


_FRIENDLY_UNITS = {
    "ms": 0.001, "msec": 0.001, "millis": 0.001, "milliseconds": 0.001, "millisecond": 0.001,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip
_FRIENDLY = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_ISO = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_delay(text: str) -> timedelta:
    """Parse ``?delay=``: ISO 8601 (``PT1.5S``) or friendly (``10s``, ``1h 30m``, ``500ms``)."""
    try:
        return _parse_delay(text)
    except OverflowError:
        raise IngressError(
            400, f"delay query parameter {text!r} is too long: a send can be delayed until 9999-12-31 at the latest"
        ) from None


def _parse_delay(text: str) -> timedelta:
    raw = text.strip()
    iso = _ISO.match(raw.upper())
    if iso and raw.upper() not in ("P", "PT"):
        parts = {k: float(v) for k, v in iso.groupdict().items() if v}
        return timedelta(days=parts.get("d", 0), hours=parts.get("h", 0), minutes=parts.get("m", 0),
                         seconds=parts.get("s", 0))
    lowered = raw.lower()
    matches = list(_FRIENDLY.finditer(lowered))
    if matches and "".join(m.group(0) for m in matches).replace(" ", "") == lowered.replace(" ", ""):
        total = 0.0
        for m in matches:
            unit = _FRIENDLY_UNITS.get(m.group(2))
            if unit is None:
                break
            total += float(m.group(1)) * unit
        else:
            return timedelta(seconds=total)
    raise IngressError(
        400,
        f"bad delay query parameter {text!r}: use an ISO 8601 duration (PT10S) or a friendly one (10s, 1h 30m, 500ms)",
    )
