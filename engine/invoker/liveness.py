"""No request to an endpoint right after this process was stalled (a frozen zombie).

A partition leader holds its leadership by the WAL consumer group's session: the group
moves the partitions of a member that stopped heart-beating for ``session.timeout.ms``.
A process frozen for that long (SIGSTOP, a VM paused, a swap storm) is replaced, and
when it thaws, every coroutine resumes where it stopped, before its consumer has heard
that it lost the partitions. Its records are harmless (they carry the old epoch and are
ignored when applied), but an attempt that was about to send its request would hand the
endpoint a start with a journal that is no longer the log's, and the SDK would run a
side effect again that the new leader had already journaled.

:class:`StallWatch` notices such stalls on the event loop's own clock: a ticker records
when it last ran, and a gap of ``stall_s`` or more (well below the session timeout minus
a heartbeat interval, the shortest freeze that can cost the leadership) opens a
quarantine of ``quarantine_s`` (long enough for the consumer to learn about a lost
session and stop the leaders). Attempts call :meth:`StallWatch.check` right before their
request leaves, after their last ``await``, and a bidirectional stream calls it again
before each later write into the open stream (a notification or an ack): a stall that
has not been seen by the ticker yet is seen there, because the monotonic clock kept
running while the process was frozen. What remains is a freeze between that check and the write itself, a few
microseconds of code instead of an attempt's whole start.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from engine.logs import get_logger

__all__ = ["StallWatch", "Stalled"]

log = get_logger(__name__)

TICK_S: Final = 0.5
STALL_S: Final = 3.0
QUARANTINE_S: Final = 3.0


class Stalled(Exception):
    """This process was stalled a moment ago; its leadership may have moved."""


class StallWatch:
    """See the module docstring; :meth:`start` and :meth:`stop` on the event loop."""

    def __init__(self, *, tick_s: float = TICK_S, stall_s: float = STALL_S, quarantine_s: float = QUARANTINE_S) -> None:
        if not 0 < tick_s < stall_s:
            raise ValueError("the tick must be shorter than the stall it detects")
        self._tick_s = tick_s
        self._stall_s = stall_s
        self._quarantine_s = quarantine_s
        self._last_tick: float | None = None
        self._quarantine_until = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_tick = loop.time()
        self._task = loop.create_task(self._tick(), name="stall-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._tick_s)
            self._observe(loop.time())

    def _observe(self, now: float) -> None:
        if self._last_tick is not None and now - self._last_tick >= self._stall_s:
            if now >= self._quarantine_until:
                log.warning(
                    "this process was stalled; no endpoint requests for a moment (its partition "
                    "leaderships may have moved)",
                    stalled_s=round(now - self._last_tick, 3), quarantine_s=self._quarantine_s,
                )
            self._quarantine_until = now + self._quarantine_s
        self._last_tick = max(now, self._last_tick or now)

    def check(self) -> None:
        """Raise :class:`Stalled` if a request must not leave now (see the module docstring)."""
        if self._last_tick is None:
            return  # not started: nothing watched (unit tests of the invoker)
        now = asyncio.get_running_loop().time()
        if now - self._last_tick >= self._stall_s:
            self._quarantine_until = now + self._quarantine_s
        if now < self._quarantine_until:
            raise Stalled(
                f"this process was stalled (its event loop did not run for {self._stall_s:g} s or more) "
                f"less than {self._quarantine_s:g} s ago; its partition leadership may have moved, so no "
                "request goes to the endpoint now (the invocation is retried)"
            )
