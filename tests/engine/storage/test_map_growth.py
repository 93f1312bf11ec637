"""The LMDB map grows when a batch needs more; when it may not, or the disk is full,
the partition halts with the reason instead of the process exiting.

Real LMDB files with a tiny initial map; batches go through the processor's applier.
On the code before growth existed the first batch raised ``lmdb.MapFullError`` out of
the apply (the process exited, and its successor on the same data dir did the same).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from prometheus_client import REGISTRY

from engine.partition.batch import BatchApplier
from engine.partition.consumer import WalMessage
from engine.partition.halt import HaltReason
from engine.partition.state_machine import DEFAULT_OPTIONS
from engine.storage.environment import StorageEnvironment
from engine.storage.reader import TableReader
from engine.storage.tables import TableHandles
from engine.wal import codec
from engine.wal import records as r
from tests.engine.partition.harness import T0, command, invoke, object_target, pb

VALUE = 256 * 1024


def _messages(first_offset: int, objects: int, values_per_object: int = 4) -> list[WalMessage]:
    """Invokes of ``objects`` objects, each writing ``values_per_object`` state values of 256 KiB."""
    records: list[r.Record] = []
    for n in range(objects):
        rec = invoke(object_target(f"k{first_offset}-{n}"), first_offset * 1000 + n)
        records.append(rec)
        for i in range(values_per_object):
            set_state = pb.SetStateCommandMessage(key=f"s{i}".encode(), value=pb.Value(content=bytes([i]) * VALUE))
            records.append(command(set_state, rec.invocation_id, 1 + i))
    return [
        WalMessage(0, first_offset + i, T0 + first_offset + i, codec.encode(record))
        for i, record in enumerate(records)
    ]


def _applier(storage: StorageEnvironment) -> BatchApplier:
    return BatchApplier(
        storage.env, TableHandles.open(storage.env), partition_count=1, options=DEFAULT_OPTIONS, growth=storage.growth
    )


def _applied(storage: StorageEnvironment) -> int | None:
    reader = TableReader(storage.env, TableHandles.open(storage.env), storage.growth)
    return reader.read(0, lambda t: t.fsm.applied_offset())


def _sample(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    assert value is not None, name
    return value


def test_the_map_grows_when_a_batch_needs_more(tmp_path: Path) -> None:
    storage = StorageEnvironment(tmp_path / "data", map_size_mb=1)
    try:
        assert storage.growth.size() == 1 << 20
        growths = REGISTRY.get_sample_value("logstrate_lmdb_map_growths_total") or 0.0
        messages = _messages(0, objects=4)  # 16 values of 256 KiB: 4 MiB
        outcome = _applier(storage).apply(0, messages, load_task_data=False)
        assert outcome.halt is None and outcome.last_applied == messages[-1].offset
        assert _applied(storage) == messages[-1].offset
        assert storage.growth.size() >= 4 << 20
        assert (REGISTRY.get_sample_value("logstrate_lmdb_map_growths_total") or 0.0) > growths
        # /metrics reads the map's size and use at scrape time.
        assert _sample("logstrate_lmdb_map_size_bytes") == storage.growth.size()
        used = _sample("logstrate_lmdb_map_used_bytes")
        assert 4 << 20 <= used <= storage.growth.size()
    finally:
        storage.close()


def test_readers_on_other_threads_survive_the_map_growing(tmp_path: Path) -> None:
    """Growing remaps the file: readers must never hold a transaction across it."""
    storage = StorageEnvironment(tmp_path / "data", map_size_mb=1)
    reader = TableReader(storage.env, TableHandles.open(storage.env), storage.growth)
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def read_loop() -> None:
        try:
            while not stop.is_set():
                applied = reader.read(0, lambda t: (t.fsm.applied_offset(), list(t.state.keys("Counter", "k0-0"))))
                reads[0] += 1
                assert applied is not None
                stop.wait(0.0005)  # readers as busy as an engine's, not a GIL-hogging spin
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=read_loop) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        applier = _applier(storage)
        offset = 0
        for _ in range(6):
            messages = _messages(offset, objects=2)
            assert applier.apply(0, messages, load_task_data=False).halt is None
            offset = messages[-1].offset + 1
        assert storage.growth.size() >= 8 << 20
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        storage.close()
    assert errors == [] and reads[0] > 0


def test_reaching_the_max_map_size_halts_the_partition_and_a_larger_max_goes_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    storage = StorageEnvironment(data, map_size_mb=1, max_map_size_mb=2)
    try:
        small = _messages(0, objects=1, values_per_object=1)
        assert _applier(storage).apply(0, small, load_task_data=False).halt is None
        big = _messages(small[-1].offset + 1, objects=4)
        outcome = _applier(storage).apply(0, big, load_task_data=False)
        assert outcome.halt is not None and outcome.halt.reason is HaltReason.STORAGE_FULL
        assert outcome.halt.offset == big[0].offset and outcome.halt.retry_after_s is not None
        assert "lmdb_max_map_size_mb" in outcome.halt.message
        assert outcome.last_applied is None and outcome.actions == []
        # Nothing of the batch was applied; what was there is still readable.
        assert _applied(storage) == small[-1].offset
    finally:
        storage.close()
    storage = StorageEnvironment(data, map_size_mb=1, max_map_size_mb=64)
    try:
        outcome = _applier(storage).apply(0, big, load_task_data=False)
        assert outcome.halt is None and _applied(storage) == big[-1].offset
    finally:
        storage.close()


_FULL_DISK = """
import json, resource, signal, sys
from pathlib import Path
from engine.storage.environment import StorageEnvironment
from tests.engine.storage.test_map_growth import _applier, _applied, _messages

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with an error
storage = StorageEnvironment(Path(sys.argv[1]), map_size_mb=64)
applier = _applier(storage)
first = _messages(0, objects=1, values_per_object=1)
assert applier.apply(0, first, load_task_data=False).halt is None
size = (Path(sys.argv[1]) / "state.lmdb" / "data.mdb").stat().st_size
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (size + (1 << 20), hard))  # the disk is full
big = _messages(first[-1].offset + 1, objects=4)
halted = applier.apply(0, big, load_task_data=False)
after_halt = _applied(storage)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # room again
retried = applier.apply(0, big, load_task_data=False)
print(json.dumps({
    "reason": halted.halt and halted.halt.reason.value, "message": halted.halt and halted.halt.message,
    "retry_after_s": halted.halt and halted.halt.retry_after_s, "applied_after_halt": after_halt,
    "first_last": first[-1].offset, "retried_halt": retried.halt is not None,
    "applied_after_retry": _applied(storage), "big_last": big[-1].offset,
}))
storage.close()
"""


def test_a_full_disk_halts_the_partition_until_there_is_room(tmp_path: Path) -> None:
    """The file size limit (RLIMIT_FSIZE) makes the kernel refuse LMDB's writes as a
    full disk would; it runs in a subprocess so the limit binds nothing else."""
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120, cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["reason"] == "storage_error", result
    assert "free disk space" in result["message"] and result["retry_after_s"]
    assert result["applied_after_halt"] == result["first_last"]
    assert result["retried_halt"] is False and result["applied_after_retry"] == result["big_last"]
