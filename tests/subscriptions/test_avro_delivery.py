"""Avro events reach handlers as JSON: Confluent wire format (real registry) and inline schema."""

from __future__ import annotations

import json
from collections.abc import Callable

from subscriptions.registry import SchemaRegistryClient, confluent_frame
from tests.fixtures.engine import SEALING, EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.ports import wait_until
from tests.fixtures.schema_registry import SchemaRegistry
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.avro_util import avro_bytes
from tests.subscriptions.scenario import SUBSCRIPTION_APP, add_cluster, object_state, start_engine, subscribe

ORDER = {
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "amount", "type": "long"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
KEY = {"type": "record", "name": "CustomerKey", "fields": [{"name": "customer", "type": "string"}]}


def test_avro_confluent_and_inline_payloads_and_avro_keys(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    schema_registry: SchemaRegistry, topic_prefix: str,
) -> None:
    # The subscription names registry credentials: stored sealed, so the engine needs a secrets key.
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP), env=dict(SEALING))
    add_cluster(engine, kafka)
    registry = SchemaRegistryClient(schema_registry.url)
    value_id = registry.register(f"{topic_prefix}.confluent-value", json.dumps(ORDER))
    key_id = registry.register(f"{topic_prefix}.confluent-key", json.dumps(KEY))

    confluent_topic, inline_topic = f"{topic_prefix}.confluent", f"{topic_prefix}.inline"
    for topic in (confluent_topic, inline_topic):
        create_topic(kafka.bootstrap_servers, topic, 1)
    subscribe(engine, confluent_topic, "service://SeqLog/headers", {
        "payload.format": "avro-confluent", "key.format": "avro-confluent", "schema.registry.url": schema_registry.url,
    })
    sub_inline = subscribe(engine, inline_topic, "service://SeqLog/headers", {
        "payload.format": "avro", "payload.avro.schema": json.dumps(ORDER),
        "schema.registry.basic.auth.user.info": "user:secret",  # unused here; must be redacted
    })

    publish(kafka.bootstrap_servers, confluent_topic, [(
        confluent_frame(key_id, avro_bytes(KEY, {"customer": "carol"})),
        confluent_frame(value_id, avro_bytes(ORDER, {"id": "o-1", "amount": 1250, "note": "gift"})),
    )])
    publish(kafka.bootstrap_servers, inline_topic, [(b"dave", avro_bytes(ORDER, {"id": "o-2", "amount": 7, "note": None}))])

    carol = wait_until(lambda: object_state(engine, "SeqLog", '{"customer":"carol"}').get("last"), 60,
                       "the Confluent-framed event to reach its object")
    assert carol["input"] == {"id": "o-1", "amount": 1250, "note": "gift"}
    dave = wait_until(lambda: object_state(engine, "SeqLog", "dave").get("last"), 60, "the inline-schema event")
    assert dave["input"] == {"id": "o-2", "amount": 7, "note": None}

    status, body = http("GET", f"{engine.admin_url}/subscriptions/{sub_inline}")
    assert status == 200 and body["options"]["schema.registry.basic.auth.user.info"] == "***"
