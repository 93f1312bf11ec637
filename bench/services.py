"""The benchmark's service endpoint, written with the official Restate Python SDK.

The same app is served (by hypercorn over HTTP/1.1, so the SDK runs in request/response
mode) to logstrate and to the real restate-server, so both engines drive identical handler
code and the differences measured are the engines' own.

- ``Bench/noop``: returns its input; the journal is only input and output.
- ``Bench/ten_steps``: ten sequential ``ctx.run`` steps, each a trivial async function; in
  request/response mode every step is a durable journal entry and a round trip.
- ``Bench/three_steps``: three ``ctx.run`` steps, the last of which reports the job done to
  the bench's completion counter (see :func:`_report`); called through ``/send``.
- ``Bench/sleep_then_record``: a durable ``ctx.sleep`` of the job's ``sleep_ms``, then the
  same report step (the kill -9 recovery phase).
- ``Bench/timers``: :data:`TIMERS` concurrent ``ctx.sleep`` s of 10-50 ms, awaited together.
- ``BenchCounter/{key}/add``: a virtual-object read-modify-write of one state entry;
  ``BenchCounter/{key}/get`` (shared) reads it.
- ``BenchEvents/{key}/noop`` and ``/count``: Kafka-subscription sinks (``bench/subscriptions.py``):
  ``noop`` does nothing except remember a ``{"done": true}`` marker event, ``count``
  increments the key's ``count``; ``BenchEvents/{key}/progress`` reads both.

A job (``three_steps``, ``sleep_then_record``) is ``{"tag": str, "id": int, "report": url}``:
its report step POSTs ``{"tag", "id"}`` to ``report``, a tiny HTTP server in the bench
process, which counts distinct ids per tag. Both systems pay the same for it (one loopback
HTTP call inside a ``ctx.run``), and the bench learns of completions without polling.

``app`` also answers ``GET /bench/requests`` with how many requests this endpoint process
has served so far per HTTP version (``{"1.1": n, "2": m}``), so the bench can tell how many
attempts an invocation took (request/response) or whether one stream carried it (HTTP/2).

Serve it with ``hypercorn bench.services:app`` (hypercorn speaks HTTP/1.1 and, to clients
that start with the HTTP/2 preface, h2c, on the same port).
"""

from __future__ import annotations

import collections
import json
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import timedelta
from typing import Any

import aiohttp
import restate

STEPS = 10
"""How many ``ctx.run`` steps ``Bench/ten_steps`` takes."""
TIMERS = 20
"""How many concurrent sleeps one ``Bench/timers`` call starts."""


def timer_ms(i: int) -> int:
    """The duration of sleep ``i`` of ``Bench/timers``: deterministic, 10..50 ms."""
    return 10 + (i * 2) % 41

bench = restate.Service("Bench")
bench_counter = restate.VirtualObject("BenchCounter")


@bench.handler()
async def noop(ctx: restate.Context, x: str) -> str:
    """Return the input unchanged."""
    return x


async def _increment(value: int) -> int:
    return value + 1


@bench.handler()
async def ten_steps(ctx: restate.Context, x: str) -> str:
    """Run :data:`STEPS` sequential side effects, each depending on the previous result."""
    value = 0
    for step in range(STEPS):
        value = await ctx.run_typed(f"step-{step}", _increment, value=value)
    return f"{x}:{value}"


_report_session: aiohttp.ClientSession | None = None


async def _report(url: str, tag: str, job_id: int) -> bool:
    """Tell the bench's completion counter that job ``job_id`` of run ``tag`` is done."""
    global _report_session
    if _report_session is None or _report_session.closed:
        _report_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    async with _report_session.post(url, json={"tag": tag, "id": job_id}) as resp:
        if resp.status != 200:
            raise RuntimeError(f"completion counter answered {resp.status}")
    return True


async def _record(ctx: restate.Context, job: dict[str, Any]) -> None:
    await ctx.run_typed("report", _report, url=str(job["report"]), tag=str(job["tag"]), job_id=int(job["id"]))


@bench.handler()
async def three_steps(ctx: restate.Context, job: dict[str, Any]) -> int:
    """Three ``ctx.run`` steps; the last one reports the job done."""
    value = await ctx.run_typed("step-1", _increment, value=0)
    value = await ctx.run_typed("step-2", _increment, value=value)
    await _record(ctx, job)
    return value


@bench.handler()
async def sleep_then_record(ctx: restate.Context, job: dict[str, Any]) -> None:
    """Sleep ``job["sleep_ms"]`` durably, then report the job done."""
    await ctx.sleep(timedelta(milliseconds=int(job["sleep_ms"])))
    await _record(ctx, job)


@bench.handler()
async def timers(ctx: restate.Context, x: str) -> int:
    """Start :data:`TIMERS` sleeps of :func:`timer_ms` at once and wait for all of them."""
    await restate.gather(*(ctx.sleep(timedelta(milliseconds=timer_ms(i))) for i in range(TIMERS)))
    return TIMERS


@bench_counter.handler()
async def add(ctx: restate.ObjectContext, delta: int) -> int:
    """Add ``delta`` to the object's ``count`` state and return the new value."""
    value = (await ctx.get("count", type_hint=int) or 0) + delta
    ctx.set("count", value)
    return value


@bench_counter.handler(name="get", kind="shared")
async def get_count(ctx: restate.ObjectSharedContext) -> int:
    """The object's ``count`` (0 before the first ``add``)."""
    return await ctx.get("count", type_hint=int) or 0


bench_events = restate.VirtualObject("BenchEvents")


@bench_events.handler()
async def noop(ctx: restate.ObjectContext, event: dict[str, object]) -> None:
    """Nothing per event; the one marker event per key after the measured ones is remembered."""
    if event.get("done"):
        ctx.set("done", True)


@bench_events.handler()
async def count(ctx: restate.ObjectContext, event: dict[str, object]) -> None:
    """Count the event (a read-modify-write of one state entry)."""
    ctx.set("count", (await ctx.get("count", type_hint=int) or 0) + 1)


@bench_events.handler(kind="shared")
async def progress(ctx: restate.ObjectSharedContext) -> dict[str, object]:
    """What the bench polls: the marker flag and the count."""
    return {"done": await ctx.get("done", type_hint=bool) or False, "count": await ctx.get("count", type_hint=int) or 0}


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def count_requests(inner: ASGIApp) -> ASGIApp:
    """Wrap ``inner``: count HTTP requests per HTTP version, serve the counts at ``GET /bench/requests``."""
    served: collections.Counter[str] = collections.Counter()

    async def counting_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/requests":
            body = json.dumps(served).encode()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "http" and scope["path"].startswith("/invoke/"):
            served[str(scope.get("http_version", "?"))] += 1
        await inner(scope, receive, send)

    return counting_app


app = count_requests(restate.app(services=[bench, bench_counter, bench_events]))
