"""Kafka egress end to end: handlers publish through the built-in ``logstrate.KafkaEgress``.

Real engine processes, a real broker, real endpoints (our SDK and the official
``restate-sdk``). Output topics are read with ``isolation.level=read_committed``, the
way a downstream consumer that wants exactly-once sees them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.engine.test_invocations import call, register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.scenario import add_cluster, subscribe

EGRESS_APP = "tests.fixtures.egress_services:app"
OFFICIAL_EGRESS_APP = "tests.fixtures.official_sdk_egress:app"


def read_all(bootstrap_servers: str, topic: str, *, committed_only: bool = True, timeout: float = 30.0) -> list[Any]:
    """Every record of ``topic`` up to its current end, read_committed by default.

    Done when the consumer's position reaches each partition's high watermark: the
    position moves past transaction markers, which are never delivered as records.
    """
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers, "group.id": f"reader-{uuid.uuid4().hex}",
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "isolation.level": "read_committed" if committed_only else "read_uncommitted",
    })
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Any] = []

        def done() -> bool:
            positions = consumer.position([TopicPartition(topic, p) for p in partitions])
            return all(ends[tp.partition] == 0 or tp.offset >= ends[tp.partition] for tp in positions)

        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"reading {topic} did not reach {ends}"
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                messages.append(message)
        return messages
    finally:
        consumer.close()


def headers_of(message: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in (message.headers() or [])}


def invocation(engine: EngineProcess, invocation_id: str) -> dict[str, Any]:
    status, body = http("GET", f"{engine.admin_url}/invocations/{invocation_id}?journal=false")
    assert status == 200, body
    return dict(body)


@pytest.fixture
def engine(engine_factory: Callable[..., EngineProcess]) -> EngineProcess:
    proc = engine_factory(partitions=4)
    proc.start_and_wait()
    return proc


def test_both_sdks_publish_exactly_one_record_per_call(
    engine: EngineProcess, service_endpoints: ServiceEndpoints, kafka: KafkaBroker, topic_prefix: str
) -> None:
    ours, official = service_endpoints.start_all([(EGRESS_APP, "default"), (OFFICIAL_EGRESS_APP, "default")])
    register(engine, ours)
    register(engine, official)
    topic = f"{topic_prefix}.out"
    create_topic(kafka.bootstrap_servers, topic, 2)

    results: dict[tuple[str, int], dict[str, Any]] = {}
    for n in range(4):
        status, body, _ = call(f"{engine.ingress_url}/EgressSdk/publish", {
            "topic": topic, "value": {"n": n, "sdk": "ours"}, "key": f"ours-{n}", "headers": {"n": str(n)},
        })
        assert status == 200, body
        results[("ours", n)] = body
        status, body, _ = call(f"{engine.ingress_url}/EgressOfficial/publish",
                               {"topic": topic, "text": f"official {n}", "key": f"official-{n}"})
        assert status == 200, body
        results[("official", n)] = body

    records = read_all(kafka.bootstrap_servers, topic)
    assert len(records) == 8, [(m.key(), m.value()) for m in records]
    by_key = {m.key().decode(): m for m in records}
    for n in range(4):
        mine = by_key[f"ours-{n}"]
        assert json.loads(mine.value()) == {"n": n, "sdk": "ours"}
        assert headers_of(mine) == {"n": str(n)}
        # The call's result names exactly where the record landed.
        assert results[("ours", n)] == {"topic": topic, "partition": mine.partition(), "offset": mine.offset()}
        theirs = by_key[f"official-{n}"]
        assert theirs.value() == f"official {n}".encode() and headers_of(theirs) == {"sdk": "official"}
        assert results[("official", n)] == {"topic": topic, "partition": theirs.partition(),
                                            "offset": theirs.offset()}

    # A malformed request is a terminal failure (400) for the caller; nothing is published.
    status, body, _ = call(f"{engine.ingress_url}/EgressSdk/bad_request", topic)
    assert status == 200 and body.startswith("400: invalid egress request: unknown fields ['oops']"), body
    # The built-in service is for handlers, not for the HTTP ingress.
    status, body, _ = call(f"{engine.ingress_url}/logstrate.KafkaEgress/publish", {"topic": topic})
    assert status == 404, body
    assert len(read_all(kafka.bootstrap_servers, topic)) == 8


def test_missing_topic_is_retried_until_it_exists(
    engine: EngineProcess, service_endpoints: ServiceEndpoints, kafka: KafkaBroker, topic_prefix: str
) -> None:
    register(engine, service_endpoints.get(EGRESS_APP))
    topic = f"{topic_prefix}.later"
    status, body, _ = call(f"{engine.ingress_url}/EgressSdk/publish/send",
                           {"topic": topic, "value": "late", "key": "k"})
    assert status == 202, body
    caller = body["invocationId"]

    def egress_failure() -> dict[str, Any] | None:
        status, body = http("GET", f"{engine.admin_url}/invocations?service=logstrate.KafkaEgress")
        assert status == 200, body
        for row in body["invocations"]:
            if row.get("last_failure"):
                return dict(row)
        return None

    failing = wait_until(egress_failure, 60, "the egress attempt to fail on the missing topic")
    assert failing["last_failure"]["code"] == 404
    assert f"topic '{topic}' does not exist" in failing["last_failure"]["message"]
    assert invocation(engine, caller)["status"] in ("suspended", "invoked")

    create_topic(kafka.bootstrap_servers, topic, 1)
    wait_until(lambda: invocation(engine, caller)["status"] == "completed", 60, "the publish to go through")
    records = read_all(kafka.bootstrap_servers, topic)
    assert [(m.key(), m.value()) for m in records] == [(b"k", b"late")]


def test_terminal_failure_of_a_subscription_event_is_dead_lettered_once(
    engine: EngineProcess, service_endpoints: ServiceEndpoints, kafka: KafkaBroker, topic_prefix: str
) -> None:
    register(engine, service_endpoints.get(EGRESS_APP))
    source, dlq = f"{topic_prefix}.events", f"{topic_prefix}.events.dlq"
    create_topic(kafka.bootstrap_servers, source, 2)
    create_topic(kafka.bootstrap_servers, dlq, 1)
    add_cluster(engine, kafka)
    sub_id = subscribe(engine, source, "service://Picky/take", {"dead-letter-topic": dlq})
    bad = {3, 7, 8}
    events = [(f"key-{n}".encode() if n != 8 else b"\xff\x00", {"n": n, "bad": n in bad}) for n in range(12)]
    publish(kafka.bootstrap_servers, source, events, headers=[("trace", b"t-1")])

    def picky_done() -> bool:
        status, body = http("GET", f"{engine.admin_url}/invocations?service=Picky&limit=1000")
        assert status == 200, body
        rows = body["invocations"]
        return len(rows) == len(events) and all(r["status"] == "completed" for r in rows)

    def egress_done() -> bool:
        status, body = http("GET", f"{engine.admin_url}/invocations?service=logstrate.KafkaEgress&limit=1000")
        assert status == 200, body
        rows = body["invocations"]
        return len(rows) == len(bad) and all(r["status"] == "completed" for r in rows)

    wait_until(picky_done, 90, "every event to be handled")
    wait_until(egress_done, 60, "every dead letter to be published")
    letters = read_all(kafka.bootstrap_servers, dlq)
    assert len(letters) == len(bad), [(m.key(), m.value()) for m in letters]
    by_n = {json.loads(m.value())["n"]: m for m in letters}
    assert set(by_n) == bad
    for n, letter in by_n.items():
        headers = headers_of(letter)
        assert letter.key() == (f"key-{n}".encode() if n != 8 else b"\xff\x00")
        assert json.loads(letter.value()) == {"n": n, "bad": True}  # the handler's input, as received
        assert headers["logstrate.error.code"] == "422"
        assert headers["logstrate.error.message"] == f"event {n} is bad"
        assert headers["logstrate.source.topic"] == source
        assert headers["logstrate.subscription.id"] == sub_id
        assert headers["logstrate.invocation.id"].startswith("inv_")
        source_partition, offset = int(headers["logstrate.source.partition"]), int(headers["logstrate.source.offset"])
        originals = [m for m in read_all(kafka.bootstrap_servers, source)
                     if m.partition() == source_partition and m.offset() == offset]
        assert [json.loads(m.value())["n"] for m in originals] == [n]
        # The failed invocation keeps its failure for the usual retention.
        failed = invocation(engine, headers["logstrate.invocation.id"])
        assert failed["completion_failure"] == {"code": 422, "message": f"event {n} is bad"}
