"""Tables ``inbox`` (FIFO per key) and ``locks`` (holder per key)."""

from __future__ import annotations

from engine.storage.environment import StorageEnvironment
from engine.storage.inbox import InboxEntry
from engine.storage.tables import TableHandles
from tests.engine.storage.helpers import iid, read, write

Storage = tuple[StorageEnvironment, TableHandles]


def test_inbox_is_fifo_per_key(storage: Storage) -> None:
    with write(storage) as t:
        t.inbox.push("Obj", "a", 0, iid(1))
        t.inbox.push("Obj", "b", 1, iid(2))
        t.inbox.push("Obj", "a", 2, iid(3))
        t.inbox.push("Obj", "a", 300, iid(4))
    with write(storage) as t:
        assert t.inbox.entries("Obj", "a") == [
            InboxEntry(0, iid(1)),
            InboxEntry(2, iid(3)),
            InboxEntry(300, iid(4)),
        ]
        assert t.inbox.peek("Obj", "a") == InboxEntry(0, iid(1))
        assert t.inbox.pop("Obj", "a") == InboxEntry(0, iid(1))
        assert t.inbox.remove("Obj", "a", 300)
        assert not t.inbox.remove("Obj", "a", 300)
        assert t.inbox.pop("Obj", "a") == InboxEntry(2, iid(3))
        assert t.inbox.pop("Obj", "a") is None
    with read(storage) as t:
        assert t.inbox.entries("Obj", "b") == [InboxEntry(1, iid(2))]
        assert t.inbox.peek("Obj", "a") is None


def test_locks(storage: Storage) -> None:
    with write(storage) as t:
        assert t.locks.holder("Obj", "a") is None
        t.locks.acquire("Obj", "a", iid(1))
    with read(storage) as t:
        assert t.locks.holder("Obj", "a") == iid(1)
        assert t.locks.holder("Obj", "b") is None
    with read(storage, 1) as t:
        assert t.locks.holder("Obj", "a") is None
    with write(storage) as t:
        assert t.locks.release("Obj", "a")
        assert not t.locks.release("Obj", "a")
        assert t.locks.holder("Obj", "a") is None
