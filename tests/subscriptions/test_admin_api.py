"""The ``/kafka-clusters`` and ``/subscriptions`` admin API: shapes, validation, lifecycle."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fixtures.engine import SEALING, EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.scenario import SUBSCRIPTION_APP, start_engine


@pytest.fixture
def engine(engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints) -> EngineProcess:
    # Credentials are posted below: they are stored sealed, with this key.
    return start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP), env=dict(SEALING))


def test_kafka_clusters_crud_and_redaction(engine: EngineProcess, kafka: KafkaBroker) -> None:
    admin = engine.admin_url
    status, body = http("POST", f"{admin}/kafka-clusters", {"name": "bad name!", "properties": {"bootstrap.servers": "x:1"}})
    assert status == 400 and "hostname" in body["message"]
    status, body = http("POST", f"{admin}/kafka-clusters", {"name": "c1", "properties": {"acks": "all"}})
    assert status == 400 and "bootstrap.servers" in body["message"]
    props = {"bootstrap.servers": kafka.bootstrap_servers, "sasl.password": "hunter2"}
    status, body = http("POST", f"{admin}/kafka-clusters", {"name": "c1", "properties": props})
    assert status == 201, body
    assert body["name"] == "c1" and body["properties"]["sasl.password"] == "***"
    assert body["properties"]["bootstrap.servers"] == kafka.bootstrap_servers
    assert http("POST", f"{admin}/kafka-clusters", {"name": "c1", "properties": props})[0] == 409
    status, body = http("GET", f"{admin}/kafka-clusters")
    assert status == 200 and [c["name"] for c in body["clusters"]] == ["c1"]
    assert "hunter2" not in str(body)
    status, body = http("PATCH", f"{admin}/kafka-clusters/c1", {"properties": {"bootstrap.servers": kafka.bootstrap_servers}})
    assert status == 200 and "sasl.password" not in body["properties"]
    status, body = http("GET", f"{admin}/kafka-clusters/c1?include_subscriptions=true")
    assert status == 200 and body["subscriptions"] == []
    assert http("GET", f"{admin}/kafka-clusters/nope")[0] == 404
    assert http("DELETE", f"{admin}/kafka-clusters/c1")[0] == 202
    assert http("GET", f"{admin}/kafka-clusters/c1")[0] == 404


def test_subscription_validation_and_lifecycle(engine: EngineProcess, kafka: KafkaBroker, topic_prefix: str) -> None:
    admin = engine.admin_url
    topic = f"{topic_prefix}.orders"
    create_topic(kafka.bootstrap_servers, topic, 2)
    assert http("POST", f"{admin}/kafka-clusters",
                {"name": "local", "properties": {"bootstrap.servers": kafka.bootstrap_servers}})[0] == 201

    def create(source: str, sink: str, options: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        status, body = http("POST", f"{admin}/subscriptions", {"source": source, "sink": sink, "options": options or {}})
        return status, body

    good_source, good_sink = f"kafka://local/{topic}", "service://SeqLog/append"
    refusals = [
        (("http://local/t", good_sink, None), "kafka://"),
        ((f"kafka://nope/{topic}", good_sink, None), "unknown Kafka cluster 'nope'"),
        ((good_source, "service://Nope/append", None), "Nope"),
        ((good_source, "service://SeqLog/nope", None), "nope"),
        ((good_source, "service://SeqLog/get", None), "shared handler"),
        ((good_source, "SeqLog/append", None), "service://"),
        (("kafka://local/missing-topic", good_sink, None), "does not exist"),
        ((good_source, good_sink, {"enable.auto.commit": "true"}), "enable.auto.commit"),
        ((good_source, good_sink, {"payload.format": "xml"}), "payload.format"),
        ((good_source, good_sink, {"auto.offset.reset": "sideways"}), "auto.offset.reset"),
    ]
    for (source, sink, options), expected in refusals:
        status, body = create(source, sink, options)
        assert status == 400, (source, sink, options, body)
        assert expected in body["message"], (expected, body)

    status, body = create(good_source, good_sink, {"auto.offset.reset": "earliest"})
    assert status == 201, body
    sub_id = body["id"]
    assert sub_id.startswith("sub_1") and body["source"] == good_source and body["sink"] == good_sink
    assert body["options"] == {"auto.offset.reset": "earliest", "group.id": body["id"]}  # the group, as restate-server
    status, listed = http("GET", f"{admin}/subscriptions?sink=service://SeqLog/append")
    assert status == 200 and [s["id"] for s in listed["subscriptions"]] == [sub_id]
    assert http("GET", f"{admin}/subscriptions?sink=service://Other/x")[1] == {"subscriptions": []}
    status, one = http("GET", f"{admin}/subscriptions/{sub_id}")
    assert status == 200 and one["id"] == sub_id
    assert [p["partition"] for p in one["status"]["partitions"]] == [0, 1]
    assert http("GET", f"{admin}/subscriptions/not-an-id")[0] == 400

    status, body = http("DELETE", f"{admin}/kafka-clusters/local")
    assert status == 409 and sub_id in body["message"]
    status, body = http("PATCH", f"{admin}/subscriptions/{sub_id}/pause")
    assert status == 200 and body["paused"] is True
    status, body = http("PATCH", f"{admin}/subscriptions/{sub_id}/resume")
    assert status == 200 and body["paused"] is False
    assert http("DELETE", f"{admin}/subscriptions/{sub_id}")[0] == 202
    assert http("GET", f"{admin}/subscriptions/{sub_id}")[0] == 404
    assert http("DELETE", f"{admin}/kafka-clusters/local")[0] == 202
