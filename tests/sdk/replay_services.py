"""Services (our SDK) for the replay determinism tests (``tests/sdk/test_replay_determinism.py``).

Serve with ``hypercorn tests.sdk.replay_services:app``.

- ``SdkReplay/steps``: ten ``ctx.run`` steps; each POSTs ``{"token", "step", "seed"}`` to
  the test's step server, which answers a fresh value (and may hold a step until the test
  lets it go). The handler's result is every step's value plus a seed drawn from
  ``ctx.random()`` before the first step, so a resumed run that replays differently, or
  runs a journaled step again, shows up in the result or in the server's counts.
- ``SdkReplay/nondeterministic``: names its first step after a per-process attempt
  counter, a bug on purpose: the second attempt's step differs from the journaled one.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from typing import Any

import sdk

STEPS = 10

replay = sdk.Service("SdkReplay")

#: Attempts per token in this endpoint process (the non-determinism under test).
_attempts: Counter[str] = Counter()


def _step(url: str, token: str, step: int, seed: float) -> str:
    payload = json.dumps({"token": token, "step": step, "seed": seed}).encode()
    request = urllib.request.Request(
        f"{url}/step", data=payload, method="POST", headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        value: str = json.loads(response.read())["value"]
    return value


@replay.handler()
async def steps(ctx: sdk.Context, job: dict[str, Any]) -> dict[str, Any]:
    """Run :data:`STEPS` journaled steps against the test's step server."""
    seed = ctx.random().random()
    values: list[str] = []
    for step in range(STEPS):
        value = await ctx.run_typed(
            f"step-{step}", _step, sdk.RunOptions(), str(job["url"]), str(job["token"]), step, seed
        )
        values.append(value)
    return {"seed": seed, "values": values}


@replay.handler()
async def nondeterministic(ctx: sdk.Context, token: str) -> str:
    """Journals ``charge-<token>-1`` on the first attempt, ``...-2`` on the next one."""
    _attempts[token] += 1
    await ctx.run(f"charge-{token}-{_attempts[token]}", lambda: "charged")
    await ctx.run("receipt", lambda: "sent")
    return "never consistent"


app = sdk.app([replay])
