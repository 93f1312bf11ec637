"""The greeter from Restate's quickstart, written with the official ``restate-sdk``.

It runs unchanged on logstrate and on restate-server. Serve it with hypercorn::

    hypercorn examples.greeter.official_sdk_greeter:app --bind 127.0.0.1:9080

then register http://127.0.0.1:9080 with the engine's admin API (``make dev`` does both).
"""

from __future__ import annotations

from datetime import timedelta

import restate

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    # Each step is journaled: after a crash the handler resumes past finished steps.
    count = await ctx.run_typed("count greeting", lambda: 1)
    await ctx.sleep(timedelta(milliseconds=10))
    return f"Hello {name}! (greeting #{count})"


counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, delta: int) -> int:
    value = (await ctx.get("count", type_hint=int) or 0) + delta
    ctx.set("count", value)
    return value


@counter.handler(kind="shared")
async def get(ctx: restate.ObjectSharedContext) -> int:
    return await ctx.get("count", type_hint=int) or 0


app = restate.app(services=[greeter, counter])
