"""The invoker's HTTP/2 client against a real HTTP/2 server (hypercorn, h2c).

The server app echoes every request chunk as soon as it arrives, so a test can only
pass if the stream is really full duplex (a reply arrives while our body is open).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver
from hypercorn.asyncio import serve
from hypercorn.config import Config

from engine.invoker.http2 import Http2Client, Http2Error
from engine.metadata.address_policy import AddressPolicy, DeniedAddress, GuardedResolver


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    headers = [(b"x-http-version", scope["http_version"].encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def h2c_server(app: Any = echo_app, keep_alive_timeout: float | None = None) -> AsyncIterator[str]:
    port = _free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    if keep_alive_timeout is not None:
        config.keep_alive_timeout = keep_alive_timeout
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def _full_duplex_stream_over_h2c() -> None:
    async with h2c_server() as base:
        client = Http2Client()
        try:
            stream = await client.open_stream(f"{base}/invoke/S/h", {"content-type": "application/x"})
            await stream.send(b"ping-1")
            status, headers = await stream.response()
            assert status == 200 and ("x-http-version", "2") in headers
            # The echo arrives while our side is still open: a real bidirectional stream.
            assert await asyncio.wait_for(stream.read(), 5) == b"ping-1"
            await stream.send(b"ping-2")
            assert await asyncio.wait_for(stream.read(), 5) == b"ping-2"
            await stream.end()
            assert await asyncio.wait_for(stream.read(), 5) == b""
        finally:
            await client.close()


async def _many_concurrent_streams_share_one_connection_and_large_bodies_flow() -> None:
    async with h2c_server() as base:
        client = Http2Client()
        try:
            big = bytes(range(256)) * 20_000  # 5 MB: far past the default 64 KiB windows

            async def exchange(i: int) -> bytes:
                stream = await client.open_stream(f"{base}/x/{i}", {})
                payload = big if i == 0 else f"stream-{i}".encode()

                async def write() -> None:
                    await stream.send(payload)
                    await stream.end()

                writer = asyncio.create_task(write())
                received = bytearray()
                while chunk := await asyncio.wait_for(stream.read(), 20):
                    received += chunk
                await writer
                return bytes(received)

            results = await asyncio.gather(*(exchange(i) for i in range(50)))
            assert results[0] == big
            assert results[1:] == [f"stream-{i}".encode() for i in range(1, 50)]
            assert len(client._connections) == 1
        finally:
            await client.close()


async def _connection_refused_is_an_http2_error() -> None:
    client = Http2Client(connect_timeout_s=2)
    with pytest.raises(Http2Error, match="cannot connect"):
        await client.open_stream(f"http://127.0.0.1:{_free_port()}/x", {})
    await client.close()


async def _a_connection_dropped_by_the_server_fails_its_open_streams() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)  # the client preface, then hang up
        await asyncio.sleep(0.2)
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Http2Client()
    try:
        stream = await client.open_stream(f"http://127.0.0.1:{port}/x", {})
        with pytest.raises(Http2Error, match="closed the connection"):
            await asyncio.wait_for(stream.read(), 5)
    finally:
        await client.close()
        server.close()


class _Renamed(ThreadedResolver):
    """The system resolver, asked for ``target`` whatever name it is given: a DNS record
    that the test can change (rebinding), resolved for real each time."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.lookups = 0

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups += 1
        return await super().resolve(self.target, port, family)


async def _echo_once(client: Http2Client, url: str) -> bytes:
    stream = await client.open_stream(url, {})
    await stream.send(b"hello")
    await stream.end()
    received = bytearray()
    while chunk := await asyncio.wait_for(stream.read(), 5):
        received += chunk
    return bytes(received)


async def _every_new_connection_is_checked_against_the_address_policy() -> None:
    # The server closes a connection idle for 0.2 s, so each exchange below needs a new one.
    async with h2c_server(keep_alive_timeout=0.2) as base:
        port = base.rsplit(":", 1)[1]
        dns = _Renamed("127.0.0.1")
        client = Http2Client(connect_timeout_s=5, resolver=GuardedResolver(AddressPolicy(), dns))
        url = f"http://endpoint.test:{port}/invoke/S/h"
        try:
            assert await _echo_once(client, url) == b"hello"
            assert dns.lookups == 1
            for expected_lookups in (2, 3):
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 10
                while client.open_connections:
                    assert loop.time() < deadline, "the server never closed the idle connection"
                    await asyncio.sleep(0.02)
                if expected_lookups == 3:
                    dns.target = "169.254.169.254"  # the name now points at the metadata service
                    with pytest.raises(Http2Error, match=r"169\.254\.169\.254 is in 169\.254\.0\.0/16") as denied:
                        await client.open_stream(url, {})
                    assert isinstance(denied.value.__cause__, DeniedAddress)
                else:
                    assert await _echo_once(client, url) == b"hello"
                assert dns.lookups == expected_lookups  # resolved (and checked) again
        finally:
            await client.close()


async def _denied_address_literals_are_never_connected() -> None:
    client = Http2Client(connect_timeout_s=30, resolver=GuardedResolver(AddressPolicy()))
    try:
        for url in ("http://169.254.169.254/x", "https://[fe80::1]:8443/x", "http://[::ffff:169.254.169.254]/x"):
            started = asyncio.get_running_loop().time()
            with pytest.raises(Http2Error, match="refusing to connect") as denied:
                await client.open_stream(url, {})
            assert isinstance(denied.value.__cause__, DeniedAddress)
            assert asyncio.get_running_loop().time() - started < 5  # refused, not a connect timing out
    finally:
        await client.close()


def test_every_new_connection_is_checked_against_the_address_policy() -> None:
    asyncio.run(_every_new_connection_is_checked_against_the_address_policy())


def test_denied_address_literals_are_never_connected() -> None:
    asyncio.run(_denied_address_literals_are_never_connected())


def test_full_duplex_stream_over_h2c() -> None:
    asyncio.run(_full_duplex_stream_over_h2c())


def test_many_concurrent_streams_share_one_connection_and_large_bodies_flow() -> None:
    asyncio.run(_many_concurrent_streams_share_one_connection_and_large_bodies_flow())


def test_connection_refused_is_an_http2_error() -> None:
    asyncio.run(_connection_refused_is_an_http2_error())


def test_a_connection_dropped_by_the_server_fails_its_open_streams() -> None:
    asyncio.run(_a_connection_dropped_by_the_server_fails_its_open_streams())
