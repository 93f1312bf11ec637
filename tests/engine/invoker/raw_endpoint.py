"""A real TCP endpoint that answers invocations with hand-written HTTP/1.1 responses.

The official SDK only ever sends well-formed streams. To see how the invoker copes with
everything else (wrong content types, truncated bodies, streams without a terminator,
messages only the runtime may send) the tests need an endpoint that misbehaves on
purpose: this one reads the request, then writes whatever bytes the test chose.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from restate_protocol import ProtocolVersion, content_type, encode_frames
from google.protobuf.message import Message


@dataclass(frozen=True)
class Reply:
    """What to write back: raw bytes, then either close or hold the connection open.

    With ``gate`` set, the endpoint holds the request until the event is set.
    """

    data: bytes
    hang: bool = False
    gate: asyncio.Event | None = None


@dataclass
class Seen:
    """The requests the endpoint received: (path, headers, body), and how many at once."""

    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    active: int = 0
    max_active: int = 0


def http_response(
    body: bytes = b"",
    *,
    status: str = "200 OK",
    ctype: str | None = content_type(ProtocolVersion.V7),
    declared_length: int | None = None,
) -> bytes:
    """An HTTP/1.1 response; ``declared_length`` above ``len(body)`` makes it truncated."""
    lines = [f"HTTP/1.1 {status}", f"content-length: {len(body) if declared_length is None else declared_length}"]
    if ctype is not None:
        lines.append(f"content-type: {ctype}")
    lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def frames_response(*messages: Message, extra: bytes = b"") -> Reply:
    """A complete 200 response carrying ``messages`` (and ``extra`` raw bytes after them)."""
    return Reply(http_response(encode_frames(*messages) + extra))


@contextlib.asynccontextmanager
async def raw_endpoint(reply: Callable[[str, bytes], Reply]) -> AsyncIterator[tuple[str, Seen]]:
    """Serve on a free loopback port; yields ``(base_url, seen)``."""
    seen = Seen()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in header_lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            path = request_line.split(" ")[1]
            seen.requests.append((path, headers, body))
            seen.active += 1
            seen.max_active = max(seen.max_active, seen.active)
            answer = reply(path, body)
            if answer.gate is not None:
                await answer.gate.wait()
            seen.active -= 1
            writer.write(answer.data)
            await writer.drain()
            if answer.hang:
                # Until the client gives up and closes its side.
                await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()
