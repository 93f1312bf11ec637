"""The invoker's HTTP client and its per-deployment concurrency limit.

One :class:`~engine.invoker.http1.Http1Client` serves every attempt of a partition
leader: HTTP/1.1 with keep-alive, so consecutive attempts against a deployment reuse
connections.
:class:`Invoker` puts a semaphore in front of each deployment (keyed by base URL) so a
burst of invocations cannot open more concurrent requests to one deployment than it was
configured for; as a connection carries one exchange at a time, that also bounds the
connections to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver

from engine.invoker.http1 import Http1Client
from engine.invoker.http2 import Http2Client
from engine.invoker.identity import RequestIdentity
from engine.invoker.liveness import StallWatch
from engine.invoker.session import Emit, ResolveCall, run_attempt
from engine.invoker.stream_session import AttemptChannel, run_stream_attempt
from engine.invoker.task import AttemptOutcome, InvocationTask
from engine.logs import get_logger
from engine.version import __version__

__all__ = ["HttpClientConfig", "Invoker", "create_http_session"]


@dataclass(frozen=True, slots=True)
class HttpClientConfig:
    """Limits of the invoker's HTTP client.

    Attributes:
        concurrency_per_deployment: Most attempts in flight against one deployment.
        max_connections: Most connections in total (all deployments).
        connect_timeout_ms: Longest a TCP (and TLS) connect may take; also bounded by
            each attempt's own timeouts.
        keepalive_timeout_s: How long an idle pooled connection is kept. Below the
            usual server-side idle limits (hypercorn and uvicorn keep 5 s), to avoid
            reusing a connection the server is just closing.
    """

    concurrency_per_deployment: int = 100
    max_connections: int = 1000
    connect_timeout_ms: int = 10_000
    keepalive_timeout_s: float = 4.0

    def __post_init__(self) -> None:
        if self.concurrency_per_deployment < 1 or self.max_connections < 1:
            raise ValueError("concurrency and connection limits must be at least 1")
        if self.connect_timeout_ms <= 0 or self.keepalive_timeout_s <= 0:
            raise ValueError("timeouts must be positive")


def create_http_session(
    config: HttpClientConfig = HttpClientConfig(),
    resolver: AbstractResolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Http1Client:
    """The invoker's pooled HTTP/1.1 client; call with a running event loop.

    ``resolver`` resolves endpoint host names (the engine passes one that refuses the
    addresses its deployment policy denies, see :mod:`engine.metadata.address_policy`).
    ``ssl_context`` verifies ``https://`` endpoints (see :mod:`.tls`); default: the
    system's CAs.

    Read timeouts are left to the session (per attempt, see :mod:`.session`); only the
    connect step has a client-wide bound.
    """
    return Http1Client(
        resolver=resolver,
        max_connections=config.max_connections,
        connect_timeout_s=config.connect_timeout_ms / 1000,
        keepalive_timeout_s=config.keepalive_timeout_s,
        user_agent=f"logstrate/{__version__}",
        tls=ssl_context,
    )


class Invoker:
    """Runs attempts against service endpoints, at most N at a time per deployment.

    Args:
        http: The client session (see :func:`create_http_session`); not closed by the
            invoker unless it was made by :meth:`open`.
        emit: Makes each record durable; shared by every attempt (see :mod:`.session`).
        resolve_call: Resolves the targets of call commands (see :mod:`.session`).
        concurrency_per_deployment: Most attempts in flight per deployment base URL.
        identity: Signs every attempt's request (see :mod:`.identity`); ``None``: unsigned.
        http2: The HTTP/2 client for bidirectional attempts (``invoker_http2``); without
            it every attempt runs in request/response mode over HTTP/1.1.
        liveness: No request leaves right after the process was stalled (see
            :mod:`.liveness`); ``None``: not watched.
    """

    def __init__(
        self,
        http: Http1Client,
        emit: Emit,
        *,
        concurrency_per_deployment: int = 100,
        resolve_call: ResolveCall | None = None,
        identity: RequestIdentity | None = None,
        http2: Http2Client | None = None,
        liveness: StallWatch | None = None,
    ) -> None:
        if concurrency_per_deployment < 1:
            raise ValueError("concurrency_per_deployment must be at least 1")
        self._http = http
        self._http2 = http2
        self._emit = emit
        self._resolve_call = resolve_call
        self._identity = identity
        self._guard = liveness.check if liveness is not None else None
        self._limit = concurrency_per_deployment
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._in_flight: dict[str, int] = {}
        self._log = get_logger(__name__)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, emit: Emit, config: HttpClientConfig = HttpClientConfig()
    ) -> AsyncIterator[Invoker]:
        """An invoker with its own HTTP client session, closed on exit."""
        http = create_http_session(config)
        try:
            yield cls(http, emit, concurrency_per_deployment=config.concurrency_per_deployment)
        finally:
            await http.close()

    def in_flight(self, base_url: str) -> int:
        """Attempts currently running (not queued) against a deployment."""
        return self._in_flight.get(_deployment_key(base_url), 0)

    @property
    def streams(self) -> bool:
        """Whether bidirectional attempts are possible (an HTTP/2 client is set)."""
        return self._http2 is not None

    async def invoke(self, task: InvocationTask, channel: AttemptChannel | None = None) -> AttemptOutcome:
        """Run one attempt of ``task``, waiting for a free slot of its deployment first.

        A task for a bidirectional endpoint runs as an HTTP/2 stream when this invoker
        has an HTTP/2 client and the caller gave a ``channel``; otherwise (and always
        with ``invoker_http2`` off) in request/response mode over HTTP/1.1.
        Returns and raises like :func:`engine.invoker.session.run_attempt`.
        """
        key = _deployment_key(task.endpoint.base_url)
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(self._limit)
        log = self._log.bind(
            invocation_id=str(task.invocation_id),
            service=task.service,
            handler=task.handler,
            endpoint=key,
        )
        if slots.locked():
            log.debug("deployment at its concurrency limit; attempt queued", limit=self._limit)
        async with slots:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            try:
                if task.endpoint.bidi and self._http2 is not None and channel is not None:
                    return await run_stream_attempt(
                        task, self._http2, self._emit, channel, self._resolve_call, self._identity, self._guard
                    )
                return await run_attempt(
                    task, self._http, self._emit, self._resolve_call, self._identity, self._guard
                )
            finally:
                self._in_flight[key] -= 1


def _deployment_key(base_url: str) -> str:
    # "http://svc:9080" and "http://svc:9080/" are the same deployment.
    return base_url.rstrip("/")
