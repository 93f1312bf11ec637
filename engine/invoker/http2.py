"""A small HTTP/2 client on the ``h2`` library, for bidirectional streams to endpoints.

One :class:`Http2Client` keeps ONE connection per deployment origin (scheme, host,
port) and opens many concurrent streams on it: h2c with prior knowledge for
``http://`` (no upgrade dance, as restate-server does), TLS with ALPN ``h2`` for
``https://``. A stream is full duplex: the request body can keep going while the
response is read, which is what the service protocol's bidirectional mode needs.

Interface used by :mod:`engine.invoker.stream_session`::

    stream = await client.open_stream(url, headers, body=start)  # HEADERS (+ DATA) sent, body open
    await stream.send(data)                           # DATA, flow-controlled
    status, headers = await stream.response()         # response HEADERS
    chunk = await stream.read()                       # b"" once the response ended
    await stream.end()                                # END_STREAM on our side
    stream.reset()                                    # RST_STREAM (CANCEL)

Flow control: received data is acknowledged as soon as the reader takes it
(``acknowledge_received_data``), so a long stream never stalls on its window; sends
wait for window updates. Failures of the connection (refused, reset, GOAWAY, a
protocol error) fail every stream on it with :class:`Http2Error`; the next
``open_stream`` makes a new connection.

The first bytes of the request body can be given to ``open_stream``: they leave in the
same write as the HEADERS (as far as the endpoint's flow-control window allows; the
rest is :attr:`Http2Stream.unsent`), so no endpoint ever holds a request whose body is
still waiting in this process. (A leader frozen between the two and thawed after it
was replaced would otherwise hand the endpoint a start it no longer leads.)

Every new connection resolves the host with the client's resolver (an aiohttp
:class:`~aiohttp.abc.AbstractResolver`; the engine gives it the
:class:`~engine.metadata.address_policy.GuardedResolver` its HTTP/1.1 clients use) and
connects to the addresses it returned, so the deployment address policy is checked
again each time a connection is (re)opened, exactly as for HTTP/1.1, and a name that
now resolves to a denied address is never connected to. A denial is an
:class:`Http2Error` caused by :class:`~engine.metadata.address_policy.DeniedAddress`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from engine.logs import get_logger
from engine.metadata.address_policy import DeniedAddress

__all__ = ["Http2Client", "Http2Error", "Http2Stream"]

log = get_logger(__name__)

_READ_SIZE = 64 * 1024
# Our receive window per stream and for the connection: large, so a fast endpoint is
# never throttled by us (we acknowledge consumed data at once anyway).
_WINDOW = 16 * 1024 * 1024


class Http2Error(Exception):
    """The connection or the stream failed (connect, reset, GOAWAY, protocol error)."""


@dataclass
class _StreamState:
    stream_id: int
    response: asyncio.Future[tuple[int, list[tuple[str, str]]]]
    chunks: asyncio.Queue[bytes | BaseException] = field(default_factory=asyncio.Queue)
    window_open: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False


class Http2Stream:
    """One request/response exchange on a shared connection (see the module docstring)."""

    def __init__(self, connection: _Connection, state: _StreamState, unsent: bytes = b"") -> None:
        self._connection = connection
        self._state = state
        self._ended = False
        self._finished = False
        self.unsent = unsent
        """What of the body given to ``open_stream`` did not fit the window; the caller sends it."""

    @property
    def stream_id(self) -> int:
        return self._state.stream_id

    async def send(self, data: bytes) -> None:
        """Send ``data`` as DATA frames, waiting for the peer's flow-control window."""
        if self._ended:
            raise Http2Error("the request body was already ended")
        await self._connection.send_data(self._state, data)

    async def end(self) -> None:
        """End our side of the stream (END_STREAM); idempotent."""
        if self._ended:
            return
        self._ended = True
        self._connection.end_stream(self._state)

    async def response(self) -> tuple[int, list[tuple[str, str]]]:
        """The response's status and headers (names lower-case), once they arrived."""
        return await asyncio.shield(self._state.response)

    async def read(self) -> bytes:
        """The next chunk of the response body; ``b""`` once it ended.

        Raises:
            Http2Error: the stream was reset or the connection failed.
        """
        if self._finished:
            return b""
        item = await self._state.chunks.get()
        if isinstance(item, BaseException):
            self._finished = True
            raise item
        if not item:
            self._finished = True
            return b""
        self._connection.consumed(self._state, len(item))
        return item

    def reset(self) -> None:
        """Abort the stream (RST_STREAM CANCEL), unless it is closed already."""
        self._connection.reset_stream(self._state)

    def close(self) -> None:
        """Release the stream: reset it if either side is still open."""
        self._connection.reset_stream(self._state)


