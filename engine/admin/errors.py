"""Admin API errors in Restate's shape, and reading request bodies with clear complaints.

Every error answer is ``{"message": ..., "restate_code": ...}`` (the OpenAPI's
``ErrorDescriptionResponse``); the message starts with ``[CODE]`` when there is a Restate
error code, as restate-server's messages do.

Status codes, chosen to match restate-server where it is specific:

====  =======================================================================
400   malformed JSON, an invalid field value (relative URI, bad id), an
      invalid or incompatible manifest (``META0012`` protocol versions,
      ``META0014`` bidirectional endpoint over HTTP/1.1)
404   unknown deployment, service, handler or route
405   method not allowed on a route
409   a registration that breaks the latest service revision (``META0006``)
413   request body too large
415   a body that is not ``application/json``
422   well-formed JSON of the wrong shape or type (missing ``uri``, ``"force": "yes"``)
501   ``DELETE /deployments/{id}`` without ``force=true`` (as in Restate)
502   discovery got no usable HTTP answer (``META0003``); restate-server says 500
504   discovery timed out (``META0003``); restate-server says 500
503   the metadata topic could not be written or read back
====  =======================================================================
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Final

from aiohttp import web

from engine.errors import EngineError
from engine.logs import get_logger
from engine.metadata.durations import DurationParseError, parse_duration
from engine.metadata.errors import (
    BadDiscoveryResponse,
    DiscoveryTimeout,
    EndpointUnreachable,
    IncompatibleEndpoint,
    InvalidManifest,
    InvalidRequest,
    MetadataError,
    MetadataUnavailable,
    NotFoundError,
    RegistrationConflict,
)

__all__ = [
    "AdminError",
    "check_headers",
    "error_middleware",
    "error_response",
    "optional_bool",
    "optional_duration",
    "optional_string",
    "optional_string_map",
    "read_json_object",
]

log = get_logger(__name__)

_STATUS_OF: Final[tuple[tuple[type[MetadataError], int], ...]] = (
    (NotFoundError, 404),
    (RegistrationConflict, 409),
    (InvalidRequest, 400),
    (InvalidManifest, 400),
    (IncompatibleEndpoint, 400),
    (DiscoveryTimeout, 504),
    (EndpointUnreachable, 502),
    (BadDiscoveryResponse, 502),
    (MetadataUnavailable, 503),
)


class AdminError(EngineError):
    """An error answer of the admin API: status, message, optional Restate code."""

    def __init__(self, status: int, message: str, restate_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.restate_code = restate_code


def error_response(
    status: int, message: str, restate_code: str | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON error answer in the ``ErrorDescriptionResponse`` shape."""
    text = f"[{restate_code}] {message}" if restate_code else message
    return web.json_response({"message": text, "restate_code": restate_code}, status=status, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the Restate error shape (and log the unexpected ones)."""
    try:
        return await handler(request)
    except AdminError as exc:
        return error_response(exc.status, exc.message, exc.restate_code)
    except MetadataError as exc:
        status = next((s for cls, s in _STATUS_OF if isinstance(exc, cls)), 500)
        # Refused registrations and changes are worth a line for operators, not an alarm.
        level = log.warning if status >= 500 else log.info
        level("admin request refused", method=request.method, path=request.path, status=status, error=str(exc))
        return error_response(status, str(exc), exc.restate_code)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(request, exc)
    except Exception as exc:
        log.exception("admin request crashed", method=request.method, path=request.path)
        return error_response(500, f"Internal server error: {exc}")


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    if exc.status == 404:
        message = f"{request.method} {request.path} is not an admin API resource; GET /openapi lists them"
    elif exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
        return error_response(405, message, headers={"Allow": allowed})
    elif exc.status == 413:
        message = f"the request body is too large ({exc.text or 'over the limit'})"
    else:
        message = exc.text or exc.reason
    return error_response(exc.status, message)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or an :class:`AdminError` saying what is wrong with it."""
    content_type = request.headers.get("content-type")
    if content_type is not None:
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise AdminError(
                415, f"expected a JSON body with content-type: application/json, got content-type {content_type!r}"
            )
    raw = await request.read()
    if not raw.strip():
        raise AdminError(400, "the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise AdminError(400, "the request body is not UTF-8 text; send a JSON object") from None
    except json.JSONDecodeError as exc:
        raise AdminError(
            400, f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(body, dict):
        raise AdminError(422, f"the request body must be a JSON object, got {_json_kind(body)}")
    return body


def optional_bool(body: Mapping[str, Any], key: str, default: bool | None = None) -> bool | None:
    """``body[key]`` as a bool; absent or null gives ``default``."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise AdminError(422, f"the request field '{key}' must be true or false, got {_json_kind(value)}")
    return value


def optional_string(body: Mapping[str, Any], key: str) -> str | None:
    """``body[key]`` as a string; absent or null gives ``None``."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise AdminError(422, f"the request field '{key}' must be a string, got {_json_kind(value)}")
    return value


def optional_string_map(body: Mapping[str, Any], key: str) -> dict[str, str]:
    """``body[key]`` as an object of strings; absent or null gives ``{}``."""
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise AdminError(
            422, f"the request field '{key}' must be an object of string values, e.g. {{\"name\": \"value\"}}"
        )
    return dict(value)


def optional_duration(body: Mapping[str, Any], key: str) -> timedelta | None:
    """``body[key]`` as a duration (``"1h 30m"``, ``"PT5H"``); absent or null gives ``None``."""
    text = optional_string(body, key)
    if text is None:
        return None
    try:
        return parse_duration(text)
    except DurationParseError as exc:
        raise AdminError(422, f"the request field '{key}' is invalid: {exc}") from None


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def check_headers(headers: Mapping[str, str], key: str) -> None:
    """Refuse header names and values that cannot go on the wire (a 400 naming the header)."""
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise AdminError(400, f"The request field '{key}' is invalid. Reason: {name!r} is not a valid header name")
        if any(c in value for c in "\r\n\0"):
            raise AdminError(
                400, f"The request field '{key}' is invalid. Reason: the value of {name!r} contains a line break"
            )


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return "an array" if isinstance(value, list) else "an object"
