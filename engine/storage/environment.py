"""The LMDB environment holding all partitions' materialized state.

One environment per engine process, in ``data_dir``; each table is a named LMDB database
owned by one module of ``engine.storage``. An exclusive lock file keeps two engine
processes from sharing a data dir, which would break the single-writer assumption.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO

import lmdb

from engine.errors import StartupError

# Bump when the on-disk layout changes incompatibly; start-up refuses other versions.
STORAGE_FORMAT_VERSION = 1
MAX_TABLES = 64


class StorageEnvironment:
    """The opened LMDB environment plus the data-dir lock; close it on shutdown."""

    def __init__(self, data_dir: Path, map_size_mb: int) -> None:
        self.data_dir = data_dir
        self._lock_file = _lock_data_dir(data_dir)
        try:
            self.env = lmdb.open(
                str(data_dir / "state.lmdb"),
                map_size=map_size_mb * 1024 * 1024,
                max_dbs=MAX_TABLES,
                subdir=True,
                # Durability comes from the WAL in Kafka: after a crash the processor
                # replays from the last offset LMDB holds, so a lost tail is recomputed.
                sync=True,
                metasync=True,
            )
        except lmdb.Error as exc:
            self._lock_file.close()
            raise StartupError(f"cannot open LMDB in {data_dir}: {exc}") from None
        self._check_format()

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

    def close(self) -> None:
        self.env.close()
        self._lock_file.close()


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
