"""The LMDB environment holding all partitions' materialized state.

One environment per engine process, in ``data_dir``; each table is a named LMDB database
owned by one module of ``engine.storage``. An exclusive lock file keeps two engine
processes from sharing a data dir, which would break the single-writer assumption.

**No fsync per commit.** The WAL in Kafka is the source of truth and the applied offset
commits in the same transaction as the state it produced, so LMDB only has to be *a*
consistent fold of the log, not the latest one: after any crash the processor replays
from the offset it finds. A killed process (``kill -9``, OOM) loses nothing either way:
its commits are in the kernel's page cache, which outlives it. Only a crash of the
machine itself can lose unflushed pages, and without fsync LMDB may then be torn (meta
page written, data pages not). That case is detected instead of paid for on every
commit: while running, ``data_dir/RUNNING`` holds the kernel's boot id; a clean stop
syncs and removes it. Finding it with another boot id means the machine went down
under a running engine, so the state is set aside and rebuilt from the WAL (whose
retention is infinite for this reason). Where no boot id is available, every commit
is synced as before.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import time
from pathlib import Path
from typing import IO

import lmdb

from engine.errors import StartupError
from engine.logs import get_logger
from engine.storage.growth import MapGrowth

log = get_logger(__name__)

# Present while an engine runs on the data dir; holds the kernel's boot id.
RUNNING_MARKER = "RUNNING"
MEMBER_ID_FILE = "MEMBER_ID"
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")

# Bump when the on-disk layout changes incompatibly; start-up refuses other versions.
STORAGE_FORMAT_VERSION = 1
MAX_TABLES = 64


class StorageEnvironment:
    """The opened LMDB environment plus the data-dir lock; close it on shutdown."""

    def __init__(self, data_dir: Path, map_size_mb: float, *, max_map_size_mb: int = 0) -> None:
        """``map_size_mb``: the map size to open with (it grows on demand, see
        :mod:`engine.storage.growth`); ``max_map_size_mb``: how far it may grow (0: no
        limit but the disk)."""
        self.data_dir = data_dir
        self._lock_file = _lock_data_dir(data_dir)
        boot_id = _boot_id()
        self._running_marker = data_dir / RUNNING_MARKER
        if boot_id is not None:
            _set_aside_state_torn_by_a_machine_crash(data_dir, self._running_marker, boot_id)
        try:
            self.env = lmdb.open(
                str(data_dir / "state.lmdb"),
                map_size=int(map_size_mb * 1024 * 1024),
                max_dbs=MAX_TABLES,
                subdir=True,
                # Durability comes from the WAL in Kafka (module docstring).
                sync=boot_id is None,
                metasync=boot_id is None,
            )
        except lmdb.Error as exc:
            self._lock_file.close()
            raise StartupError(f"cannot open LMDB in {data_dir}: {exc}") from None
        self.growth = MapGrowth(self.env, max_bytes=max_map_size_mb * 1024 * 1024)
        self._check_format()
        if boot_id is not None:
            _write_durably(self._running_marker, boot_id)

    def _check_format(self) -> None:
        meta = self.env.open_db(b"meta")
        with self.env.begin(write=True, db=meta) as txn:
            stored = txn.get(b"format_version")
            if stored is None:
                txn.put(b"format_version", str(STORAGE_FORMAT_VERSION).encode())
            elif int(stored) != STORAGE_FORMAT_VERSION:
                raise StartupError(
                    f"data dir {self.data_dir} has storage format {int(stored)}, this engine reads "
                    f"{STORAGE_FORMAT_VERSION}; use a fresh data dir (state is rebuilt from the WAL)"
                )

    def member_id(self) -> str:
        """A name for this data dir that stays the same across restarts (made once).

        The WAL consumer joins its group as a static member under it: a process that
        restarts on the same data dir gets its partitions back at once instead of
        waiting out the dead process's session (the flock guarantees one process per
        data dir, so no two live members share it).
        """
        path = self.data_dir / MEMBER_ID_FILE
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            member = secrets.token_hex(8)
            _write_durably(path, member)
            return member

    def close(self) -> None:
        # Flush every commit, then say so: the next start needs no rebuild.
        self.env.sync(True)
        self.growth.close()
        self.env.close()
        self._running_marker.unlink(missing_ok=True)
        self._lock_file.close()


def _boot_id() -> str | None:
    try:
        return BOOT_ID_FILE.read_text().strip() or None
    except OSError:
        return None


def _set_aside_state_torn_by_a_machine_crash(data_dir: Path, marker: Path, boot_id: str) -> None:
    try:
        previous = marker.read_text().strip()
    except FileNotFoundError:
        return  # stopped cleanly, or never ran
    state = data_dir / "state.lmdb"
    if previous == boot_id or not state.exists():
        return  # the process died, the machine did not: the page cache kept every commit
    aside = data_dir / f"state.lmdb.torn-{int(time.time())}"
    state.rename(aside)
    log.warning(
        "the machine restarted while this engine was running; its LMDB state may be torn, so it "
        "was set aside and is rebuilt from the WAL (delete the old copy once the engine is healthy)",
        set_aside=str(aside),
    )


def _write_durably(path: Path, text: str) -> None:
    with path.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _lock_data_dir(data_dir: Path) -> IO[str]:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
        lock = (data_dir / "LOCK").open("a+")
    except OSError as exc:
        raise StartupError(
            f"data dir {data_dir} is not writable ({exc.strerror}); pass --data-dir with a writable folder"
        ) from None
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise StartupError(
                f"data dir {data_dir} is in use by another engine process (pid {holder}); "
                "give each process its own --data-dir"
            ) from None
        raise StartupError(f"cannot lock data dir {data_dir}: {exc.strerror}") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock
