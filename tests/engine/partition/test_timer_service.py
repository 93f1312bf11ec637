"""The leader's timer service fires due timers in order; a cancelled one never fires."""

from __future__ import annotations

import asyncio

from engine.ids import InvocationId, InvocationUuid, PartitionKey
from engine.partition.leader.timers import TimerService
from engine.wal import records as r

NOW_MS = 1_700_000_000_000


def _timer(n: int, fire_at_ms: int) -> r.TimerKey:
    invocation = InvocationId(PartitionKey(n), InvocationUuid.derive("timer-test", str(n)))
    return r.TimerKey(fire_at_ms, invocation, r.TimerKind.SLEEP, n)


def test_cancelled_timers_do_not_fire() -> None:
    fired: list[r.TimerKey] = []
    clock_ms = [NOW_MS]

    async def append(record: r.Record) -> int:
        assert isinstance(record, r.TimerFired)
        fired.append(record.timer)
        return len(fired)

    async def main() -> None:
        service = TimerService(0, append, clock=lambda: clock_ms[0] / 1000)
        first, second, third = _timer(1, NOW_MS - 2), _timer(2, NOW_MS - 1), _timer(3, NOW_MS + 60_000)
        for timer in (third, second, first):
            service.schedule(timer)
        assert service.cancel(second) and not service.cancel(second)
        assert service.cancel(third)
        task = asyncio.create_task(service.run())
        for _ in range(100):
            if fired:
                break
            await asyncio.sleep(0.01)
        clock_ms[0] += 120_000  # everything left would be due now
        service.schedule(_timer(4, NOW_MS + 90_000))
        for _ in range(100):
            if len(fired) == 2:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert len(service) == 0

    asyncio.run(main())
    assert [t.invocation_id.partition_key for t in fired] == [1, 4]
