"""Growing the LMDB map while the engine runs, and what it costs on ``/metrics``.

LMDB's map size is the largest the data file may become; it is set when the
environment opens and a write transaction that needs more fails with
``MapFullError``. The partition processor then aborts its transaction, calls
:meth:`MapGrowth.grow` and applies the batch again: the map doubles (at least by what
the failed batch is likely to need), up to ``max_bytes`` when one is configured.
Space is allocated lazily (the file grows as pages are written), so a large map costs
address space, not disk.

``mdb_env_set_mapsize`` remaps the file: it is only safe while this process has NO
transaction open, and LMDB does not check. Every read transaction of the engine goes
through :class:`~engine.storage.reader.TableReader`, which holds :meth:`MapGrowth.reading`
(a shared gate) while its transaction is open; :meth:`MapGrowth.grow` takes the gate
exclusively, so it waits for the readers in flight and new ones wait for it. The only
writer is the partition processor's thread, which calls ``grow`` between transactions.

When the map cannot grow any more (``max_bytes`` reached) :meth:`grow` raises
:class:`StorageFullError`; a full disk surfaces as an ``lmdb.Error`` (``ENOSPC``) or an
``OSError`` from the write. The processor halts the partition with that reason
(:mod:`engine.partition.halt`) instead of exiting, so the process keeps serving the
admin API, and a restart is not a crash loop.

Gauges (default Prometheus registry, read at scrape time):
``logstrate_lmdb_map_size_bytes`` and ``logstrate_lmdb_map_used_bytes``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import lmdb
from prometheus_client import Counter, Gauge

from engine.errors import EngineError
from engine.logs import get_logger

__all__ = ["MAP_GROWTHS", "MapGrowth", "StorageFullError"]

log = get_logger(__name__)

MAP_SIZE: Final = Gauge("logstrate_lmdb_map_size_bytes", "The LMDB map size: how large the state file may grow")
MAP_USED: Final = Gauge("logstrate_lmdb_map_used_bytes", "Bytes of the LMDB map in use (pages up to the last one written)")
MAP_GROWTHS: Final = Counter("logstrate_lmdb_map_growths", "Times the LMDB map was grown because a write needed more")


class StorageFullError(EngineError):
    """The LMDB map is full and may not grow (``lmdb_max_map_size_mb`` reached)."""


class MapGrowth:
    """The map size of one environment: the read gate, growth, and usage."""

    def __init__(self, env: lmdb.Environment, *, max_bytes: int = 0) -> None:
        self._env = env
        self.max_bytes = max_bytes
        """0: no limit but the disk."""
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._resizing = False
        self._closed = False
        MAP_SIZE.set_function(self._size_for_scrape)
        MAP_USED.set_function(self._used_for_scrape)

    # -- the gate ---------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold while a read transaction is open (the map is not remapped meanwhile)."""
        cond = self._cond
        with cond:
            while self._resizing:
                cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with cond:
                self._readers -= 1
                if self._resizing and self._readers == 0:
                    cond.notify_all()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        cond = self._cond
        with cond:
            while self._resizing:
                cond.wait()
            self._resizing = True
            while self._readers:
                cond.wait()
        try:
            yield
        finally:
            with cond:
                self._resizing = False
                cond.notify_all()

    # -- size -------------------------------------------------------------------------

    def size(self) -> int:
        """The current map size in bytes."""
        return int(self._env.info()["map_size"])

    def used(self) -> int:
        """Bytes in use: the pages up to the last one written."""
        info = self._env.info()
        return (int(info["last_pgno"]) + 1) * int(self._env.stat()["psize"])

    def grow(self, *, at_least: int = 0) -> int:
        """Grow the map (call with no transaction of this thread open); the new size.

        Doubles it, by at least ``at_least`` bytes, capped at :attr:`max_bytes`.
        Raises :class:`StorageFullError` when it is there already.
        """
        with self._exclusive():
            current = self.size()
            wanted = max(current * 2, current + at_least)
            if self.max_bytes:
                if current >= self.max_bytes:
                    raise StorageFullError(
                        f"the LMDB map is full at {current >> 20} MiB, the configured lmdb_max_map_size_mb; "
                        "raise it (or free state: purge completed invocations) and restart the engine"
                    )
                wanted = min(wanted, self.max_bytes)
            self._env.set_mapsize(wanted)
            size = self.size()
        MAP_GROWTHS.inc()
        log.warning("LMDB map grown", from_mib=current >> 20, to_mib=size >> 20, max_mib=self.max_bytes >> 20)
        return size

    def close(self) -> None:
        """The environment is closing: scrapes read 0 from now on."""
        with self._exclusive():
            self._closed = True

    def _size_for_scrape(self) -> float:
        with self.reading():
            return 0.0 if self._closed else float(self.size())

    def _used_for_scrape(self) -> float:
        with self.reading():
            return 0.0 if self._closed else float(self.used())
