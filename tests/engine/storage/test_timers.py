"""Table ``timers``: ordered by fire time (negative times too), due scans, deletes."""

from __future__ import annotations

from engine.storage.environment import StorageEnvironment
from engine.storage.tables import TableHandles
from engine.wal.records import TimerKey, TimerKind
from tests.engine.storage.helpers import iid, read, write

Storage = tuple[StorageEnvironment, TableHandles]


def test_scan_in_fire_order_and_due(storage: Storage) -> None:
    timers = [
        TimerKey(5_000, iid(1), TimerKind.SLEEP, 3),
        TimerKey(1_000, iid(2), TimerKind.RETRY),
        TimerKey(-10, iid(3), TimerKind.DELAYED_INVOKE),
        TimerKey(5_000, iid(1), TimerKind.SLEEP, 4),
        TimerKey(9_000, iid(1), TimerKind.CLEANUP),
    ]
    with write(storage) as t:
        for timer in timers:
            t.timers.put(timer)
    with write(storage, 1) as t:
        t.timers.put(TimerKey(0, iid(9), TimerKind.RETRY))
    with read(storage) as t:
        scanned = list(t.timers.scan())
        assert scanned == sorted(timers, key=lambda k: (k.fire_at_ms, k.completion_id or 0))
        assert t.timers.due(1_000) == scanned[:2]
        assert t.timers.due(4_999) == scanned[:2]
        assert t.timers.due(5_000) == scanned[:4]
        assert t.timers.due(10_000, limit=1) == scanned[:1]
        assert t.timers.due(-11) == []
        assert t.timers.exists(timers[0])


def test_delete(storage: Storage) -> None:
    timer = TimerKey(1, iid(1), TimerKind.SLEEP, 0)
    with write(storage) as t:
        t.timers.put(timer)
        assert t.timers.delete(timer)
        assert not t.timers.delete(timer)
        assert not t.timers.exists(timer)
        # Completion id 0 and no completion id are different timers.
        t.timers.put(TimerKey(1, iid(1), TimerKind.SLEEP, None))
        assert not t.timers.exists(timer)
