"""The WAL cost of an invocation, counted in Kafka records (deterministic, not timed).

Every Kafka record on an invocation's path is a sequential produce-and-read-back for
the invocation (docs/PERFORMANCE.md): a no-op is the ``Invoke`` and then ONE record
from its attempt (the deployment pin, the output and the end, batched), and a
``ctx.run`` step adds one record per attempt. These tests read the real WAL topic after
real invocations through the official SDK and fail if the count grows.

The counts are those of request/response attempts over HTTP/1.1 (``--no-invoker-http2``),
where an attempt's records leave together once its answer is complete. In a
bidirectional stream (the default for endpoints that speak HTTP/2) records leave as
their messages arrive, so how they group into Kafka records depends on timing; the
no-op, whose messages arrive together, is counted in that mode too.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from engine.ids import InvocationId
from engine.wal import codec
from engine.wal import records as r
from engine.wal.partitioning import partition_for
from tests.engine.test_invocations import call, register
from tests.fixtures.engine import INVOKER_TRANSPORTS, EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints

PARTITIONS = 4
GREETER_APP = "tests.fixtures.official_sdk_greeter:app"  # greet: no journal beyond input/output


@pytest.fixture
def greeter(service_endpoints: ServiceEndpoints) -> ServiceEndpoint:
    return service_endpoints.get(GREETER_APP)


def _wal_records_of(kafka: KafkaBroker, engine: EngineProcess, invocation_id: InvocationId) -> list[list[str]]:
    """The Kafka records of the invocation's WAL partition that concern it, each as the
    list of record types it carries (a batch lists its members)."""
    partition = partition_for(invocation_id.partition_key, PARTITIONS)
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "wal-cost-reader",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        topic = f"{engine.topic_prefix}.wal"
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        consumer.assign([TopicPartition(topic, partition, 0)])
        found: list[list[str]] = []
        position = 0
        while position < high:
            message = consumer.poll(10)
            assert message is not None, "the WAL partition could not be read back"
            assert message.error() is None, message.error()
            position = message.offset() + 1
            record = codec.decode(message.value()).record
            members = record.records if isinstance(record, r.RecordBatch) else (record,)
            if any(getattr(m, "invocation_id", None) == invocation_id for m in members):
                found.append([type(m).__name__ for m in members])
        return found
    finally:
        consumer.close()


@pytest.mark.parametrize("transport", sorted(INVOKER_TRANSPORTS))
def test_a_noop_invocation_costs_two_wal_records(
    kafka: KafkaBroker, engine_factory: Callable[..., EngineProcess], greeter: ServiceEndpoint, transport: str
) -> None:
    engine = engine_factory(partitions=PARTITIONS, extra_args=INVOKER_TRANSPORTS[transport])
    engine.start_and_wait()
    register(engine, greeter)
    status, body, headers = call(f"{engine.ingress_url}/Greeter/greet", "Ada")
    assert (status, body) == (200, "Hello Ada")
    invocation_id = InvocationId.parse(headers["x-restate-id"])

    assert _wal_records_of(kafka, engine, invocation_id) == [
        ["Invoke"],
        ["DeploymentPinned", "JournalAppend", "InvocationEnded"],
    ]


def test_a_run_step_costs_one_wal_record_per_attempt(
    kafka: KafkaBroker, engine_factory: Callable[..., EngineProcess], greeter: ServiceEndpoint
) -> None:
    engine = engine_factory(partitions=PARTITIONS, extra_args=INVOKER_TRANSPORTS["http1.1"])
    engine.start_and_wait()
    register(engine, greeter)
    status, body, headers = call(f"{engine.ingress_url}/Greeter/greet_with_run", "Ada")
    assert (status, body) == (200, "Hello Ada from a side effect")
    invocation_id = InvocationId.parse(headers["x-restate-id"])

    records = _wal_records_of(kafka, engine, invocation_id)
    # Request/response: the first attempt proposes the run's result and suspends; the
    # second replays it and ends. Each attempt's records travel as one Kafka record.
    assert records[0] == ["Invoke"]
    assert len(records) == 3, records
    assert records[1][0] == "DeploymentPinned" and records[1][-1] == "InvocationSuspended", records
    assert records[2][-1] == "InvocationEnded", records
