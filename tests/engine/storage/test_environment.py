"""LMDB commits without fsync: what survives a killed process, and what a machine crash sets aside.

The environment commits without syncing (the WAL replays whatever is lost); these tests
kill a real process holding the environment with SIGKILL and reopen its data dir.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.storage import environment
from engine.storage.environment import RUNNING_MARKER, StorageEnvironment

_WRITER = """
import sys
from pathlib import Path
from engine.storage.environment import StorageEnvironment
env = StorageEnvironment(Path(sys.argv[1]), map_size_mb=64)
db = env.env.open_db(b"probe")
with env.env.begin(write=True, db=db) as txn:
    txn.put(b"k", b"committed before the kill")
print("committed", flush=True)
sys.stdin.read()  # hold the environment open until killed
"""


def _commit_then_kill(data_dir: Path, boot_id_file: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    code = f"from engine.storage import environment; from pathlib import Path; " \
           f"environment.BOOT_ID_FILE = Path({str(boot_id_file)!r})\n" + _WRITER
    proc = subprocess.Popen([sys.executable, "-c", code, str(data_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"committed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def _read_probe(env: StorageEnvironment) -> bytes | None:
    db = env.env.open_db(b"probe")
    with env.env.begin(db=db) as txn:
        value = txn.get(b"k")
    return None if value is None else bytes(value)


@pytest.fixture
def boot_id_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "boot_id"
    path.write_text("boot-1\n")
    monkeypatch.setattr(environment, "BOOT_ID_FILE", path)
    return path


def test_a_clean_close_removes_the_running_marker(tmp_path: Path, boot_id_file: Path) -> None:
    data = tmp_path / "data"
    env = StorageEnvironment(data, map_size_mb=64)
    assert (data / RUNNING_MARKER).read_text() == "boot-1"
    env.close()
    assert not (data / RUNNING_MARKER).exists()


def test_commits_of_a_killed_process_survive_on_the_same_boot(tmp_path: Path, boot_id_file: Path) -> None:
    data = tmp_path / "data"
    _commit_then_kill(data, boot_id_file)
    env = StorageEnvironment(data, map_size_mb=64)
    try:
        assert _read_probe(env) == b"committed before the kill"
        assert not list(data.glob("state.lmdb.torn-*"))
    finally:
        env.close()


def test_state_left_by_a_machine_crash_is_set_aside_for_a_rebuild(tmp_path: Path, boot_id_file: Path) -> None:
    data = tmp_path / "data"
    _commit_then_kill(data, boot_id_file)
    boot_id_file.write_text("boot-2\n")  # the machine restarted meanwhile
    env = StorageEnvironment(data, map_size_mb=64)
    try:
        assert _read_probe(env) is None, "unsynced state from before a machine crash must not be trusted"
        assert len(list(data.glob("state.lmdb.torn-*"))) == 1
        assert (data / RUNNING_MARKER).read_text() == "boot-2"
    finally:
        env.close()


def test_without_a_boot_id_every_commit_is_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "BOOT_ID_FILE", tmp_path / "missing")
    data = tmp_path / "data"
    env = StorageEnvironment(data, map_size_mb=64)
    try:
        assert env.env.flags()["sync"] is True
        assert not (data / RUNNING_MARKER).exists()
    finally:
        env.close()
