"""Leadership under racing start-ups: every WAL partition gets exactly one leader.

Each round starts two or three engine processes 0–500 ms apart (random, seeded) on a
fresh set of topics, so the consumer group rebalances while processes announce: a
process can lose a partition with its ``AnnounceLeader`` still in flight, and the
announcement of the process that now holds it can be outrun by that late one. Within
30 s of the last start the ``logstrate_partition_leader`` gauges (scraped from each
process's ``/metrics``) must name one leader for every partition, and a call to a
key of every partition must answer.

The suite runs ``LOGSTRATE_LEADERSHIP_ROUNDS`` rounds (default 5); ``make leadership``
runs 50. The figures (rounds, slowest time to full leadership) are printed.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint
from tests.fixtures.systems import http

from engine.wal.partitioning import partition_for, partition_key_for_key

PARTITIONS = 6
FULL_LEADERSHIP_S = 30.0
ROUNDS = int(os.environ.get("LOGSTRATE_LEADERSHIP_ROUNDS", "5"))
SEED = int(os.environ.get("LOGSTRATE_LEADERSHIP_SEED", "15"))


SLOW_ROUND_S = 12.0
_TIMELINE_EVENTS = ("engine starting", "engine ready", "wal partition assigned", "wal partition revoked",
                    "announcing leadership", "new partition leader", "leadership announcement failed; retrying",
                    "partition announced by a process that is not assigned it; announcing again",
                    "egress producer fenced in")


def _timeline(engines: list[EngineProcess]) -> str:
    """The leadership events of a slow round, every process's, in time order."""
    events: list[tuple[str, int, str]] = []
    for index, engine in enumerate(engines):
        for line in engine.output().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") in _TIMELINE_EVENTS:
                detail = {k: entry[k] for k in ("partition", "epoch", "node_id") if k in entry}
                events.append((str(entry.get("timestamp")), index, f"{entry['event']} {detail}"))
    return "\n".join(f"  {stamp[11:23]} engine {index}: {what}" for stamp, index, what in sorted(events))


def _ready_at(engine: EngineProcess) -> float:
    """When the process logged "engine ready" (its own clock: the same host)."""
    for line in engine.output().splitlines():
        if '"engine ready"' in line:
            return datetime.fromisoformat(json.loads(line)["timestamp"].replace("Z", "+00:00")).timestamp()
    raise AssertionError("the engine leads partitions but never logged that it was ready")


def _key_per_partition() -> dict[int, str]:
    keys: dict[int, str] = {}
    n = 0
    while len(keys) < PARTITIONS:
        key = f"k{n}"
        keys.setdefault(partition_for(partition_key_for_key("Counter", key), PARTITIONS), key)
        n += 1
    return keys


def _leaders(engines: list[EngineProcess]) -> dict[int, list[int]] | None:
    """{partition: [index of each process whose gauge says it leads it]}; None while a
    process cannot be scraped yet."""
    led: dict[int, list[int]] = {}
    for index, engine in enumerate(engines):
        assert engine.proc is not None
        if engine.proc.poll() is not None:
            raise AssertionError(f"engine {index} exited with {engine.proc.returncode}:\n{engine.output()[-5000:]}")
        try:
            partitions = engine.led_partitions()
        except OSError:
            return None
        for partition in partitions:
            led.setdefault(partition, []).append(index)
    return led


def _round(
    number: int, rng: random.Random, kafka: KafkaBroker, tmp_path: Path, endpoint: ServiceEndpoint,
) -> tuple[float, float]:
    prefix = f"t-leadership-{number}-{uuid.uuid4().hex[:8]}"
    count = rng.choice((2, 3))
    delays = [rng.uniform(0.0, 0.5) for _ in range(count - 1)]
    engines = [
        EngineProcess(bootstrap_servers=kafka.bootstrap_servers, topic_prefix=prefix,
                      data_dir=tmp_path / f"round-{number}-engine-{i}", partitions=PARTITIONS)
        for i in range(count)
    ]
    try:
        engines[0].start()
        for engine, delay in zip(engines[1:], delays, strict=True):
            deadline = time.monotonic() + delay
            # The gap between two starts is the point of the test: wait it out exactly.
            while time.monotonic() < deadline:
                time.sleep(0.005)
            engine.start()
        last_start = time.monotonic()

        def full() -> dict[int, list[int]] | None:
            led = _leaders(engines)
            if led is None or set(led) != set(range(PARTITIONS)):
                return None
            return led if all(len(owners) == 1 for owners in led.values()) else None

        try:
            wait_until(full, FULL_LEADERSHIP_S, f"round {number}: one leader for each of {PARTITIONS} partitions",
                       interval=0.1)
        except TimeoutError:
            logs = "\n".join(f"--- engine {i}\n{e.output()[-4000:]}" for i, e in enumerate(engines))
            raise AssertionError(f"round {number} ({count} processes, delays {delays}): leaders "
                                 f"{_leaders(engines)} after {FULL_LEADERSHIP_S}s\n{logs}") from None
        took = time.monotonic() - last_start
        after_ready = time.time() - max(_ready_at(engine) for engine in engines)
        print(f"round {number}: {count} processes, delays {[round(d, 3) for d in delays]} s, "
              f"full leadership {took:.2f} s after the last start, {after_ready:.2f} s after the last "
              "process was ready")
        if took > SLOW_ROUND_S:
            print(_timeline(engines))

        first = engines[0]
        status, body = http("POST", f"{first.admin_url}/deployments", {"uri": endpoint.url})
        assert status == 201, body
        for partition, key in sorted(_key_per_partition().items()):
            via = engines[partition % count]
            status, body = wait_until(
                lambda: (r := http("POST", f"{via.ingress_url}/Counter/{key}/add", 1, timeout=20))[0] != 404 and r,
                30, f"round {number}: a call to partition {partition}", interval=0.2,
            )
            assert status == 200, (number, partition, status, body)
        return took, after_ready
    finally:
        for engine in engines:
            engine.kill()


@pytest.mark.timeout(120 + 60 * ROUNDS)
def test_racing_start_ups_give_every_partition_one_leader(
    kafka: KafkaBroker, tmp_path: Path, greeter_endpoint: ServiceEndpoint,
) -> None:
    rng = random.Random(SEED)
    rounds = [_round(number, rng, kafka, tmp_path, greeter_endpoint) for number in range(ROUNDS)]
    times, after_ready = [t for t, _ in rounds], [r for _, r in rounds]
    print(f"\nleadership: {ROUNDS} rounds (seed {SEED}), every partition led in each; time to full "
          f"leadership after the last start: max {max(times):.2f}s, mean {sum(times) / len(times):.2f}s; "
          f"after the last process was ready: max {max(after_ready):.2f}s, "
          f"mean {sum(after_ready) / len(after_ready):.2f}s")
    assert max(times) <= FULL_LEADERSHIP_S
