"""The benchmark's service endpoint, written with the official Restate Python SDK.

The same app is served (by hypercorn over HTTP/1.1, so the SDK runs in request/response
mode) to logstrate and to the real restate-server, so both engines drive identical handler
code and the differences measured are the engines' own.

- ``Bench/noop``: returns its input; the journal is only input and output.
- ``Bench/ten_steps``: ten sequential ``ctx.run`` steps, each a trivial async function; in
  request/response mode every step is a durable journal entry and a round trip.
- ``BenchCounter/{key}/add``: a virtual-object read-modify-write of one state entry.
- ``BenchEvents/{key}/noop`` and ``/count``: Kafka-subscription sinks (``bench/subscriptions.py``):
  ``noop`` does nothing except remember a ``{"done": true}`` marker event, ``count``
  increments the key's ``count``; ``BenchEvents/{key}/progress`` reads both.

Serve it with ``hypercorn bench.services:app``.
"""

from __future__ import annotations

import restate

STEPS = 10
"""How many ``ctx.run`` steps ``Bench/ten_steps`` takes."""

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


@bench_counter.handler()
async def add(ctx: restate.ObjectContext, delta: int) -> int:
    """Add ``delta`` to the object's ``count`` state and return the new value."""
    value = (await ctx.get("count", type_hint=int) or 0) + delta
    ctx.set("count", value)
    return value


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


app = restate.app(services=[bench, bench_counter, bench_events])
