"""HTTP requests waiting for their invocation's result on this engine process.

The ``Invoke`` record names this process and a request id as its response sink; when the
partition's leader applies the end of the invocation it resolves the waiting future here
(directly when it is this process). A client that disconnects only drops its future: the
invocation itself continues and its result stays retained in the partition.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from typing import TypeAlias

from engine.ids import InvocationId
from engine.partition.actions import Submitted
from engine.wal.records import OutputResult, Void

__all__ = ["Answer", "PendingResponses"]

Answer: TypeAlias = OutputResult | Void | Submitted
"""What a waiting request gets: a result, ``Void`` for an output query of an
invocation that has not completed yet, or ``Submitted`` for a send with a derived id."""


class PendingResponses:
    """Futures of in-flight ingress calls, keyed by request id. Event-loop only."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[Answer]] = {}
        # Request ids are a random prefix of this process's life plus a counter: unique
        # across restarts (a late answer for a request of an earlier run must never
        # complete a new one) without drawing random bytes per request.
        self._prefix = secrets.token_hex(8)
        self._issued = itertools.count()

    def fresh_id(self) -> str:
        """An id no other request of any process run gets."""
        return f"{self._prefix}{next(self._issued):x}"

    def register(self) -> tuple[str, asyncio.Future[Answer]]:
        """A fresh request id and the future its result will complete."""
        request_id = self.fresh_id()
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        return request_id, future

    def discard(self, request_id: str) -> None:
        """Forget a request whose client went away or whose append failed."""
        future = self._waiting.pop(request_id, None)
        if future is not None and not future.done():
            future.cancel()

    def resolve(self, request_id: str, invocation_id: InvocationId, result: Answer) -> bool:
        """Complete a waiting request; False if nobody waits for it here (any more)."""
        future = self._waiting.pop(request_id, None)
        if future is None or future.done():
            return False
        future.set_result(result)
        return True

    def __len__(self) -> int:
        return len(self._waiting)
