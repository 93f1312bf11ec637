"""An attempt whose records the WAL refuses is retried; it does not stay "invoked" for
good with its caller waiting.

Real broker, engine and official-SDK endpoint. ``Outage/gated`` runs one ``ctx.run``
step held at a gate this test owns; while it is held the WAL topic's
``max.message.bytes`` is set below any record, so the broker refuses every append with
MESSAGE_TOO_LARGE — the attempt's run completion, then the record of its failure — while
the consumer group goes on (a broker outage longer than the delivery timeout fails the
appends the same way, but also ends the group session, and the new leadership then
reloads the invocation; this keeps the leader in place). Before, the attempt ended as
"attempt crashed" and the call hung for good. Now the attempt is run again, in-process
while not even its failure can be recorded, and once the topic takes records again the
call is answered. (``min.insync.replicas`` above the replication factor does not refuse
appends on Kafka 4.1, so it cannot stand in.)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from engine.wal import codec
from engine.wal.records import OutboxTruncate
from tests.engine.test_invocations import call, register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints

pytestmark = pytest.mark.kafka


class Gate:
    """``POST /`` blocks until :meth:`open`; counts arrivals."""

    def __init__(self) -> None:
        self.arrived = 0
        self.opened = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", "0")))
                gate.arrived += 1
                gate.opened.wait(60)
                body = json.dumps({"n": gate.arrived}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self.opened.set()
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.close()


def _set_max_message_bytes(bootstrap: str, topic: str, value: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", str(value), incremental_operation=AlterConfigOpType.SET)
    ])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)

    def applied() -> bool:
        described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
        entries = next(iter(described.values())).result(timeout=10)
        return bool(entries["max.message.bytes"].value == str(value))

    wait_until(applied, 30, f"max.message.bytes={value} on {topic}")


def _wait_refused(bootstrap: str, topic: str) -> None:
    """Until the broker refuses appends to ``topic`` (its log may take the new config a
    little after the metadata says so). The probe is a WAL record that changes nothing
    when it does land: epoch 0 is older than any leader's, so applying it ignores it."""
    probe = codec.encode(OutboxTruncate(0), epoch=0)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "delivery.timeout.ms": 5000})

    def refused() -> bool:
        errors: list[KafkaError | None] = []
        producer.produce(topic, value=probe, partition=0, on_delivery=lambda err, _msg: errors.append(err))
        producer.flush(10)
        return bool(errors and errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE)

    wait_until(refused, 30, f"the broker to refuse appends to {topic}", interval=0.2)


def test_an_attempt_whose_records_kafka_refuses_is_retried_until_they_land(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str, gate: Gate,
) -> None:
    engine = engine_factory(partitions=1, env={
        "LOGSTRATE_KAFKA_WAL_DELIVERY_TIMEOUT_MS": "3000", "LOGSTRATE_INGRESS_KAFKA_TIMEOUT_S": "2"
    })
    engine.start_and_wait()
    engine.wait_leading_all()
    register(engine, service_endpoints.get("tests.fixtures.outage_services:app"))
    wal = f"{topic_prefix}.wal"

    answer: list[tuple[int, Any]] = []

    def caller() -> None:
        status, body, _ = call(f"{engine.ingress_url}/Outage/gated", gate.url, timeout=120,
                               headers={"idempotency-key": "gated-1"})
        answer.append((status, body))

    thread = threading.Thread(target=caller, daemon=True)
    thread.start()
    wait_until(lambda: gate.arrived >= 1, 30, "the step to reach the gate")
    _set_max_message_bytes(kafka.bootstrap_servers, wal, 16)
    try:
        _wait_refused(kafka.bootstrap_servers, wal)
        gate.opened.set()
        # The run completion is refused, the failure record too; the attempt is run
        # again in-process (the step reaches the gate again), and again.
        wait_until(lambda: gate.arrived >= 3, 60, "the attempt to be run again while the WAL refuses its records")
        assert not answer, answer
    finally:
        _set_max_message_bytes(kafka.bootstrap_servers, wal, 1048588)
    thread.join(90)
    assert answer and answer[0][0] == 200, (answer, engine.output()[-3000:])
    assert isinstance(answer[0][1], int)
