"""Source records that must not be lost or stop a subscription, on a real engine and broker:

* a topic deleted and created again restarts its offsets at 0: its events are new
  events, not duplicates of the old topic's (ingest version 2 names the topic id);
* an event too large for the WAL is dead-lettered with a header that says so, and the
  events after it still run (it was retried for ever, stopping the consumer).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from engine.metadata.kafka import Subscription, subscription_from_json, subscription_to_json
from engine.ids import SubscriptionId
from tests.engine.test_egress import read_all
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.scenario import SUBSCRIPTION_APP, add_cluster, object_state, start_engine, subscribe

SINK = "service://SeqLog/append"


def _seqs(engine: EngineProcess, key: str) -> list[int]:
    return list(object_state(engine, "SeqLog", key).get("seqs", []))


def test_subscriptions_keep_the_ingest_version_they_were_created_with() -> None:
    sub_id = SubscriptionId.parse("sub_1" + "0" * 21 + "1")
    before = {"id": str(sub_id), "source": "kafka://local/orders", "sink": SINK}  # written before version 2
    assert subscription_from_json(sub_id, before).ingest_version == 1
    new = Subscription(sub_id, "kafka://local/orders", SINK, ingest_version=2)
    assert subscription_from_json(sub_id, subscription_to_json(new)).ingest_version == 2


def test_events_of_a_deleted_and_recreated_topic_are_not_dropped_as_duplicates(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str, tmp_path: Path,
) -> None:
    data_dir = tmp_path / "engine-data"
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP), data_dir=data_dir)
    topic = f"{topic_prefix}.events"
    create_topic(kafka.bootstrap_servers, topic, 1)
    add_cluster(engine, kafka)
    subscribe(engine, topic, SINK, {"payload.format": "json", "group.id": f"{topic_prefix}.g"})
    publish(kafka.bootstrap_servers, topic, [(b"k", {"seq": n}) for n in range(3)])
    wait_until(lambda: _seqs(engine, "k") == [0, 1, 2], 60, "the first topic's events")
    engine.terminate()

    # While the engine is down, the topic is deleted (and with it the group's committed
    # offsets) and created again; its offsets start at 0 again.
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    admin.delete_topics([topic])[topic].result(timeout=30)
    wait_until(lambda: topic not in admin.list_topics(timeout=10).topics, 60, "the topic to be deleted")
    wait_until(lambda: admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30) is None, 60,
               "the topic to be created again", interval=0.5)
    publish(kafka.bootstrap_servers, topic, [(b"k", {"seq": n}) for n in range(10, 15)])

    engine = engine_factory(data_dir=data_dir, ingress_port=engine.ingress_port, admin_port=engine.admin_port)
    engine.start_and_wait()
    wait_until(lambda: _seqs(engine, "k") == [0, 1, 2, 10, 11, 12, 13, 14], 90,
               "the recreated topic's events, none dropped as a duplicate of the old topic's", interval=0.5)


def test_an_event_too_large_for_the_wal_is_dead_lettered_and_the_next_one_runs(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP))
    topic, dlq = f"{topic_prefix}.big", f"{topic_prefix}.dlq"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    big_topics = {"max.message.bytes": "3000000"}
    for name in (topic, dlq):
        admin.create_topics([NewTopic(name, 1, 1, config=big_topics)])[name].result(timeout=30)
    status, body = http("POST", f"{engine.admin_url}/kafka-clusters", {"name": "local", "properties": {
        "bootstrap.servers": kafka.bootstrap_servers, "message.max.bytes": "3000000"}})
    assert status == 201, body
    sub_id = subscribe(engine, topic, SINK, {"payload.format": "json", "dead-letter-topic": dlq})
    # Fits the source topic, not the engine's WAL (the WAL producer takes 1,000,000 bytes).
    big = json.dumps({"seq": 0, "pad": "x" * 1_500_000}).encode()
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "message.max.bytes": 3_000_000})
    producer.produce(topic, key=b"big", value=big)
    producer.produce(topic, key=b"small", value=json.dumps({"seq": 1}).encode())
    assert producer.flush(30) == 0

    wait_until(lambda: _seqs(engine, "small") == [1], 60, "the event after the too-large one")
    (dead,) = wait_until(lambda: read_all(kafka.bootstrap_servers, dlq), 60, "the dead letter")
    headers = dict(dead.headers())
    assert dead.key() == b"big" and dead.value() == big
    assert headers["logstrate.error.kind"] == b"too-large"
    assert b"too large for the WAL" in headers["logstrate.error.message"]
    assert headers["logstrate.source.offset"] == b"0"
    status, body = http("GET", f"{engine.admin_url}/subscriptions/{sub_id}")
    assert body["status"]["partitions"] == [{"partition": 0, "committed": 2, "end": 2, "lag": 0}], body
