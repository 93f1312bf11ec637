"""The leader's timer service: appends ``TimerFired`` for each timer when it is due.

Timers live in LMDB (the state machine writes them); the leader keeps the pending ones in
a heap. Firing twice is harmless: the state machine ignores ``TimerFired`` for a timer
it no longer has, which is what makes restarts and leader changes safe.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Awaitable, Callable, Iterable

from engine.logs import get_logger
from engine.wal.records import Record, TimerFired, TimerKey

log = get_logger(__name__)

Append = Callable[[Record], Awaitable[int]]


class TimerService:
    """Fires one partition's timers through ``append`` (epoch-stamped by the caller)."""

    def __init__(self, partition: int, append: Append, clock: Callable[[], float] = time.time) -> None:
        self._partition = partition
        self._append = append
        self._clock = clock
        self._heap: list[tuple[int, int, TimerKey]] = []
        self._seq = 0
        self._changed = asyncio.Event()

    def schedule(self, timer: TimerKey) -> None:
        """Add a timer; an earlier one than the current head wakes the loop."""
        self._seq += 1
        heapq.heappush(self._heap, (timer.fire_at_ms, self._seq, timer))
        self._changed.set()

    def cancel(self, timer: TimerKey) -> bool:
        """Forget a scheduled timer (its invocation ended); True if it was scheduled.

        Linear in the number of scheduled timers: cancellations come with the end of
        an invocation that had a timer pending, which is rare next to firings.
        """
        kept = [entry for entry in self._heap if entry[2] != timer]
        if len(kept) == len(self._heap):
            return False
        heapq.heapify(kept)
        self._heap = kept
        self._changed.set()
        return True

    def load(self, timers: Iterable[TimerKey]) -> None:
        """Schedule every timer the partition has (on becoming leader)."""
        for timer in timers:
            self.schedule(timer)

    def __len__(self) -> int:
        return len(self._heap)

    async def run(self) -> None:
        """Fire due timers until cancelled."""
        while True:
            self._changed.clear()
            if not self._heap:
                await self._changed.wait()
                continue
            due_ms, _, timer = self._heap[0]
            wait_s = due_ms / 1000 - self._clock()
            if wait_s > 0:
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout=wait_s)
                except TimeoutError:
                    pass
                continue
            # Every timer due now fires in one go: handed to the WAL together, they share
            # a produce request instead of waiting out one round trip each.
            due = [heapq.heappop(self._heap)[2]]
            now_ms = int(self._clock() * 1000)
            while self._heap and self._heap[0][0] <= now_ms:
                due.append(heapq.heappop(self._heap)[2])
            fired = [asyncio.ensure_future(self._append(TimerFired(timer))) for timer in due]
            for timer, outcome in zip(due, await asyncio.gather(*fired, return_exceptions=True)):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                if isinstance(outcome, Exception):
                    # Retried below; the timer is still in LMDB.
                    log.warning("timer fire append failed; retrying", partition=self._partition, error=str(outcome))
                    self._seq += 1
                    heapq.heappush(self._heap, (int(self._clock() * 1000) + 500, self._seq, timer))
