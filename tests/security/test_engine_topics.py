"""The engine's topics are reserved, and source records cannot steer the control plane.

* Egress (``logstrate.KafkaEgress/publish``, dead letters included) refuses the engine's
  own topics (``<prefix>.wal``, ``.metadata``, ``.responses``...) with a terminal 400.
* ``dead-letter-topic`` cannot name them either (400 at subscription creation).
* A source record's headers with the engine's reserved names are renamed on ingestion,
  so a producer to a subscribed topic cannot choose where dead letters go: real records
  on a real topic whose headers point the dead letter at ``<prefix>.wal``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine.egress import DEAD_LETTER_HEADER, EgressRequestError, encode_request, engine_topic_reason, parse_request
from engine.egress import reserve_engine_topics
from engine.ids import SubscriptionId
from engine.metadata.kafka import KafkaCluster, Subscription, consumer_properties
from engine.metadata.kafka_properties import RefusedProperty
from subscriptions.ingest import SourceRecord, invocation_headers, source_header_name
from tests.engine.test_invocations import call, register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.scenario import SUBSCRIPTION_APP, add_cluster, object_state, subscribe

EGRESS_APP = "tests.fixtures.egress_services:app"


@pytest.fixture
def prefix() -> Iterator[str]:
    reserve_engine_topics("lgs")
    yield "lgs"
    reserve_engine_topics(None)


@pytest.mark.parametrize("topic", ["lgs.wal", "lgs.metadata", "lgs.responses", "lgs.egress.3", "lgs_wal",
                                   "lgs.internal.x", "__consumer_offsets", "__transaction_state"])
def test_engine_topics_are_refused_by_the_egress(prefix: str, topic: str) -> None:
    assert engine_topic_reason(topic) is not None
    with pytest.raises(EgressRequestError, match="is reserved for the engine|is internal to Kafka"):
        parse_request(encode_request(topic, b"x"))


@pytest.mark.parametrize("topic", ["lgs.orders", "lgs.events.dlq", "lgs.walrus", "orders", "lgs"])
def test_other_topics_are_not(prefix: str, topic: str) -> None:
    assert engine_topic_reason(topic) is None
    assert parse_request(encode_request(topic, b"x")).topic == topic


def test_reserved_source_headers_are_renamed() -> None:
    assert source_header_name("trace") == "trace"
    for name in (DEAD_LETTER_HEADER, "X-Logstrate-Dead-Letter-Topic", "logstrate.error.code", "kafka.key",
                 "Kafka.Offset", "restate.subscription.id", "kafka.header.x"):
        assert source_header_name(name) == f"kafka.header.{name}"
    record = SourceRecord("t", 0, 5, b"k", b"v", 1, headers=(
        (DEAD_LETTER_HEADER, b"lgs.wal"), ("X-LOGSTRATE-DEAD-LETTER-TOPIC", b"lgs.metadata"), ("kafka.key", b"forged"),
    ))
    headers = invocation_headers(SubscriptionId.generate(), record, dead_letter_topic="dlq")
    assert [h.value for h in headers if h.name.lower() == DEAD_LETTER_HEADER] == ["dlq"]
    assert [h.value for h in headers if h.name == "kafka.key"] == ["k"]
    assert {h.name: h.value for h in headers}[f"kafka.header.{DEAD_LETTER_HEADER}"] == "lgs.wal"
    assert [h.value for h in invocation_headers(SubscriptionId.generate(), record) if h.name == DEAD_LETTER_HEADER] == []


def test_a_stored_subscription_with_a_reserved_dead_letter_topic_builds_no_consumer(prefix: str) -> None:
    cluster = KafkaCluster("c", {"bootstrap.servers": "b:9092"})
    sub = Subscription(SubscriptionId.generate(), "kafka://c/t", "service://S/h", {"dead-letter-topic": "lgs.wal"})
    with pytest.raises(RefusedProperty, match="option dead-letter-topic: topic 'lgs.wal' is reserved"):
        consumer_properties(cluster, sub)


def _egress_rows(engine: EngineProcess) -> list[dict[str, Any]]:
    status, body = http("GET", f"{engine.admin_url}/invocations?service=logstrate.KafkaEgress&limit=1000")
    assert status == 200, body
    return list(body["invocations"])


def test_source_headers_cannot_redirect_dead_letters_and_engine_topics_are_refused(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    engine = engine_factory()
    engine.start_and_wait()
    register(engine, service_endpoints.get(EGRESS_APP))
    register(engine, service_endpoints.get(SUBSCRIPTION_APP))
    wal, metadata = f"{topic_prefix}.wal", f"{topic_prefix}.metadata"
    source, dlq, plain = f"{topic_prefix}.events", f"{topic_prefix}.events.dlq", f"{topic_prefix}.plain"
    for topic in (source, dlq, plain):
        create_topic(kafka.bootstrap_servers, topic, 1)
    add_cluster(engine, kafka)

    # dead-letter-topic may not name an engine topic.
    for bad in (wal, metadata, f"{topic_prefix}.responses", f"{topic_prefix}_wal"):
        status, body = http("POST", f"{engine.admin_url}/subscriptions", {
            "source": f"kafka://local/{source}", "sink": "service://Picky/take", "options": {"dead-letter-topic": bad},
        })
        assert status == 400 and "reserved for the engine" in body["message"] and "dead-letter-topic" in body["message"], body

    # A handler cannot publish to them through the egress: a terminal 400.
    status, body, _ = call(f"{engine.ingress_url}/EgressSdk/publish", {"topic": wal, "value": {"forged": True}})
    assert status == 400 and f"topic '{wal}' is reserved for the engine" in json.dumps(body), body

    # Records whose headers try to send their dead letter to the WAL.
    forged = [(DEAD_LETTER_HEADER, wal.encode()), ("X-Logstrate-Dead-Letter-Topic", metadata.encode()),
              ("logstrate.error.code", b"200")]
    subscribe(engine, source, "service://Picky/take", {"dead-letter-topic": dlq, "payload.format": "json"})
    subscribe(engine, plain, "service://Picky/take", {"payload.format": "json"})  # no dead-letter topic at all
    publish(kafka.bootstrap_servers, source,
            [(b"k1", {"n": 1, "bad": True}), (b"k2", {"n": 2, "bad": False}), (b"k0", b"{not json")], headers=forged)
    publish(kafka.bootstrap_servers, plain, [(b"k3", {"n": 3, "bad": True})], headers=forged)

    def dead_lettered() -> list[dict[str, Any]] | None:
        rows = [r for r in _egress_rows(engine) if r["status"] == "completed"]
        return rows if len(rows) >= 2 else None  # the refused publish above and the one dead letter

    wait_until(dead_lettered, 90, "the dead letter to be published")
    wait_until(lambda: len(_picky_completed(engine)) == 3, 60, "every event to be handled")
    rows = _egress_rows(engine)
    assert len(rows) == 2, rows  # nothing for the record of the subscription without a dead-letter topic
    outcomes = sorted(json.dumps(_completion(engine, r["id"])) for r in rows)
    assert any(dlq in o for o in outcomes) and not any(metadata in o for o in outcomes), outcomes
    records = wait_until(lambda: r if len(r := _read_all(kafka.bootstrap_servers, dlq)) >= 2 else None, 60,
                         "both dead letters (the failed event's and the undecodable record's)")
    letters = {m.value(): [(k, v.decode()) for k, v in m.headers()] for m in records}
    assert set(letters) == {json.dumps({"n": 1, "bad": True}).encode(), b"{not json"}, letters
    failed = letters[json.dumps({"n": 1, "bad": True}).encode()]
    assert ("logstrate.error.code", "422") in failed and ("logstrate.error.code", "200") not in failed, failed
    # The undecodable record, dead-lettered by the consumer: the source's forged headers renamed.
    undecodable = letters[b"{not json"]
    assert ("logstrate.error.code", "200") not in undecodable, undecodable
    assert ("kafka.header.logstrate.error.code", "200") in undecodable, undecodable
    assert any(k == "logstrate.error.message" for k, _ in undecodable), undecodable

    # The handler still sees the renamed headers; no header of the record names a dead-letter topic.
    subscribe(engine, plain, "service://SeqLog/headers", {"payload.format": "json", "group.id": "headers"})
    wait_until(lambda: object_state(engine, "SeqLog", "k3").get("last"), 60, "the event to reach SeqLog")
    seen = object_state(engine, "SeqLog", "k3")["last"]["headers"]
    assert seen[f"kafka.header.{DEAD_LETTER_HEADER}"] == wal
    assert DEAD_LETTER_HEADER not in {k.lower() for k in seen}, seen


def _picky_completed(engine: EngineProcess) -> list[dict[str, Any]]:
    status, body = http("GET", f"{engine.admin_url}/invocations?service=Picky&limit=100")
    assert status == 200, body
    return [r for r in body["invocations"] if r["status"] == "completed"]


def _completion(engine: EngineProcess, invocation_id: str) -> Any:
    status, body = http("GET", f"{engine.admin_url}/invocations/{invocation_id}?journal=false")
    assert status == 200, body
    return body.get("completion_value") or body.get("completion_failure")


def _read_all(bootstrap: str, topic: str) -> list[Any]:
    from tests.engine.test_egress import read_all

    return list(read_all(bootstrap, topic))
