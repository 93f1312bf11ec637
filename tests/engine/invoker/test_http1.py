"""The invoker's HTTP/1.1 client against a real TCP server that answers byte by byte as
each test chooses: framing, keep-alive, stale connections, TLS, limits and failures."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvloop

from engine.invoker.http1 import Http1Client, Http1Error
from engine.metadata.address_policy import AddressPolicy, GuardedResolver
from tests.fixtures.tls import TlsFiles, make_certificates

def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on asyncio's own loop, then on uvloop (the engine's)."""

    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> None:
        asyncio.run(test(*args, **kwargs))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(test(*args, **kwargs))

    return run


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


@dataclass
class Server:
    port: int = 0
    connections: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)


async def read_request(reader: asyncio.StreamReader, server: Server) -> bool:
    """One request off the connection; False at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    server.requests.append((line, headers, body))
    return True


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"content-length: {len(body)}", "content-type: application/x", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@contextlib.asynccontextmanager
async def serve(handler: Handler, tls: TlsFiles | None = None) -> AsyncIterator[Server]:
    state = Server()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            await handler(reader, writer, state)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            state.disconnected.set()

    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.cert, tls.key)
    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=context)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()


async def echo_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
    while await read_request(reader, state):
        writer.write(ok(b"echo:" + state.requests[-1][2]))
        await writer.drain()


async def read_all(client: Http1Client, url: str, body: bytes = b"x", **headers: str) -> tuple[int, bytes]:
    response = await client.post(url, dict(headers), body)
    data = b""
    while chunk := await response.readany():
        data += chunk
    assert response.at_eof()
    response.release()
    return response.status, data


@in_loop
async def test_keep_alive_reuses_one_connection_and_sends_what_was_asked() -> None:
    async with serve(echo_forever) as server, Http1Client(user_agent="t/1") as client:
        url = f"http://127.0.0.1:{server.port}/invoke/Svc/run?x=1"
        assert await read_all(client, url, b"one", **{"content-type": "application/vnd.restate"}) == (200, b"echo:one")
        assert await read_all(client, url, b"two") == (200, b"echo:two")
    assert server.connections == 1
    line, headers, body = server.requests[0]
    assert line == "POST /invoke/Svc/run?x=1 HTTP/1.1"
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["user-agent"] == "t/1"
    assert headers["content-type"] == "application/vnd.restate"
    assert headers["content-length"] == "3" and body == b"one"


@in_loop
async def test_chunked_body_arrives_in_pieces_and_the_connection_is_reused() -> None:
    gate = asyncio.Event()

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        while await read_request(reader, state):
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: a/b\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
            await gate.wait()
            writer.write(b"6\r\n world\r\n0\r\n\r\n")
            await writer.drain()
            gate.clear()

    async with serve(chunked) as server, Http1Client() as client:
        url = f"http://127.0.0.1:{server.port}/"
        for _ in range(2):
            response = await client.post(url, {}, b"")
            assert response.headers["content-type"] == "a/b"
            assert await response.readany() == b"hello"
            assert not response.at_eof()
            gate.set()
            assert await response.readany() == b" world"
            assert await response.readany() == b""
            response.release()
    assert server.connections == 1


@in_loop
async def test_a_body_delimited_by_close_is_read_to_its_end_and_not_reused() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader, state)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: a/b\r\n\r\nall of it")
        await writer.drain()

    async with serve(until_close) as server, Http1Client() as client:
        url = f"http://127.0.0.1:{server.port}/"
        assert await read_all(client, url) == (200, b"all of it")
        assert await read_all(client, url) == (200, b"all of it")
    assert server.connections == 2


@in_loop
async def test_a_pooled_connection_the_server_closed_is_replaced_transparently() -> None:
    async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        # Keep-alive announced, then the idle connection is closed, as servers do.
        await read_request(reader, state)
        writer.write(ok(b"fine"))
        await writer.drain()

    async with serve(one_per_connection) as server, Http1Client() as client:
        url = f"http://127.0.0.1:{server.port}/"
        assert await read_all(client, url) == (200, b"fine")
        await asyncio.wait_for(server.disconnected.wait(), 5)
        assert await read_all(client, url) == (200, b"fine")
    assert server.connections == 2 and len(server.requests) == 2


@in_loop
async def test_a_connection_idle_past_the_keepalive_timeout_is_not_reused() -> None:
    async with serve(echo_forever) as server, Http1Client(keepalive_timeout_s=1e-9) as client:
        url = f"http://127.0.0.1:{server.port}/"
        await read_all(client, url)
        await read_all(client, url)
    assert server.connections == 2


@in_loop
async def test_a_body_cut_short_fails_the_read() -> None:
    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader, state)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()

    async with serve(truncated) as server, Http1Client() as client:
        response = await client.post(f"http://127.0.0.1:{server.port}/", {}, b"")
        assert await response.readany() == b"only this"
        with pytest.raises(Http1Error, match="closed the connection"):
            await response.readany()
        response.close()


@in_loop
async def test_garbage_instead_of_http_is_a_clear_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader, state)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serve(garbage) as server, Http1Client() as client:
        with pytest.raises(Http1Error, match="malformed HTTP response"):
            await client.post(f"http://127.0.0.1:{server.port}/", {}, b"")


@in_loop
async def test_closing_an_unfinished_response_disconnects_the_endpoint() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        await read_request(reader, state)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await reader.read()  # until the client goes away

    async with serve(endless) as server, Http1Client() as client:
        response = await client.post(f"http://127.0.0.1:{server.port}/", {}, b"")
        assert await response.readany() == b"abc"
        response.close()
        await asyncio.wait_for(server.disconnected.wait(), 5)


@in_loop
async def test_refused_connection_names_the_address() -> None:
    async with serve(echo_forever) as server:
        port = server.port
    async with Http1Client() as client:
        with pytest.raises(Http1Error, match=f"cannot connect to 127.0.0.1:{port}"):
            await client.post(f"http://127.0.0.1:{port}/", {}, b"")


@in_loop
async def test_denied_addresses_are_never_connected_to() -> None:
    policy = AddressPolicy.from_settings(["127.0.0.0/8"], [])
    async with serve(echo_forever) as server, Http1Client(resolver=GuardedResolver(policy)) as client:
        with pytest.raises(Http1Error, match="127.0.0.1"):
            await client.post(f"http://localhost:{server.port}/", {}, b"")
    assert server.connections == 0


@in_loop
async def test_https_verifies_the_server_certificate(tmp_path: Path) -> None:
    files = make_certificates(tmp_path)
    async with serve(echo_forever, tls=files) as server:
        url = f"https://127.0.0.1:{server.port}/"
        async with Http1Client() as untrusting:
            with pytest.raises(Http1Error, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.post(url, {}, b"")
        async with Http1Client(tls=ssl.create_default_context(cafile=str(files.ca))) as client:
            assert await read_all(client, url, b"secret") == (200, b"echo:secret")
            assert await read_all(client, url, b"again") == (200, b"echo:again")
    # The refused handshake never reached the server's handler; the trusted client kept one.
    assert server.connections == 1


@in_loop
async def test_at_the_connection_limit_a_request_waits_for_a_free_connection() -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Server) -> None:
        while await read_request(reader, state):
            if len(state.requests) == 1:
                await release.wait()
            writer.write(ok(b"done"))
            await writer.drain()

    async with serve(slow) as server, Http1Client(max_connections=1) as client:
        url = f"http://127.0.0.1:{server.port}/"
        first = asyncio.create_task(read_all(client, url))
        await asyncio.sleep(0)
        second = asyncio.create_task(read_all(client, url))
        done, _ = await asyncio.wait({second}, timeout=0.2)
        assert not done and len(server.requests) == 1
        release.set()
        assert await first == (200, b"done")
        assert await second == (200, b"done")
    assert server.connections == 1
