"""Table ``state``: per-object K/V with get/put/delete/clear/list/scan, long keys included."""

from __future__ import annotations

from engine.storage.environment import StorageEnvironment
from engine.storage.state import state_version
from engine.storage.tables import TableHandles
from engine.wal.records import StateEntry
from tests.engine.storage.helpers import read, write

Storage = tuple[StorageEnvironment, TableHandles]


def test_get_put_delete(storage: Storage) -> None:
    with write(storage) as t:
        t.state.put("Counter", "a", b"count", b"1")
        t.state.put("Counter", "a", b"empty", b"")
        assert t.state.get("Counter", "a", b"count") == b"1"
        t.state.put("Counter", "a", b"count", b"2")
    with read(storage) as t:
        assert t.state.get("Counter", "a", b"count") == b"2"
        assert t.state.get("Counter", "a", b"empty") == b""  # present but empty
        assert t.state.get("Counter", "a", b"missing") is None
        assert t.state.get("Counter", "b", b"count") is None
    with write(storage) as t:
        assert t.state.delete("Counter", "a", b"count")
        assert not t.state.delete("Counter", "a", b"count")


def test_objects_are_isolated_even_when_names_share_prefixes(storage: Storage) -> None:
    with write(storage) as t:
        t.state.put("Svc", "ab", b"k", b"1")
        t.state.put("Svc", "a", b"bk", b"2")
        t.state.put("Sv", "cab", b"k", b"3")
    with write(storage, 1) as t:
        t.state.put("Svc", "a", b"x", b"other partition")
    with read(storage) as t:
        assert t.state.keys("Svc", "ab") == [b"k"]
        assert t.state.keys("Svc", "a") == [b"bk"]
        assert t.state.keys("Sv", "cab") == [b"k"]


def test_keys_scan_clear_all(storage: Storage) -> None:
    with write(storage) as t:
        for k in (b"z", b"a", b"m"):
            t.state.put("Obj", "k", k, k * 2)
        t.state.put("Obj", "other", b"q", b"")
        assert t.state.keys("Obj", "k") == [b"a", b"m", b"z"]
        assert sorted(e.key for e in t.state.scan("Obj", "k")) == [b"a", b"m", b"z"]
        assert t.state.clear_all("Obj", "k") == 3
    with read(storage) as t:
        assert t.state.keys("Obj", "k") == []
        assert t.state.keys("Obj", "other") == [b"q"]


def test_long_object_and_state_keys(storage: Storage) -> None:
    long_key = "k" * 3000
    long_state_key = b"s" * 5000
    with write(storage) as t:
        t.state.put("Obj", long_key, long_state_key, b"v1")
        t.state.put("Obj", long_key, b"short", b"v2")
    with read(storage) as t:
        assert t.state.get("Obj", long_key, long_state_key) == b"v1"
        assert t.state.keys("Obj", long_key) == [b"short", long_state_key]
        assert t.state.get("Obj", "k" * 2999, long_state_key) is None


def test_version_changes_with_content(storage: Storage) -> None:
    with write(storage) as t:
        empty = t.state.version("Obj", "k")
        t.state.put("Obj", "k", b"a", b"1")
        one = t.state.version("Obj", "k")
        assert one != empty
        assert one == state_version([StateEntry(b"a", b"1")])
        t.state.put("Obj", "k", b"a", b"2")
        assert t.state.version("Obj", "k") != one
