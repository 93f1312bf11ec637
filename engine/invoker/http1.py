"""The invoker's HTTP/1.1 client: one POST per attempt over pooled keep-alive connections.

Request/response attempts are the engine's hottest I/O: every invocation is at least one
POST of a few hundred bytes whose answer streams back a few frames. A general-purpose
client (aiohttp's ``ClientSession``) spent about a fifth of the engine's event loop on
request and response objects, header multidicts, timers and tracing hooks this path never
uses. This client does only what the service protocol needs:

* one connection carries one exchange at a time (no pipelining), and goes back to its
  origin's pool when the response was read to its end with keep-alive;
* the request is written with one ``write`` (head and body), the response is parsed by
  ``httptools`` (llhttp, the parser Node.js uses) as bytes arrive; body chunks are
  handed to the reader as they are, de-chunked;
* host names are resolved through the invoker's resolver, so the deployment address
  policy (:mod:`engine.metadata.address_policy`) sees every address a connection opens
  to; ``https://`` uses TLS with the system's trust store;
* an idle connection is closed after ``keepalive_timeout_s`` or when the server closes
  it; a request that fails on a *reused* connection before any byte of the answer came
  back is sent once more on a new connection (the server closed the idle connection as
  the request went out; an attempt is a replay of its journal, so sending it again is
  what a retry would do anyway).

Timeouts are the caller's (the session bounds every wait by the attempt's inactivity and
abort timeouts); only connecting has its own bound here.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import socket
import ssl
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from engine.errors import EngineError

__all__ = ["Http1Client", "Http1Error", "Http1Response"]

# Unread body bytes above which the connection stops reading until the reader catches up.
_HIGH_WATER = 1 << 20


class Http1Error(EngineError):
    """The exchange failed on the wire: no connection, a broken or malformed response."""


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the response being read on it."""

    def __init__(self, origin: _Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._head: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._received = 0
        self._complete = False
        self._error: Exception | None = None
        self._keep_alive = False
        self.status = 0
        self.reason = ""
        self.headers: dict[str, str] = {}

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._head is None:
            # Nothing was asked: a server speaking out of turn makes the connection useless.
            self._fail(Http1Error("the endpoint sent data without a request"))
            return
        self._received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(Http1Error("the endpoint tried to upgrade the connection"))
        except httptools.HttpParserError as exc:
            self._fail(Http1Error(f"malformed HTTP response: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost settles the reader

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._complete:
            return
        if self.status and self._delimited_by_close():
            # A body without a length or chunked framing ends with the connection.
            self._complete = True
            self._keep_alive = False
            self._wake()
            return
        if not self._complete:
            reason = f": {exc}" if exc else ""
            self._fail(Http1Error(f"the endpoint closed the connection{reason}"), close=False)

    def _delimited_by_close(self) -> bool:
        return "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        ).lower()

    # -- httptools callbacks --------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason += status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self.headers.get(key)
        self.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._keep_alive = bool(self._parser.should_keep_alive())
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self._complete = True
        self._wake()

    # -- the exchange ---------------------------------------------------------------------

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._head = loop.create_future()
        self._chunks.clear()
        self._buffered = self._received = 0
        self._complete = False
        self._error = None
        self.status, self.reason, self.headers = 0, "", {}
        self.transport.write(request)

    async def wait_head(self) -> None:
        assert self._head is not None
        await self._head

    @property
    def answered_nothing(self) -> bool:
        return self._received == 0

    @property
    def at_eof(self) -> bool:
        return self._complete and not self._chunks

    @property
    def reusable(self) -> bool:
        return self._complete and self._keep_alive and not self.closed and self._error is None

    async def read_chunk(self) -> bytes:
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= _HIGH_WATER // 2 and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return chunk
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: Exception, close: bool = True) -> None:
        if self._error is None:
            self._error = error
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        self._wake()
        if close:
            self.close()


class Http1Response:
    """The answer of one POST: status, headers (names lower-case) and the body as read."""

    def __init__(self, client: Http1Client, connection: _Connection) -> None:
        self._client = client
        self._connection: _Connection | None = connection
        self.status = connection.status
        self.reason = connection.reason
        self.headers = connection.headers

    async def readany(self) -> bytes:
        """The next body bytes as they arrived; ``b""`` at the end of the body."""
        if self._connection is None:
            return b""
        return await self._connection.read_chunk()

    async def read(self, limit: int) -> bytes:
        """Up to ``limit`` body bytes (fewer at the end of the body)."""
        data = bytearray()
        while len(data) < limit and (chunk := await self.readany()):
            data += chunk
        return bytes(data[:limit])

    def at_eof(self) -> bool:
        return self._connection is None or self._connection.at_eof

    def release(self) -> None:
        """Done with the response: a connection read to its end goes back to the pool,
        any other is closed (so the endpoint sees the disconnect)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._client._put_back(connection)

    def close(self) -> None:
        """Close the connection whatever state the response is in."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
            self._client._forget(connection)


class Http1Client:
    """Pooled HTTP/1.1 POSTs; make and use it on one event loop.

    Args:
        resolver: Resolves host names (the engine's refuses denied addresses).
        max_connections: Most open connections in total; at the limit an idle one is
            closed to make room, or the request waits for one to be released.
        connect_timeout_s: Longest a TCP (and TLS) connect may take.
        keepalive_timeout_s: How long an idle connection is kept.
        user_agent: The ``user-agent`` header of every request.
        tls: The TLS context of ``https://`` connections (default: the system's trust
            store, host names verified).
    """

    def __init__(
        self,
        *,
        resolver: AbstractResolver | None = None,
        max_connections: int = 1000,
        connect_timeout_s: float = 10.0,
        keepalive_timeout_s: float = 4.0,
        user_agent: str = "logstrate",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._resolver = resolver or DefaultResolver()
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_timeout_s
        self._user_agent = user_agent
        self._idle: dict[_Origin, collections.deque[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._room_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._tls = tls
        self._closed = False

    async def __aenter__(self) -> Http1Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        self._closed = True
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Http1Response:
        """POST ``body`` to the absolute ``url``; returns once the response head is in.

        Raises :class:`Http1Error` when no connection can be made or the response breaks
        off before its head, and :class:`engine.metadata.address_policy.DeniedAddress`
        when the host resolves to a denied address."""
        if self._closed:
            raise Http1Error("the HTTP client is closed")
        origin, target, host_header = _split(url)
        lines = [f"POST {target} HTTP/1.1", f"host: {host_header}", f"user-agent: {self._user_agent}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"content-length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        for _ in range(2):
            connection = await self._take(origin)
            connection.send(request)
            try:
                await connection.wait_head()
            except Http1Error:
                self._forget(connection)
                if connection.reused and connection.answered_nothing:
                    continue  # the server closed the idle connection under us: once more, fresh
                raise
            except BaseException:
                connection.close()
                self._forget(connection)
                raise
            return Http1Response(self, connection)
        raise Http1Error(f"{origin.host}:{origin.port} closed two connections without answering")

    # -- the pool ----------------------------------------------------------------------------

    async def _take(self, origin: _Origin) -> _Connection:
        while True:
            connection = self._idle_connection(origin)
            if connection is not None:
                return connection
            if len(self._open) < self._max_connections or self._evict_idle():
                break
            # At the limit with every connection busy: wait until one is released.
            waiter = asyncio.get_running_loop().create_future()
            self._room_waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    self._room_waiters.remove(waiter)
        connection = _Connection(origin)
        self._open.add(connection)
        try:
            await self._connect(connection)
        except BaseException:
            self._forget(connection)
            raise
        return connection

    def _idle_connection(self, origin: _Origin) -> _Connection | None:
        now = time.monotonic()
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            if connection.closed or now - connection.idle_since > self._keepalive_s:
                connection.close()
                self._forget(connection)
                continue
            connection.reused = True
            return connection
        return None

    def _evict_idle(self) -> bool:
        """Close the longest-idle connection of any origin; False when none is idle."""
        oldest: _Connection | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest.idle_since):
                oldest = idle[0]
        if oldest is None:
            return False
        oldest.close()
        self._forget(oldest)
        return True

    async def _connect(self, connection: _Connection) -> None:
        origin = connection.origin
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                resolved = await self._resolver.resolve(origin.host, origin.port, socket.AF_UNSPEC)
                if not resolved:
                    raise Http1Error(f"{origin.host} did not resolve to any address")
                last: OSError | None = None
                for address in resolved:
                    try:
                        await loop.create_connection(
                            lambda: connection, address["host"], address["port"],
                            ssl=self._tls_context() if origin.tls else None,
                            server_hostname=origin.host if origin.tls else None,
                        )
                        break
                    except OSError as exc:
                        last = exc
                else:
                    raise Http1Error(f"cannot connect to {origin.host}:{origin.port}: {last}")
        except TimeoutError:
            raise Http1Error(
                f"connecting to {origin.host}:{origin.port} took longer than {self._connect_timeout_s:g}s"
            ) from None
        except OSError as exc:
            raise Http1Error(f"cannot connect to {origin.host}:{origin.port}: {exc}") from exc
        assert connection.transport is not None
        sock = connection.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Request heads and bodies go out in one write; Nagle would only delay them.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _put_back(self, connection: _Connection) -> None:
        if self._closed or not connection.reusable:
            connection.close()
            self._forget(connection)
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(connection.origin, collections.deque()).append(connection)
        self._wake_waiters()

    def _forget(self, connection: _Connection) -> None:
        if connection in self._open:
            self._open.discard(connection)
            idle = self._idle.get(connection.origin)
            if idle and connection in idle:
                idle.remove(connection)
            self._wake_waiters()

    def _wake_waiters(self) -> None:
        while self._room_waiters:
            waiter = self._room_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


@functools.lru_cache(maxsize=4096)
def _split(url: str) -> tuple[_Origin, str, str]:
    """The origin, the request target (path and query) and the host header of ``url``
    (cached: an engine calls a handful of handler URLs over and over)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise Http1Error(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return _Origin(scheme, parts.hostname, port), target, parts.netloc.rpartition("@")[2]
