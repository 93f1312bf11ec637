"""The engine's topics: safe settings when created, and existing WALs that could lose
records refused at start-up (engine/wal/topics.py), against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic

from engine.wal.topics import Replication
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import free_port


@pytest.mark.parametrize(("brokers", "factor", "min_insync"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)])
def test_replication_follows_the_cluster_size(brokers: int, factor: int, min_insync: int) -> None:
    assert Replication.for_cluster(brokers) == Replication(factor, min_insync)


def test_a_configured_replication_factor_wins() -> None:
    assert Replication.for_cluster(5, configured=2) == Replication(2, 1)


def _refused(kafka: KafkaBroker, prefix: str, data_dir: Path, partitions: int = 1) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "engine", "serve", "--log-format", "json",
         "--kafka-bootstrap-servers", kafka.bootstrap_servers, "--topic-prefix", prefix,
         "--partitions", str(partitions), "--data-dir", str(data_dir),
         "--ingress-bind", f"127.0.0.1:{free_port()}", "--admin-bind", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=60, env=dict(os.environ),
    )
    assert result.returncode != 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("logstrate: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_created_topics_have_safe_settings(
    engine_factory: Callable[..., EngineProcess], kafka: KafkaBroker, topic_prefix: str
) -> None:
    engine = engine_factory(partitions=2)
    engine.start_and_wait()
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    brokers = len(admin.list_topics(timeout=10).brokers)
    expected = Replication.for_cluster(brokers)
    for topic in ("wal", "metadata", "responses"):
        name = f"{topic_prefix}.{topic}"
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        configs = admin.describe_configs([resource])[resource].result(timeout=10)
        assert configs["min.insync.replicas"].value == str(expected.min_insync), name
        assert configs["unclean.leader.election.enable"].value == "false", name
        # Set on the topic, not inherited from whatever the broker's defaults are.
        for setting in ("min.insync.replicas", "unclean.leader.election.enable"):
            assert configs[setting].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, (name, setting)
        partitions = admin.list_topics(name, timeout=10).topics[name].partitions
        assert all(len(p.replicas) == expected.factor for p in partitions.values()), name
    assert engine.terminate() == 0


def test_a_wal_with_finite_retention_is_refused_with_the_fix(
    kafka: KafkaBroker, topic_prefix: str, tmp_path: Path
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    wal = f"{topic_prefix}.wal"
    futures = admin.create_topics([NewTopic(wal, 1, 1, config={"retention.ms": str(7 * 24 * 3600 * 1000)})])
    futures[wal].result(timeout=30)
    line = _refused(kafka, topic_prefix, tmp_path / "d")
    assert f"the WAL topic {wal} has retention.ms=604800000" in line
    assert (f"kafka-configs.sh --bootstrap-server {kafka.bootstrap_servers} --alter --entity-type topics "
            f"--entity-name {wal} --add-config cleanup.policy=delete,retention.ms=-1,retention.bytes=-1") in line


def test_a_replica_whose_next_record_was_deleted_refuses_to_start(
    engine_factory: Callable[..., EngineProcess], kafka: KafkaBroker, topic_prefix: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "replica"
    engine = engine_factory(partitions=1, data_dir=data_dir)
    engine.start_and_wait()
    engine.wait_leading_all()
    assert engine.terminate() == 0
    wal = f"{topic_prefix}.wal"
    # Records another replica appended after this one stopped, then deleted from the log
    # (delete_records on the real broker): this replica never applied them.
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for _ in range(3):
        producer.produce(wal, value=b"appended by another replica", partition=0)
    assert producer.flush(30) == 0
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    consumer_conf = {"bootstrap.servers": kafka.bootstrap_servers, "group.id": "gap-test"}

    watermarks = Consumer(consumer_conf)
    _, high = watermarks.get_watermark_offsets(TopicPartition(wal, 0), timeout=10)
    watermarks.close()
    deleted = admin.delete_records([TopicPartition(wal, 0, high)], request_timeout=30)
    for future in deleted.values():
        future.result(timeout=30)
    line = _refused(kafka, topic_prefix, data_dir)
    assert f"records of the WAL topic {wal} that this process has not applied were deleted" in line
    assert f"partition 0 needs offset {high - 3} next but starts at {high}" in line
    # A fresh replica needs the WAL from offset 0: refused the same way.
    line = _refused(kafka, topic_prefix, tmp_path / "fresh")
    assert f"partition 0 needs offset 0 next but starts at {high}" in line


def test_a_wal_with_unclean_leader_election_is_refused_with_the_fix(
    kafka: KafkaBroker, topic_prefix: str, tmp_path: Path
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    wal = f"{topic_prefix}.wal"
    config = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete",
              "unclean.leader.election.enable": "true"}
    admin.create_topics([NewTopic(wal, 1, 1, config=config)])[wal].result(timeout=30)
    line = _refused(kafka, topic_prefix, tmp_path / "d")
    assert f"the WAL topic {wal} has unclean.leader.election.enable=true" in line
    assert (f"kafka-configs.sh --bootstrap-server {kafka.bootstrap_servers} --alter --entity-type topics "
            f"--entity-name {wal} --add-config unclean.leader.election.enable=false") in line
