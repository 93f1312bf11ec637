"""kill -9 storm: one of two engine processes killed again and again under mixed load.

Two engine processes share the WAL partitions; client threads (``tests/chaos/mixed_load.py``)
submit calls, one-way sends, durable timers, object-state updates and service-to-service
call chains through both ingresses, and a publisher feeds a Kafka topic a subscription
turns into invocations. ``LOGSTRATE_CHAOS_KILLS`` times (default 5, ``make chaos`` 100)
the test waits for some progress, SIGKILLs one of the processes (chosen by a seeded
random generator; ``LOGSTRATE_CHAOS_SEED`` replays a run), restarts it on its data dir
and ports, and measures its recovery: from the kill until the two processes again lead
every partition between them (no overlap) and a new call through the restarted
process is answered.

Then every acknowledged invocation must be completed in the log with the result its
client got, every object add and every published event must be in the object's state
exactly once, and no journaled side effect may have run again (the external counter's
final count for a key equals the count its journaled run saw). The figures are printed
(and written to ``LOGSTRATE_CHAOS_REPORT``, if set, as JSON).
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.counter_server import CounterServer
from tests.chaos.mixed_load import CHAOS_APP, MixedLoad, probe_op, say
from tests.engine.test_invocations import register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.subscriptions.scenario import add_cluster, subscribe

KILLS = int(os.environ.get("LOGSTRATE_CHAOS_KILLS", "5"))
FREEZES = int(os.environ.get("LOGSTRATE_CHAOS_FREEZES", "0"))
SEED = int(os.environ.get("LOGSTRATE_CHAOS_SEED", str(time.time_ns() % 1_000_000)))
PARTITIONS = 4


def split_leadership(engines: list[EngineProcess]) -> bool:
    """The processes lead every partition between them, each partition exactly once."""
    led = [engine.led_partitions() for engine in engines]
    every = [p for one in led for p in one]
    return sorted(every) == list(range(PARTITIONS))


def stopped(engine: EngineProcess) -> bool:
    """The process is in the stopped state (``T`` in ``/proc/<pid>/stat``)."""
    assert engine.proc is not None
    return Path(f"/proc/{engine.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def freeze(engines: list[EngineProcess], victim: int, load: MixedLoad, counter: CounterServer, n: int) -> float:
    """SIGSTOP one process (a zombie leader), wait until the other leads every partition
    and answers a new call, then SIGCONT it while it still believes it leads; returns the
    takeover time. Its late writes carry an old epoch and must change nothing (the
    outcome checks at the end), and the two must split the partitions again."""
    frozen, other = engines[victim], engines[1 - victim]
    assert frozen.proc is not None
    frozen_at = time.monotonic()
    frozen.proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: stopped(frozen), 10, f"the process to stop (round {n})", interval=0.01)
        # (wait_until retries a condition that raises, so a woken process ends the wait instead)
        wait_until(lambda: not stopped(frozen) or other.led_partitions() == set(range(PARTITIONS)), 120,
                   f"the other process to lead every partition (freeze in round {n})", interval=0.2)
        assert stopped(frozen), f"the frozen process was continued behind the test's back (round {n})"
        assert load.submit(load.track(probe_op(n, counter.url)), deadline_s=120, via=1 - victim).acked
        takeover = time.monotonic() - frozen_at
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: split_leadership(engines), 180, f"the partitions to be split again after the thaw in round {n}",
               interval=0.2)
    return takeover


@pytest.mark.timeout(max(300, 240 + KILLS * 60 + FREEZES * 90))
def test_kill_9_storm_under_mixed_load_loses_nothing_and_runs_nothing_twice(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str, tmp_path: Path,
) -> None:
    endpoint = service_endpoints.get(CHAOS_APP)
    dirs = [tmp_path / "engine-a", tmp_path / "engine-b"]
    engines = [engine_factory(partitions=PARTITIONS, data_dir=d, own_session=True) for d in dirs]
    for engine in engines:
        engine.start()
    for engine in engines:
        engine.wait_healthy(120)
    register(engines[0], endpoint)
    wait_until(lambda: split_leadership(engines) and all(e.led_partitions() for e in engines), 120,
               "both processes to lead some WAL partitions", interval=0.5)
    topic = f"{topic_prefix}.events"
    create_topic(kafka.bootstrap_servers, topic, 4)
    add_cluster(engines[0], kafka)
    subscribe(engines[0], topic, "service://Ledger/event")

    rng = random.Random(SEED)
    say(f"{KILLS} kills and {FREEZES} freezes, seed {SEED} (LOGSTRATE_CHAOS_SEED={SEED} replays the choices)")
    recoveries: list[float] = []
    takeovers: list[float] = []
    victims: Counter[str] = Counter()
    began = time.monotonic()
    with CounterServer() as counter:
        load = MixedLoad([e.ingress_url for e in engines], [e.admin_url for e in engines], counter,
                         kafka.bootstrap_servers, topic, clients=8, ops_per_second=20.0)
        load.start()
        wait_until(lambda: counter.applied >= 20, 120, "the load to get going", interval=0.1)
        actions = ["kill"] * KILLS + ["freeze"] * FREEZES
        rng.shuffle(actions)
        kills = 0
        for n, action in enumerate(actions, start=1):
            base, gap = counter.applied, rng.randint(3, 25)
            wait_until(lambda: counter.applied >= base + gap, 180, f"{gap} side effects before round {n}",
                       interval=0.02)
            victim = rng.randrange(2)
            name = "ab"[victim]
            if action == "freeze":
                takeovers.append(freeze(engines, victim, load, counter, n))
                say(f"freeze {len(takeovers)}/{FREEZES} (engine {name}): the other process led every partition "
                    f"{takeovers[-1]:.1f}s after SIGSTOP; thawed, {load.acked()} invocations acknowledged")
                continue
            kills += 1
            killed_at = time.monotonic()
            engines[victim].kill()
            engines[victim] = engine_factory(partitions=PARTITIONS, data_dir=dirs[victim],
                                             ingress_port=engines[victim].ingress_port,
                                             admin_port=engines[victim].admin_port, own_session=True)
            engines[victim].start()
            engines[victim].wait_healthy(120)
            wait_until(lambda: split_leadership(engines), 180, f"the partitions to be led again after kill {kills}",
                       interval=0.1)
            probe = load.submit(load.track(probe_op(n, counter.url)), deadline_s=180, via=victim)
            assert probe.acked, f"no call through the restarted process {name} after kill {kills}"
            recoveries.append(time.monotonic() - killed_at)
            victims[name] += 1
            say(f"kill {kills}/{KILLS} (engine {name}): recovered in {recoveries[-1]:.1f}s; "
                f"{load.acked()} invocations acknowledged, {counter.applied} side effects so far")
        load.stop()
        say(f"load stopped after {time.monotonic() - began:.0f}s; checking the outcome")
        report = load.verify()

    kinds = Counter(op.kind for op in load.ops if op.acked)
    figures = {
        "kills": kills, "seed": SEED, "victims": dict(victims), "by_kind": dict(kinds),
        **report.summary(),
        "recovery_s": {"median": round(statistics.median(recoveries), 2), "max": round(max(recoveries), 2),
                       "min": round(min(recoveries), 2)} if recoveries else {},
        "slowest_request": {"s": load.slowest[0], "key": load.slowest[1], "status": load.slowest[2]},
        "freezes": len(takeovers),
        "takeover_after_freeze_s": {"median": round(statistics.median(takeovers), 2),
                                    "max": round(max(takeovers), 2)} if takeovers else {},
        "duration_s": round(time.monotonic() - began),
    }
    say("figures: " + json.dumps(figures))
    if os.environ.get("LOGSTRATE_CHAOS_REPORT"):
        Path(os.environ["LOGSTRATE_CHAOS_REPORT"]).write_text(json.dumps(figures, indent=1) + "\n")
    assert not report.lost, f"{len(report.lost)} lost: {report.lost[:20]}"
    assert not report.duplicates, f"{len(report.duplicates)} duplicate side effects: {report.duplicates[:20]}"
    assert report.unacked == 0, "requests never acknowledged"
    assert set(kinds) >= {"call", "send", "timer", "object", "chain", "probe"}, kinds
    assert report.events > 0
    for engine in engines:
        assert engine.terminate() == 0
