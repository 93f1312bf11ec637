"""The real broker from compose/kafka_local.py: idempotent producer, transactions, kill -9."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from compose import kafka_local
from compose.kafka_local import LocalKafka, broker_ready
from tests.fixtures.kafka import KafkaBroker


def _create_topic(bootstrap: str, name: str, partitions: int = 3) -> None:
    # Keep the client referenced until the futures resolve: destroying it cancels them.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1)])
    for future in futures.values():
        future.result(timeout=30)


def _consume_all(
    bootstrap: str, topic: str, expected: int, timeout: float = 30.0, partitions: int = 3
) -> list[tuple[bytes, bytes]]:
    """Read ``topic`` from the start until ``expected`` records arrived and every partition hit EOF."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    seen: list[tuple[bytes, bytes]] = []
    eof_partitions: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    eof_partitions.add(msg.partition())
                    if len(seen) >= expected and len(eof_partitions) == partitions:
                        break
                    continue
                raise KafkaException(msg.error())
            seen.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return seen


def test_idempotent_producer_round_trip(kafka: KafkaBroker, topic_prefix: str) -> None:
    topic = f"{topic_prefix}.plain"
    _create_topic(kafka.bootstrap_servers, topic)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True, "acks": "all"})
    errors: list[object] = []
    for i in range(100):
        producer.produce(topic, key=f"k{i % 7}".encode(), value=f"v{i}".encode(),
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
    assert producer.flush(30) == 0
    assert errors == []
    got = _consume_all(kafka.bootstrap_servers, topic, expected=100)
    assert sorted(v for _, v in got) == sorted(f"v{i}".encode() for i in range(100))


def test_transactions_commit_and_abort(kafka: KafkaBroker, topic_prefix: str) -> None:
    topic = f"{topic_prefix}.tx"
    _create_topic(kafka.bootstrap_servers, topic)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "transactional.id": f"{topic_prefix}-tx"})
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce(topic, key=b"a", value=b"aborted")
    producer.abort_transaction(30)
    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, key=b"c", value=f"committed-{i}".encode())
    producer.commit_transaction(30)
    got = _consume_all(kafka.bootstrap_servers, topic, expected=5)
    # read_committed: the aborted record is invisible, the committed ones arrive in order.
    assert [v for _, v in got] == [f"committed-{i}".encode() for i in range(5)]


def test_kill_and_restart_keeps_data(tmp_path: Path) -> None:
    """A second broker, killed with SIGKILL and restarted: acknowledged records survive."""
    broker = LocalKafka(workdir=tmp_path / "kafka")
    bootstrap = broker.start()
    try:
        topic = "survives-kill"
        _create_topic(bootstrap, topic)
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
        for i in range(10):
            producer.produce(topic, value=f"r{i}".encode())
        assert producer.flush(30) == 0
        pid = broker.pid()
        assert pid is not None
        broker.kill()
        assert broker.pid() is None
        assert not broker_ready("127.0.0.1", broker.port or 0, timeout=0.5)
        # Same workdir: same ports (remembered), same data.
        restarted = LocalKafka(workdir=tmp_path / "kafka")
        assert restarted.start() == bootstrap
        got = _consume_all(bootstrap, topic, expected=10, timeout=60)
        assert sorted(v for _, v in got) == sorted(f"r{i}".encode() for i in range(10))
    finally:
        LocalKafka(workdir=tmp_path / "kafka").stop()


def test_storage_format_accepts_a_cluster_id_starting_with_a_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One random cluster id in 64 starts with "-"; the format command must not take it
    # for an option (this once failed CI at random).
    monkeypatch.setattr(kafka_local, "_kafka_uuid", lambda: "-" + "A" * 21)
    broker = LocalKafka(workdir=tmp_path / "kafka")
    libs = kafka_local.ensure_jars(broker.version, broker.cache_dir)
    broker._load_ports()
    broker._format(libs, broker._write_config())
    assert "cluster.id=-AAAA" in (tmp_path / "kafka" / "data" / "meta.properties").read_text()
