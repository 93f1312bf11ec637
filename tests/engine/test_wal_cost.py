"""The WAL cost of an invocation, counted in Kafka records (deterministic, not timed).

Every Kafka record on an invocation's path is a sequential produce-and-read-back for
the invocation (docs/PERFORMANCE.md): a no-op call is ONE record (its ``Invoke`` held
back and sent with its attempt's deployment pin, output and end, see
``engine/partition/leader/deferred_invokes.py``), a no-op send two (its caller is
answered once the ``Invoke`` is durable), and a ``ctx.run`` step adds one record per
attempt. These tests read the real WAL topic after
real invocations through the official SDK and fail if the count grows.

The counts are those of request/response attempts over HTTP/1.1 (``--no-invoker-http2``),
where an attempt's records leave together once its answer is complete. In a
bidirectional stream (the default for endpoints that speak HTTP/2) records leave as
their messages arrive, so how they group into Kafka records depends on timing; the
no-op, whose messages arrive together, is counted in that mode too.
"""

from __future__ import annotations

import re
import time
import urllib.request
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


def wal_records_of(kafka: KafkaBroker, engine: EngineProcess, invocation_id: InvocationId) -> list[list[str]]:
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


def _leading_engine(
    engine_factory: Callable[..., EngineProcess], greeter: ServiceEndpoint, transport: str
) -> EngineProcess:
    """An engine with the greeter registered, leading every WAL partition: only the
    partition's leader holds an Invoke back (a call that reaches a process that does not
    lead yet is appended as it is)."""
    engine = engine_factory(partitions=PARTITIONS, extra_args=INVOKER_TRANSPORTS[transport])
    engine.start_and_wait()
    register(engine, greeter)
    engine.wait_leading_all()
    return engine


def _held_invokes(engine: EngineProcess, left: str) -> float:
    """``logstrate_call_invokes_held_total{left=...}`` summed over the partitions."""
    with urllib.request.urlopen(f"{engine.admin_url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(v) for v in re.findall(rf'logstrate_call_invokes_held_total{{[^}}]*left="{left}"[^}}]*}} (\S+)', text))


@pytest.mark.parametrize("transport", sorted(INVOKER_TRANSPORTS))
def test_a_noop_call_costs_one_wal_record(
    kafka: KafkaBroker, engine_factory: Callable[..., EngineProcess], greeter: ServiceEndpoint, transport: str
) -> None:
    engine = _leading_engine(engine_factory, greeter, transport)
    # The first call may outlast the hold (connection set-up, the endpoint's warm-up).
    assert call(f"{engine.ingress_url}/Greeter/greet", "Bo")[0] == 200
    status, body, headers = call(f"{engine.ingress_url}/Greeter/greet", "Ada")
    assert (status, body) == (200, "Hello Ada")
    invocation_id = InvocationId.parse(headers["x-restate-id"])

    assert wal_records_of(kafka, engine, invocation_id) == [
        ["Invoke", "DeploymentPinned", "JournalAppend", "InvocationEnded"],
    ]
    assert _held_invokes(engine, "with_attempt") >= 1


def test_a_send_and_a_slow_call_append_their_invoke_alone(
    kafka: KafkaBroker, engine_factory: Callable[..., EngineProcess], greeter: ServiceEndpoint
) -> None:
    engine = _leading_engine(engine_factory, greeter, "http1.1")
    # A send's caller is answered once the Invoke is durable: it is never held back.
    status, body, _ = call(f"{engine.ingress_url}/Greeter/greet/send", "Ada")
    assert status == 202, body
    sent = InvocationId.parse(body["invocationId"])
    # A handler slower than the hold: its Invoke goes alone (the invocation is visible
    # while it runs), the attempt's records after it.
    status, body, headers = call(f"{engine.ingress_url}/Greeter/greet_slowly", "Ada")
    assert (status, body) == (200, "Hello Ada, slowly")
    slow = InvocationId.parse(headers["x-restate-id"])

    expected = [["Invoke"], ["DeploymentPinned", "JournalAppend", "InvocationEnded"]]
    assert wal_records_of(kafka, engine, slow) == expected
    assert _held_invokes(engine, "alone") == 1
    # The send's attempt may end before or after this read: wait for it to be there.
    deadline = time.monotonic() + 30
    while (records := wal_records_of(kafka, engine, sent)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert records == expected


def test_a_run_step_costs_one_wal_record_per_attempt(
    kafka: KafkaBroker, engine_factory: Callable[..., EngineProcess], greeter: ServiceEndpoint
) -> None:
    engine = _leading_engine(engine_factory, greeter, "http1.1")
    assert call(f"{engine.ingress_url}/Greeter/greet_with_run", "Bo")[0] == 200  # warm-up, as above
    status, body, headers = call(f"{engine.ingress_url}/Greeter/greet_with_run", "Ada")
    assert (status, body) == (200, "Hello Ada from a side effect")
    invocation_id = InvocationId.parse(headers["x-restate-id"])

    records = wal_records_of(kafka, engine, invocation_id)
    # Request/response: the first attempt proposes the run's result and suspends (the
    # call's Invoke travels with it); the second replays it and ends. Each attempt's
    # records travel as one Kafka record.
    assert len(records) == 2, records
    assert records[0][:2] == ["Invoke", "DeploymentPinned"] and records[0][-1] == "InvocationSuspended", records
    assert records[1][-1] == "InvocationEnded", records
