"""``examples/kafka_events``: the Kafka-event handler example, run end to end on our engine."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.scenario import add_cluster, start_engine, subscribe

EXAMPLE_APP = "examples.kafka_events.orders:app"


def test_kafka_events_example(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    engine = start_engine(engine_factory, service_endpoints.get(EXAMPLE_APP))
    topic = f"{topic_prefix}.orders"
    create_topic(kafka.bootstrap_servers, topic, 2)
    add_cluster(engine, kafka)
    subscribe(engine, topic, "service://CustomerOrders/on_event", {"payload.format": "json"})
    publish(kafka.bootstrap_servers, topic, [
        (b"ann", {"type": "placed", "order": "o-1", "amount": 30}),
        (b"ann", {"type": "placed", "order": "o-2", "amount": 12}),
        (b"bob", {"type": "placed", "order": "o-3", "amount": 5}),
        (b"ann", {"type": "cancelled", "order": "o-1"}),
    ])

    def summary(customer: str) -> object:
        status, body = http("POST", f"{engine.ingress_url}/CustomerOrders/{customer}/summary")
        return body if status == 200 else None

    wait_until(lambda: summary("ann") == {"open": ["o-2"], "total": 12}, 60, "ann's three events in order")
    # bob's event is in another partition of the topic: applied in its own time.
    wait_until(lambda: summary("bob") == {"open": ["o-3"], "total": 5}, 60, "bob's event")
    status, body = http("POST", f"{engine.admin_url}/subscriptions", {"source": "x", "sink": "y"})
    assert status == 400 and "kafka://" in json.dumps(body)