class _Connection:
    """One HTTP/2 connection and the reader task that dispatches its events."""

    def __init__(self, origin: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.origin = origin
        self._reader = reader
        self._writer = writer
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self._h2 = h2.connection.H2Connection(config=config)
        self._streams: dict[int, _StreamState] = {}
        self._failure: Http2Error | None = None
        self._capacity = asyncio.Condition()
        self._connection_window = asyncio.Event()
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            },
        )
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(_WINDOW - 65_535)
        self._flush()
        self._task = asyncio.get_running_loop().create_task(self._read_loop(), name=f"h2-{origin}")

    @property
    def usable(self) -> bool:
        return self._failure is None and not self._writer.is_closing()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def open_stream(
        self,
        method: str,
        path: str,
        authority: str,
        scheme: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        guard: Callable[[], None] | None = None,
    ) -> Http2Stream:
        async with self._capacity:
            await self._capacity.wait_for(
                lambda: self._failure is not None
                or self._h2.open_outbound_streams < self._h2.remote_settings.max_concurrent_streams
            )
        if self._failure is not None:
            raise self._failure
        if guard is not None:
            guard()  # after the last await: nothing can pass between it and the write
        stream_id = self._h2.get_next_available_stream_id()
        request = [(":method", method), (":scheme", scheme), (":authority", authority), (":path", path)]
        request.extend((name.lower(), value) for name, value in headers.items())
        state = _StreamState(stream_id, asyncio.get_running_loop().create_future())
        state.window_open.set()
        self._streams[stream_id] = state
        try:
            self._h2.send_headers(stream_id, request, end_stream=False)
            unsent = self._queue_data(stream_id, memoryview(body))
        except h2.exceptions.H2Error as exc:
            self._streams.pop(stream_id, None)
            raise Http2Error(f"cannot open a stream to {self.origin}: {exc}") from exc
        self._flush()  # HEADERS and the first DATA in one write
        return Http2Stream(self, state, unsent)

    def _queue_data(self, stream_id: int, view: memoryview) -> bytes:
        """Hand h2 as much of ``view`` as the windows allow now; return the rest."""
        while view:
            window = min(self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size)
            if window <= 0:
                break
            chunk, view = view[:window], view[window:]
            self._h2.send_data(stream_id, bytes(chunk))
        return bytes(view)

    async def send_data(self, state: _StreamState, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._failure is not None:
                raise self._failure
            if state.closed:
                raise Http2Error("the stream was closed by the endpoint")
            try:
                window = min(
                    self._h2.local_flow_control_window(state.stream_id), self._h2.max_outbound_frame_size
                )
            except h2.exceptions.StreamClosedError as exc:
                raise Http2Error("the stream was closed by the endpoint") from exc
            if window <= 0:
                state.window_open.clear()
                await state.window_open.wait()
                continue
            chunk, view = view[:window], view[window:]
            try:
                self._h2.send_data(state.stream_id, bytes(chunk))
            except h2.exceptions.H2Error as exc:
                raise Http2Error(f"cannot send on stream {state.stream_id}: {exc}") from exc
            self._flush()
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    def end_stream(self, state: _StreamState) -> None:
        if self._failure is not None or state.closed:
            return
        with contextlib.suppress(h2.exceptions.H2Error):
            self._h2.end_stream(state.stream_id)
            self._flush()

    def reset_stream(self, state: _StreamState) -> None:
        if state.closed:
            return
        self._close_state(state, Http2Error("the stream was reset by us"))
        if self._failure is None:
            with contextlib.suppress(h2.exceptions.H2Error):
                self._h2.reset_stream(state.stream_id, h2.errors.ErrorCodes.CANCEL)
                self._flush()

    def consumed(self, state: _StreamState, size: int) -> None:
        """The reader took ``size`` bytes: give the window back to the endpoint."""
        if self._failure is not None:
            return
        with contextlib.suppress(h2.exceptions.H2Error):
            self._h2.acknowledge_received_data(size, state.stream_id)
            self._flush()

    def _close_state(self, state: _StreamState, reason: BaseException | None) -> None:
        if state.closed:
            return
        state.closed = True
        self._streams.pop(state.stream_id, None)
        if not state.response.done():
            state.response.set_exception(reason or Http2Error("the stream ended without a response"))
            state.response.exception()  # retrieved: nobody may ever ask
        state.chunks.put_nowait(reason if reason is not None else b"")
        state.window_open.set()
        asyncio.get_running_loop().create_task(self._notify_capacity())

    async def _notify_capacity(self) -> None:
        async with self._capacity:
            self._capacity.notify_all()

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    raise Http2Error(f"{self.origin} closed the connection")
                try:
                    events = self._h2.receive_data(data)
                except h2.exceptions.H2Error as exc:
                    raise Http2Error(f"HTTP/2 protocol error from {self.origin}: {exc}") from exc
                for event in events:
                    self._dispatch(event)
                self._flush()
        except asyncio.CancelledError:
            self._fail(Http2Error(f"connection to {self.origin} closed"))
            raise
        except (OSError, Http2Error) as exc:
            self._fail(exc if isinstance(exc, Http2Error) else Http2Error(f"connection to {self.origin} broke: {exc}"))

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            state = self._streams.get(event.stream_id)
            if state is not None and not state.response.done():
                headers = [(str(k), str(v)) for k, v in event.headers or []]
                status = next((int(v) for k, v in headers if k == ":status"), 0)
                state.response.set_result((status, [(k, v) for k, v in headers if not k.startswith(":")]))
        elif isinstance(event, h2.events.DataReceived):
            state = self._streams.get(event.stream_id)
            # Windows are given back when the reader takes the data (flow control);
            # data for a stream nobody reads any more is given back at once.
            if state is not None and event.data:
                state.chunks.put_nowait(event.data)
            elif event.flow_controlled_length:
                with contextlib.suppress(h2.exceptions.H2Error):
                    self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            state = self._streams.get(event.stream_id)
            if state is not None:
                self._close_state(state, None)
        elif isinstance(event, h2.events.StreamReset):
            state = self._streams.get(event.stream_id)
            if state is not None:
                self._close_state(
                    state, Http2Error(f"the endpoint reset the stream ({event.error_code!r})")
                )
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id == 0:
                for state in self._streams.values():
                    state.window_open.set()
            else:
                state = self._streams.get(event.stream_id)
                if state is not None:
                    state.window_open.set()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for state in self._streams.values():
                state.window_open.set()
            asyncio.get_running_loop().create_task(self._notify_capacity())
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._fail(Http2Error(f"{self.origin} closed the connection (GOAWAY {event.error_code!r})"))

    def _fail(self, error: Http2Error) -> None:
        if self._failure is None:
            self._failure = error
        for state in list(self._streams.values()):
            self._close_state(state, error)
        if not self._writer.is_closing():
            self._writer.close()
        asyncio.get_running_loop().create_task(self._notify_capacity())

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._fail(Http2Error(f"connection to {self.origin} closed"))
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


class Http2Client:
    """HTTP/2 connections by origin; see the module docstring.

    Args:
        connect_timeout_s: Longest a TCP (and TLS) connect may take.
        ssl_context: For ``https://``; the default verifies certificates. ALPN ``h2`` is
            set on it.
        resolver: Resolves host names on every new connection (and may refuse them, as
            :class:`~engine.metadata.address_policy.GuardedResolver` does); owned by the
            client, closed by :meth:`close`. Default: aiohttp's default resolver.
    """

    def __init__(
        self,
        *,
        connect_timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._ssl = ssl_context
        self._resolver = resolver  # default made on first use: it needs the running loop
        self._connections: dict[str, _Connection] = {}
        self._connecting: dict[str, asyncio.Future[_Connection]] = {}

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        self._ssl.set_alpn_protocols(["h2"])
        return self._ssl

    async def open_stream(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        method: str = "POST",
        body: bytes = b"",
        guard: Callable[[], None] | None = None,
    ) -> Http2Stream:
        """Open a ``method`` (POST) stream to ``url`` with ``headers``; the body stays open.

        ``body`` is sent in the same write as the HEADERS, as far as the flow-control
        window allows; the rest is the stream's :attr:`~Http2Stream.unsent`. ``guard``
        is called after the last ``await``, right before the HEADERS are written; what
        it raises propagates and nothing is sent.

        Raises:
            Http2Error: connecting failed, or the endpoint does not speak HTTP/2.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Http2Error(f"not an http(s) URL: {url}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = f"{parts.scheme}://{parts.hostname}:{port}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        authority = parts.netloc.rsplit("@", 1)[-1]
        connection = await self._connection(origin, parts.scheme, parts.hostname, port)
        return await connection.open_stream(method, path, authority, parts.scheme, headers, body, guard)

    async def _connection(self, origin: str, scheme: str, host: str, port: int) -> _Connection:
        existing = self._connections.get(origin)
        if existing is not None and existing.usable:
            return existing
        pending = self._connecting.get(origin)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
        self._connecting[origin] = future
        try:
            connection = await self._connect(origin, scheme, host, port)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else Http2Error("connect cancelled"))
            future.exception()
            raise
        finally:
            self._connecting.pop(origin, None)
        self._connections[origin] = connection
        future.set_result(connection)
        return connection

    @property
    def open_connections(self) -> int:
        """Connections that new streams can use now."""
        return sum(1 for c in self._connections.values() if c.usable)

    async def _resolve(self, origin: str, host: str, port: int) -> list[ResolveResult]:
        if self._resolver is None:
            self._resolver = DefaultResolver()
        try:
            addresses = await self._resolver.resolve(host.strip("[]"), port, family=socket.AF_UNSPEC)
        except DeniedAddress as exc:
            raise Http2Error(f"refusing to connect to {origin}: {exc}") from exc
        except OSError as exc:
            raise Http2Error(f"cannot connect to {origin}: cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise Http2Error(f"cannot connect to {origin}: {host} resolves to no address")
        return addresses

    async def _connect(self, origin: str, scheme: str, host: str, port: int) -> _Connection:
        tls = self._tls() if scheme == "https" else None
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                addresses = await self._resolve(origin, host, port)
                failure: OSError | None = None
                for address in addresses:
                    # The checked address itself, never the name again (it could resolve
                    # elsewhere by now); TLS still verifies the certificate for the name.
                    try:
                        reader, writer = await asyncio.open_connection(
                            address["host"], address["port"], family=address["family"], ssl=tls,
                            server_hostname=host.strip("[]") if tls is not None else None,
                        )
                        break
                    except ssl.SSLError:
                        raise
                    except OSError as exc:
                        failure = exc
                else:
                    raise failure or OSError(f"{host} resolves to no address")
        except TimeoutError as exc:
            raise Http2Error(f"connecting to {origin} took longer than {self._connect_timeout_s:g} s") from exc
        except ssl.SSLError as exc:
            raise Http2Error(f"cannot connect to {origin}: TLS handshake failed: {exc}") from exc
        except OSError as exc:
            raise Http2Error(f"cannot connect to {origin}: {exc}") from exc
        if tls is not None:
            ssl_object = writer.get_extra_info("ssl_object")
            chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            if chosen != "h2":
                writer.close()
                raise Http2Error(f"{origin} did not agree to HTTP/2 over TLS (ALPN: {chosen!r})")
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(origin, reader, writer)

    async def close(self) -> None:
        """Close every connection (their streams fail)."""
        connections, self._connections = list(self._connections.values()), {}
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
        if self._resolver is not None:
            await self._resolver.close()
