"""The greeter, written with logstrate's own SDK (``sdk/``).

The same services as ``official_sdk_greeter.py`` (service ``Greeter``, virtual object
``Counter``); it runs unchanged on logstrate and on restate-server. Serve it with::

    hypercorn examples.greeter.sdk_greeter:app --bind 127.0.0.1:9080

or ``python -m examples.greeter.sdk_greeter`` (aiohttp, port 9080), then register
http://127.0.0.1:9080 with the admin API (``POST /deployments``).
"""

from __future__ import annotations

from datetime import timedelta

import sdk

greeter = sdk.Service("Greeter")


@greeter.handler()
async def greet(ctx: sdk.Context, name: str) -> str:
    # Each step is journaled: after a crash the handler resumes past finished steps.
    count: int = await ctx.run("count greeting", lambda: 1, type_hint=int)
    await ctx.sleep(timedelta(milliseconds=10))
    return f"Hello {name}! (greeting #{count})"


counter = sdk.VirtualObject("Counter")


@counter.handler()
async def add(ctx: sdk.ObjectContext, delta: int) -> int:
    value: int = (await ctx.get("count", type_hint=int) or 0) + delta
    ctx.set("count", value)
    return value


@counter.handler(kind="shared")
async def get(ctx: sdk.ObjectSharedContext) -> int:
    value: int = await ctx.get("count", type_hint=int) or 0
    return value


app = sdk.app([greeter, counter])

if __name__ == "__main__":
    sdk.serve([greeter, counter])
