"""The service endpoint: discovery and invocations, as an ASGI app.

``app([svc, obj, wf])`` builds an ASGI application for hypercorn (HTTP/1.1,
request/response mode) or uvicorn::

    app = sdk.app([greeter, counter])        # hypercorn mymodule:app --bind 0.0.0.0:9080

Routes (an optional path prefix before them is allowed):

* ``GET /discover`` — the endpoint manifest (:mod:`sdk.discovery`);
* ``POST /invoke/{service}/{handler}`` — one attempt of an invocation, protocol v5-7
  negotiated by ``content-type: application/vnd.restate.invocation.vN`` (415 otherwise);
* ``GET /health`` — 200 once serving.

The invocation request body (StartMessage + replayed journal) is read whole, then the
answer frames are streamed back as the handler produces them, so proposals of finished
``ctx.run`` steps reach the runtime before the attempt ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from restate_protocol import FrameDecoder, ProtocolError, parse_content_type, pb
from restate_protocol.versions import content_type as invocation_content_type
from sdk.context import context_class
from sdk.discovery import build_manifest, manifest_content_type, negotiate_manifest_version
from sdk.errors import HandlerDefinitionError, InvocationAbort
from sdk.invocation import Invocation
from sdk.service import HandlerDef, ServiceDef
from sdk.state_machine import Closed, StateMachine
from sdk.version import SDK_IDENTITY

__all__ = ["Endpoint", "Response", "app"]

log = logging.getLogger("sdk.endpoint")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class Response:
    """A transport-neutral answer: status, headers and a body (bytes or a stream)."""

    status: int
    headers: dict[str, str]
    body: bytes | AsyncIterator[bytes]


def _text(status: int, message: str) -> Response:
    return Response(status, {"content-type": "text/plain; charset=utf-8"}, message.encode())


class Endpoint:
    """The services of one endpoint and the protocol logic serving them.

    Raises:
        HandlerDefinitionError: two services share a name, or a workflow lacks a main
            handler.
    """

    def __init__(self, services: Iterable[ServiceDef]) -> None:
        self.services: dict[str, ServiceDef] = {}
        for service in services:
            if service.name in self.services:
                raise HandlerDefinitionError(f"two services are named {service.name!r}")
            if service.kind == "WORKFLOW" and not any(
                h.kind == "WORKFLOW" for h in service.handlers.values()
            ):
                raise HandlerDefinitionError(f"workflow {service.name} has no @main() handler")
            self.services[service.name] = service

    # -- discovery ----------------------------------------------------------------

    def discover(self, accept: str | None) -> Response:
        """Answer ``GET /discover`` for an ``accept`` header."""
        version = negotiate_manifest_version(accept)
        if version is None:
            return _text(415, f"unsupported manifest version(s) in accept: {accept!r}; "
                              "this endpoint writes endpointmanifest v1 to v4")
        body = json.dumps(build_manifest(self.services.values(), version)).encode()
        return Response(
            200,
            {"content-type": manifest_content_type(version), "x-restate-server": SDK_IDENTITY},
            body,
        )

    # -- invocations --------------------------------------------------------------

    def find(self, service: str, handler: str) -> HandlerDef | None:
        """The handler definition, if this endpoint serves it."""
        found = self.services.get(service)
        return None if found is None else found.handlers.get(handler)

    def invoke(
        self, service: str, handler: str, content_type: str | None, headers: dict[str, str],
        body: bytes,
    ) -> Response:
        """Answer ``POST /invoke/{service}/{handler}`` with the whole request body."""
        definition = self.find(service, handler)
        if definition is None:
            return _text(404, f"this endpoint does not serve {service}/{handler}")
        try:
            version = parse_content_type(content_type or "")
        except ProtocolError as exc:
            return _text(415, str(exc))
        response_headers = {
            "content-type": invocation_content_type(version),
            "x-restate-server": SDK_IDENTITY,
        }
        try:
            decoder = FrameDecoder()
            frames = decoder.feed(body)
            decoder.close()
        except ProtocolError as exc:
            return _text(400, f"malformed service protocol request: {exc}")
        if not frames or not isinstance(frames[0].message, pb.StartMessage):
            return _text(400, "the request must start with a StartMessage")
        start = frames[0].message
        entries = frames[1 : 1 + start.known_entries]
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        try:
            machine = StateMachine(
                version=int(version), start=start, entries=entries, label=definition.label,
                sink=queue.put_nowait,
            )
        except InvocationAbort:
            chunks: list[bytes] = []
            while not queue.empty():
                chunk = queue.get_nowait()
                if chunk is not None:
                    chunks.append(chunk)
            return Response(200, response_headers, b"".join(chunks))
        invocation = Invocation(machine, definition, headers)
        return Response(200, response_headers, _stream(invocation, queue))


async def _stream(invocation: Invocation, queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    handler_class = context_class(invocation.handler)

    async def run() -> None:
        try:
            await invocation.execute(handler_class)
        finally:
            _log_outcome(invocation)
            queue.put_nowait(None)

    task = asyncio.get_running_loop().create_task(run())
    try:
        while True:
            chunk = await queue.get()
            if chunk is None:
                break
            yield chunk
    finally:
        if not task.done():
            task.cancel()


def _log_outcome(invocation: Invocation) -> None:
    machine = invocation.machine
    if machine.closed is Closed.FAILED:
        log.warning(
            "invocation %s of %s failed this attempt: %s",
            machine.start.debug_id, invocation.handler.label, machine.close_reason,
        )


# -- ASGI -------------------------------------------------------------------------


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(bytes(message.get("body", b"")))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


class AsgiApp:
    """The ASGI application of an :class:`Endpoint`."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        response = await self._route(scope, headers, receive)
        await send({
            "type": "http.response.start",
            "status": response.status,
            "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()],
        })
        if isinstance(response.body, bytes):
            await send({"type": "http.response.body", "body": response.body})
            return
        async for chunk in response.body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _route(self, scope: Scope, headers: dict[str, str], receive: Receive) -> Response:
        parts = [p for p in str(scope["path"]).split("/") if p]
        method = scope["method"]
        if parts[-1:] == ["discover"] and method == "GET":
            return self.endpoint.discover(headers.get("accept"))
        if parts[-1:] == ["health"] and method == "GET":
            return _text(200, "OK")
        if len(parts) >= 3 and parts[-3] == "invoke":
            if method != "POST":
                return _text(405, "invocations are POST requests")
            body = await _read_body(receive)
            return self.endpoint.invoke(parts[-2], parts[-1], headers.get("content-type"),
                                        headers, body)
        return _text(404, f"no route for {method} {scope['path']}")


def app(services: Iterable[ServiceDef]) -> AsgiApp:
    """An ASGI app serving ``services`` (see the module docstring)."""
    return AsgiApp(Endpoint(services))
