"""The stall watch: no endpoint request right after the process was stalled.

A stall is made the way a frozen process experiences it: the event loop does not run
(here a blocking ``time.sleep`` on the loop's thread stands in for SIGSTOP; the real
SIGSTOP of a leader is ``tests/chaos/test_zombie_leader.py``).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.invoker.liveness import Stalled, StallWatch


async def _a_stall_opens_a_quarantine_seen_before_and_after_the_ticker_runs() -> None:
    watch = StallWatch(tick_s=0.02, stall_s=0.2, quarantine_s=0.3)
    watch.start()
    try:
        await asyncio.sleep(0.05)
        watch.check()  # running normally
        time.sleep(0.25)  # the stall: nothing on the loop runs
        # First thing after the stall, before the ticker had a chance: refused.
        with pytest.raises(Stalled, match="stalled"):
            watch.check()
        await asyncio.sleep(0.05)  # the ticker has seen it too now: still refused
        with pytest.raises(Stalled):
            watch.check()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while True:  # the quarantine ends
            try:
                watch.check()
                break
            except Stalled:
                assert loop.time() < deadline, "the quarantine never ended"
                await asyncio.sleep(0.02)
    finally:
        await watch.stop()


def test_a_stall_opens_a_quarantine_seen_before_and_after_the_ticker_runs() -> None:
    asyncio.run(_a_stall_opens_a_quarantine_seen_before_and_after_the_ticker_runs())


def test_an_unstarted_watch_allows_everything() -> None:
    async def main() -> None:
        StallWatch().check()

    asyncio.run(main())
