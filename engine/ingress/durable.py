"""Appending an ingress record to the WAL within the ingress's bound, and the answers when
Kafka does not take it.

The WAL producer retries a record for its whole delivery timeout (30 s); a caller should
not wait that long to learn that Kafka is down. So the ingress:

* does not hand a record over at all while :class:`~engine.wal.health.WalHealth` knows
  the brokers are down (one probe a second goes through), nor when the producer's local
  queue is full: **503, not accepted** — nothing was handed to Kafka, nothing will run;
* waits at most ``ingress_kafka_timeout_s`` (default 5 s) for the acknowledgement; past
  it, **503, outcome unknown** — the record is still in the producer's queue and may be
  appended later (then the invocation runs). The answer says so and names the
  invocation (``x-restate-id``): a retry with the same ``idempotency-key`` reaches the
  same invocation (it attaches to it, or gets its kept result) and so never runs it
  twice; without an idempotency key a retry may run the handler again;
* answers a record over the WAL's size limit with **413** naming the limit.

Every such answer carries ``Retry-After`` and ``x-logstrate-accepted: false|unknown``.
"""

from __future__ import annotations

import asyncio
import math
from typing import Final

from aiohttp import web

from engine.ingress.deps import IngressDeps, error_response
from engine.ingress.metrics import KAFKA_REFUSED
from engine.wal.appender import WalAppendError, WalRecordTooLarge
from engine.wal.records import Record

__all__ = ["ACCEPTED_HEADER", "await_durable", "refuse_if_down", "submit", "too_large"]

ACCEPTED_HEADER: Final = "x-logstrate-accepted"
"""On a 503: ``false`` (nothing was appended) or ``unknown`` (it may still be)."""


def _retry_after(deps: IngressDeps) -> str:
    return str(max(1, math.ceil(deps.kafka_timeout_s)))


def _not_accepted(deps: IngressDeps, what: str, why: str) -> web.Response:
    KAFKA_REFUSED.labels("false").inc()
    return error_response(
        503,
        f"Kafka is not available ({why}): the {what} was not accepted and nothing of it will run; "
        f"retry in {_retry_after(deps)}s",
        headers={"retry-after": _retry_after(deps), ACCEPTED_HEADER: "false"},
    )


def too_large(size: int | None, limit: int | None, what: str) -> web.Response:
    """413 for a request whose record would not fit in one WAL record (``limit`` None:
    the broker refused it, over the WAL topic's ``max.message.bytes``)."""
    size_text = "" if size is None else f"{size} bytes, "
    limit_text = (
        "the WAL topic's max.message.bytes at the broker" if limit is None
        else f"its limit of {limit} bytes per record (Kafka message.max.bytes of the WAL producer)"
    )
    return error_response(
        413,
        f"the {what} is too large for the WAL: {size_text}over {limit_text}; send a smaller body, or raise "
        "message.max.bytes in [kafka.properties] together with the WAL topic's max.message.bytes",
    )


def refuse_if_down(deps: IngressDeps, what: str) -> web.Response | None:
    """The 503 to give at once while Kafka is known to be down, else ``None`` (go ahead)."""
    health = deps.appender.health
    if health.admit():
        return None
    return _not_accepted(deps, what, f"down for {health.down_for_s():.0f}s: {health.reason}")


def submit(deps: IngressDeps, partition: int, record: Record) -> asyncio.Future[int]:
    """Hand ``record`` to the WAL without waiting for room in a full producer queue."""
    return deps.appender.submit(partition, record, wait_s=0)


_ANSWER_MARGIN_S: Final = 0.25
"""Taken off the bound for writing the answer (and the loop's lag under load), so the
caller has it within ``ingress_kafka_timeout_s`` of sending the request."""


async def await_durable(
    deps: IngressDeps, appended: asyncio.Future[int], what: str, invocation_id: str | None = None,
    started: float | None = None,
) -> web.Response | None:
    """Wait for ``appended`` within the ingress bound, counted from ``started`` (the
    loop's clock when the request arrived; default now): ``None`` once durable, else the
    answer to give (413 or 503, see the module docstring). A client that disconnects
    meanwhile does not cancel the append."""
    if not appended.done():
        loop = asyncio.get_running_loop()
        begun = loop.time() if started is None else started
        wait_s = max(0.05, begun + deps.kafka_timeout_s - _ANSWER_MARGIN_S - loop.time())
        await _wait(loop, appended, wait_s)
    if not appended.done():
        deps.appender.health.failed(f"no acknowledgement within {deps.kafka_timeout_s:g}s")
        # Retrieve the eventual exception so asyncio does not report it as unhandled.
        appended.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        KAFKA_REFUSED.labels("unknown").inc()
        headers = {"retry-after": _retry_after(deps), ACCEPTED_HEADER: "unknown"}
        if invocation_id is not None:
            headers["x-restate-id"] = invocation_id
        return error_response(
            503,
            f"Kafka did not acknowledge the {what} within {deps.kafka_timeout_s:g}s (it is unavailable or "
            "overloaded); the outcome is unknown: it may still be accepted and run. Retry with the same "
            "idempotency-key header: the retry reaches the same invocation (it attaches to it or returns its "
            "result), so it never runs twice; without an idempotency key a retry may run it again",
            headers=headers,
        )
    exc = appended.exception()
    if exc is None:
        return None
    if isinstance(exc, WalRecordTooLarge):
        return too_large(exc.size, exc.limit, what)
    if isinstance(exc, WalAppendError):
        return _not_accepted(deps, what, str(exc))
    raise exc


async def _wait(loop: asyncio.AbstractEventLoop, future: asyncio.Future[int], timeout_s: float) -> None:
    """Until ``future`` is done or ``timeout_s`` passed, whichever comes first; never
    cancels ``future`` (a cancelled caller cancels only its own waiter). One timer and
    one callback: cheaper than ``asyncio.wait`` on the hot path."""
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    timer = loop.call_later(timeout_s, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        future.remove_done_callback(wake)
