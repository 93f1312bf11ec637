"""kill -9 of one Kafka broker of three under load, with the engine's RF 3 topics.

The test runs its own three-node KRaft cluster (``compose/kafka_cluster.py``; never the
session's broker). The engine creates its topics with replication factor 3 and
``min.insync.replicas`` 2 (``engine/wal/topics.py``), so an ``acks=all`` append needs two
copies and survives the loss of any one broker. Under the mixed load of
``tests/chaos/mixed_load.py`` (subscription topic replicated 3 times too):

1. the broker leading the most WAL partitions is SIGKILLed;
2. while it is down, new invocations are acknowledged and complete (the engine carries on);
3. it restarts on its data and rejoins: every WAL partition has three in-sync replicas again;
4. the load stops: every acknowledged invocation is completed in the log with the answer
   its client got, every object add and event is in the state exactly once, no
   journaled side effect ran twice;
5. to prove the acknowledged records are in Kafka (not just in the engine's LMDB), a
   *second* broker is killed and a fresh engine process with an empty data dir rebuilds
   all state from the WAL served by the remaining two (one of them the rejoined broker),
   and the same checks pass against it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from compose.kafka_cluster import LocalKafkaCluster
from tests.chaos.counter_server import CounterServer
from tests.chaos.mixed_load import CHAOS_APP, MixedLoad, probe_op, say
from tests.engine.test_invocations import register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_cluster import create_replicated_topic, partition_layout, run_cluster, topic_config
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.subscriptions.scenario import add_cluster, subscribe

PARTITIONS = 4


@pytest.fixture
def kafka_cluster(tmp_path: Path) -> Iterator[LocalKafkaCluster]:
    yield from run_cluster(tmp_path / "kafka-cluster", brokers=3)


@pytest.mark.timeout(600)
def test_one_broker_of_three_killed_under_load_loses_nothing(
    kafka_cluster: LocalKafkaCluster, engine_factory: Callable[..., EngineProcess],
    service_endpoints: ServiceEndpoints, topic_prefix: str, tmp_path: Path,
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    endpoint = service_endpoints.get(CHAOS_APP)
    engine = engine_factory(bootstrap_servers=bootstrap, partitions=PARTITIONS, data_dir=tmp_path / "engine")
    engine.start_and_wait(120)
    engine.wait_leading_all(120)
    register(engine, endpoint)
    wal = f"{topic_prefix}.wal"
    layout = partition_layout(bootstrap, wal)
    assert all(p["replicas"] == [1, 2, 3] for p in layout.values()), layout
    settings = topic_config(bootstrap, wal)
    assert (settings["min.insync.replicas"], settings["unclean.leader.election.enable"]) == ("2", "false")

    topic = f"{topic_prefix}.events"
    create_replicated_topic(bootstrap, topic, 4)
    add_cluster(engine, KafkaBroker(bootstrap, None))
    subscribe(engine, topic, "service://Ledger/event")

    with CounterServer() as counter:
        load = MixedLoad([engine.ingress_url], [engine.admin_url], counter, bootstrap, topic,
                         clients=4, ops_per_second=15.0)
        load.start()
        wait_until(lambda: counter.applied >= 30, 120, "the load to get going", interval=0.1)

        leaders = Counter(p["leader"] for p in partition_layout(bootstrap, wal).values())
        victim_id = leaders.most_common(1)[0][0]
        victim = victim_id - 1
        killed_at = time.monotonic()
        kafka_cluster.kill_node(victim)
        say(f"killed broker {victim_id} (led {leaders[victim_id]} of {PARTITIONS} WAL partitions)")

        # The engine carries on: a new call is answered while the broker is down, and the
        # load keeps completing invocations.
        probe = load.submit(load.track(probe_op(1, counter.url)), deadline_s=120)
        assert probe.acked, "no call answered with one broker down"
        first_answer = time.monotonic() - killed_at
        base = counter.applied
        wait_until(lambda: counter.applied >= base + 40, 120, "40 side effects with the broker down", interval=0.1)
        wait_until(lambda: victim_id not in kafka_cluster.live_node_ids(), 60, "the cluster to fence the dead broker")
        moved = partition_layout(bootstrap, wal)
        assert all(p["leader"] != victim_id for p in moved.values()), moved
        say(f"with broker {victim_id} down: first call answered {first_answer:.1f}s after the kill, "
            f"{counter.applied - base} more side effects")

        kafka_cluster.start_node(victim)
        wait_until(lambda: all(p["isr"] == [1, 2, 3] for p in partition_layout(bootstrap, wal).values()), 120,
                   "the restarted broker to be in sync on every WAL partition", interval=0.5)
        say(f"broker {victim_id} rejoined: in sync on every WAL partition {time.monotonic() - killed_at:.1f}s after the kill")
        base = counter.applied
        wait_until(lambda: counter.applied >= base + 20, 120, "20 side effects after the rejoin", interval=0.1)
        assert load.submit(load.track(probe_op(2, counter.url)), deadline_s=120).acked
        load.stop()
        report = load.verify()
        say(f"figures: {report.summary()}")
        assert not report.lost, f"{len(report.lost)} lost: {report.lost[:20]}"
        assert not report.duplicates, f"duplicate side effects: {report.duplicates[:20]}"
        assert report.unacked == 0 and report.events > 0

        # The records are in Kafka: another broker down, a new process rebuilds everything.
        assert engine.terminate() == 0
        other = (victim + 1) % 3
        kafka_cluster.kill_node(other)
        # The killed node may have been the active KRaft controller: its re-election can
        # outlast the default 15 s the engine gives Kafka at start-up.
        replica = engine_factory(bootstrap_servers=bootstrap, partitions=PARTITIONS,
                                 data_dir=tmp_path / "fresh-replica", env={"LOGSTRATE_KAFKA_CONNECT_TIMEOUT_S": "90"})
        replica.start_and_wait(120)
        replica.wait_leading_all(180)
        load.admin_urls = [replica.admin_url]
        rebuilt = load.verify(timeout=120)
        say(f"rebuilt from the WAL with broker {other + 1} down: {rebuilt.summary()}")
        assert not rebuilt.lost, f"{len(rebuilt.lost)} lost in the replay: {rebuilt.lost[:20]}"
        assert not rebuilt.duplicates
    assert replica.terminate() == 0
