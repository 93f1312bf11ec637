"""Tables ``outbox`` (sequence-ordered records, truncation) and ``dedup`` (highest per producer)."""

from __future__ import annotations

from engine.storage.environment import StorageEnvironment
from engine.storage.outbox import OutboxMessage
from engine.storage.tables import TableHandles
from engine.wal import records as r
from tests.engine.storage.helpers import iid, read, write

Storage = tuple[StorageEnvironment, TableHandles]

INVOKE = r.Invoke(
    invocation_id=iid(5, partition_key=2**64 - 1),
    target=r.InvocationTarget("Greeter", "greet", None, r.ServiceKind.SERVICE),
    argument=b'"Ada"',
    source=r.InvocationSource(iid(1), 3),
    response_sink=r.InvocationSink(iid(1), 4),
)
NOTIFY = r.Notify(iid(1), r.CompletionId(4), r.Value(b"hi"))


def test_outbox_put_scan_truncate(storage: Storage) -> None:
    messages = [
        OutboxMessage(seq, 2**64 - 1 - seq, INVOKE if seq % 2 else NOTIFY) for seq in range(5)
    ]
    with write(storage) as t:
        for message in reversed(messages):
            t.outbox.put(message)
    with write(storage, 1) as t:
        t.outbox.put(OutboxMessage(0, 1, NOTIFY))
    with read(storage) as t:
        assert list(t.outbox.scan()) == messages
        assert list(t.outbox.scan(3)) == messages[3:]
        assert t.outbox.get(1) == messages[1]
    with write(storage) as t:
        assert t.outbox.truncate(-1) == 0
        assert t.outbox.truncate(2) == 3
        assert t.outbox.truncate(2) == 0
        assert t.outbox.get(2) is None
        assert list(t.outbox.scan()) == messages[3:]
    with read(storage, 1) as t:
        assert [m.sequence for m in t.outbox.scan()] == [0]


def test_dedup_keeps_highest_per_producer(storage: Storage) -> None:
    with write(storage) as t:
        assert t.dedup.highest("outbox/1") is None
        assert not t.dedup.is_duplicate("outbox/1", 0)
        t.dedup.store("outbox/1", 5)
        t.dedup.store("sub/x" * 200, 1)
    with read(storage) as t:
        assert t.dedup.is_duplicate("outbox/1", 5)
        assert t.dedup.is_duplicate("outbox/1", 0)
        assert not t.dedup.is_duplicate("outbox/1", 6)
        assert not t.dedup.is_duplicate("outbox/2", 0)
        assert t.dedup.highest("sub/x" * 200) == 1
    with read(storage, 1) as t:
        assert t.dedup.highest("outbox/1") is None
