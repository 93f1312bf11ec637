"""Tables ``journal`` and ``journal_notifications``: ordered entries and the notification index."""

from __future__ import annotations

from engine.storage.environment import StorageEnvironment
from engine.storage.journal import NotificationSlot
from restate_protocol import JournalEntry
from engine.storage.tables import TableHandles
from engine.wal import records as r
from tests.engine.storage.helpers import iid, read, write

Storage = tuple[StorageEnvironment, TableHandles]


def test_entries_in_index_order_per_invocation(storage: Storage) -> None:
    with write(storage) as t:
        # Written out of order, and past 255 to check big-endian ordering.
        for index in (2, 0, 300, 1):
            t.journal.put(iid(1), index, JournalEntry(0x0400 + index % 3, b"m%d" % index))
        t.journal.put(iid(2), 0, JournalEntry(0x0400, b"other"))
    with read(storage) as t:
        assert [i for i, _ in t.journal.entries(iid(1))] == [0, 1, 2, 300]
        assert [i for i, _ in t.journal.entries(iid(1), start=2)] == [2, 300]
        assert t.journal.get(iid(1), 300) == JournalEntry(0x0400, b"m300")
        assert t.journal.get(iid(1), 3) is None
        assert list(t.journal.entries(iid(2))) == [(0, JournalEntry(0x0400, b"other"))]


def test_empty_message_body_round_trips(storage: Storage) -> None:
    with write(storage) as t:
        t.journal.put(iid(1), 0, JournalEntry(0x8000, b""))
    with read(storage) as t:
        assert t.journal.get(iid(1), 0) == JournalEntry(0x8000, b"")


def test_notification_index(storage: Storage) -> None:
    long_name = r.SignalName("n" * 2000)
    with write(storage) as t:
        t.journal.expect_completion(iid(1), 4, 0x8011)
        assert t.journal.slot(iid(1), r.CompletionId(4)) == NotificationSlot(0x8011, None)
        assert not t.journal.has_notification(iid(1), r.CompletionId(4))
        t.journal.record_notification(iid(1), r.CompletionId(4), 6)
        t.journal.record_notification(iid(1), r.SignalIndex(1), 7)
        t.journal.record_notification(iid(1), long_name, 8)
    with read(storage) as t:
        assert t.journal.slot(iid(1), r.CompletionId(4)) == NotificationSlot(0x8011, 6)
        assert t.journal.has_notification(iid(1), r.CompletionId(4))
        assert t.journal.has_notification(iid(1), r.SignalIndex(1))
        assert t.journal.has_notification(iid(1), long_name)
        # Completion 1 and signal 1 are different ids.
        assert not t.journal.has_notification(iid(1), r.CompletionId(1))
        assert not t.journal.has_notification(iid(1), r.SignalName("n"))
        assert not t.journal.has_notification(iid(2), r.CompletionId(4))


def test_delete_all_removes_entries_and_index_of_one_invocation(storage: Storage) -> None:
    with write(storage) as t:
        for index in range(3):
            t.journal.put(iid(1), index, JournalEntry(0x0400, b""))
        t.journal.record_notification(iid(1), r.CompletionId(1), 2)
        t.journal.put(iid(2), 0, JournalEntry(0x0400, b"keep"))
        t.journal.record_notification(iid(2), r.CompletionId(1), 0)
        assert t.journal.delete_all(iid(1)) == 3
    with read(storage) as t:
        assert list(t.journal.entries(iid(1))) == []
        assert t.journal.slot(iid(1), r.CompletionId(1)) is None
        assert t.journal.get(iid(2), 0) == JournalEntry(0x0400, b"keep")
        assert t.journal.has_notification(iid(2), r.CompletionId(1))
