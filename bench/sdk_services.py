"""The overhead benchmark's handlers written with logstrate's own SDK (``sdk/``).

The same handlers as ``bench/services.py`` (official ``restate-sdk``), under another
service name so both endpoints can be registered with one engine:

- ``SdkBench/noop``: returns its input.
- ``SdkBench/ten_steps``: ten sequential ``ctx.run_typed`` steps, each a trivial async
  function depending on the previous result.

Serve it with ``hypercorn bench.sdk_services:app``.
"""

from __future__ import annotations

import sdk

STEPS = 10
"""How many ``ctx.run`` steps ``SdkBench/ten_steps`` takes."""

sdk_bench = sdk.Service("SdkBench")


@sdk_bench.handler()
async def noop(ctx: sdk.Context, x: str) -> str:
    """Return the input unchanged."""
    return x


async def _increment(value: int) -> int:
    return value + 1


@sdk_bench.handler()
async def ten_steps(ctx: sdk.Context, x: str) -> str:
    """Run :data:`STEPS` sequential side effects, each depending on the previous result."""
    value = 0
    for step in range(STEPS):
        value = await ctx.run_typed(f"step-{step}", _increment, value=value)
    return f"{x}:{value}"


app = sdk.app([sdk_bench])
