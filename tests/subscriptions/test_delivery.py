"""What handlers receive from Kafka records: payload, object key, headers; bad records."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.scenario import (
    SUBSCRIPTION_APP,
    OrderingRun,
    add_cluster,
    object_state,
    start_engine,
    subscribe,
)

OFFICIAL_APP = "tests.fixtures.official_sdk_subscriptions:app"


def test_record_becomes_invocation_with_key_and_headers(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP))
    topic = f"{topic_prefix}.events"
    create_topic(kafka.bootstrap_servers, topic, 1)
    add_cluster(engine, kafka)
    sub_id = subscribe(engine, topic, "service://SeqLog/headers", {"payload.format": "json"})
    publish(kafka.bootstrap_servers, topic, [(b"alice", {"hello": "world"})], headers=[("trace", b"abc")])

    last = wait_until(lambda: object_state(engine, "SeqLog", "alice").get("last"), 60, "the event to reach alice")
    assert last["input"] == {"hello": "world"}
    headers = last["headers"]
    assert headers["trace"] == "abc"
    assert headers["kafka.topic"] == topic and headers["kafka.partition"] == "0" and headers["kafka.offset"] == "0"
    assert headers["kafka.key"] == "alice" and int(headers["kafka.timestamp"]) > 0
    assert headers["restate.subscription.id"] == sub_id

    # A record without a key cannot name an object: skipped loudly, and the next one still runs.
    publish(kafka.bootstrap_servers, topic, [(None, {"n": 1}), (b"bob", {"n": 2})])
    wait_until(lambda: object_state(engine, "SeqLog", "bob").get("last"), 60, "the event after the keyless one")
    status, body = http("GET", f"{engine.admin_url}/subscriptions/{sub_id}")
    assert status == 200
    local = body["status"]["this_process"]
    assert local["failed"] == 1 and "no key" in local["last_error"], local
    assert body["status"]["partitions"] == [{"partition": 0, "committed": 3, "end": 3, "lag": 0}]
    status, metrics = http("GET", f"{engine.admin_url}/metrics")
    assert status == 200
    assert f'logstrate_subscription_events_failed_total{{reason="decode",subscription="{sub_id}",topic="{topic}"}} 1.0' in metrics
    assert f'logstrate_subscription_events_ingested_total{{subscription="{sub_id}",topic="{topic}"}} 2.0' in metrics


def test_service_sink_ignores_the_key(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP))
    topic = f"{topic_prefix}.tally"
    create_topic(kafka.bootstrap_servers, topic, 2)
    add_cluster(engine, kafka)
    sub_id = subscribe(engine, topic, "service://Tally/count")
    publish(kafka.bootstrap_servers, topic, [(None, {"i": i}) if i % 2 else (b"\xff\xfe", {"i": i}) for i in range(20)])

    def drained() -> bool:
        status, body = http("GET", f"{engine.admin_url}/subscriptions/{sub_id}")
        rows = body["status"]["partitions"]
        return sum(r["end"] for r in rows) == 20 and all(r["lag"] == 0 for r in rows)

    wait_until(drained, 60, "all 20 events to be ingested")
    # Keyless and non-UTF-8 keys alike reach a plain service, each event exactly once.
    seqs = wait_until(lambda: (v := object_state(engine, "SeqLog", "tally").get("seqs", [])) and len(v) >= 20 and v,
                      60, "the service sink to forward all 20 events")
    assert sorted(seqs) == list(range(20))


def test_official_sdk_object_and_config_declared_cluster(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    clusters = json.dumps({"from-config": {"bootstrap.servers": kafka.bootstrap_servers, "sasl.password": "s3cret"}})
    engine = start_engine(engine_factory, service_endpoints.get(OFFICIAL_APP), env={"LOGSTRATE_KAFKA_CLUSTERS": clusters})
    status, body = http("GET", f"{engine.admin_url}/kafka-clusters/from-config")
    assert status == 200 and body["properties"]["sasl.password"] == "***"
    status, body = http("DELETE", f"{engine.admin_url}/kafka-clusters/from-config")
    assert status == 409 and "engine config" in body["message"]

    run = OrderingRun(kafka, f"{topic_prefix}.official", keys=20, events=1_000)
    run.create_topic(4)
    subscribe(engine, run.topic, "service://OfficialSeqLog/append", cluster="from-config")
    run.publish()

    def lists() -> dict[str, list[int]]:
        return {run.key(i): object_state(engine, "OfficialSeqLog", run.key(i)).get("seqs", []) for i in range(run.keys)}

    wait_until(lambda: sum(map(len, lists().values())) >= run.events, 300, "1000 events through the official SDK",
               interval=0.5)
    assert lists() == {run.key(i): list(range(run.per_key)) for i in range(run.keys)}


def test_service_sink_with_partition_ordering_runs_each_partitions_events_in_order(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP))
    topic = f"{topic_prefix}.ordered"
    create_topic(kafka.bootstrap_servers, topic, 2)
    add_cluster(engine, kafka)
    # Refused where it makes no sense, with a clear message.
    status, body = http("POST", f"{engine.admin_url}/subscriptions", {
        "source": f"kafka://local/{topic}", "sink": "service://SeqLog/append", "options": {"ordering": "partition"}})
    assert status == 400 and "plain-service sinks" in body["message"], body
    status, body = http("POST", f"{engine.admin_url}/subscriptions", {
        "source": f"kafka://local/{topic}", "sink": "service://Tally/forward", "options": {"ordering": "key"}})
    assert status == 400 and "ordering must be one of none, partition" in body["message"], body

    subscribe(engine, topic, "service://Tally/forward", {"payload.format": "json", "ordering": "partition"})
    total = 300
    publish(kafka.bootstrap_servers, topic, [(f"k{i % 7}".encode(), {"i": i}) for i in range(total)])

    def forwarded() -> dict[int, list[int]] | None:
        lists = {p: object_state(engine, "SeqLog", f"p{p}").get("seqs", []) for p in (0, 1)}
        return lists if sum(len(v) for v in lists.values()) >= total else None

    lists = wait_until(forwarded, 120, f"all {total} events to be forwarded")
    # Each partition's events ran one at a time in offset order (i grows with the
    # publish order, which Kafka keeps per partition), each exactly once.
    for partition, seqs in lists.items():
        assert seqs == sorted(seqs), f"partition {partition} ran out of order: {seqs}"
    assert sorted(lists[0] + lists[1]) == list(range(total))
    assert lists[0] and lists[1], "the keys should spread over both source partitions"
