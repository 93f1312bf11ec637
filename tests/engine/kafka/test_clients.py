"""The one Kafka client policy (engine/kafka/clients.py) on real librdkafka clients.

The full-queue and error tests point real clients at a port nothing listens on: the
queue cannot drain and librdkafka reports its (transient) connection errors, which is
exactly the situation the policy is for.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError
from structlog.testing import capture_logs

from engine.kafka import clients
from tests.fixtures.ports import free_port, wait_until


def _dead_broker_conf(**extra: object) -> dict[str, object]:
    return {"bootstrap.servers": f"127.0.0.1:{free_port()}", "socket.connection.setup.timeout.ms": 1000, **extra}


def test_full_queue_waits_then_raises_a_typed_error() -> None:
    producer = clients.producer(_dead_broker_conf(**{"queue.buffering.max.messages": 1}), client="full-queue-test")
    clients.produce(producer, "t", wait_s=0, value=b"first")
    started = time.monotonic()
    waits: list[float] = []
    with pytest.raises(clients.KafkaQueueFull, match="local queue stayed full for 0.3s"):
        clients.produce(producer, "t", wait_s=0.3, on_wait=lambda: waits.append(time.monotonic()), value=b"second")
    took = time.monotonic() - started
    assert 0.3 <= took < 2.0
    assert waits, "delivery reports are served (poll) while waiting for room"
    # A caller that must not block (the event loop) gets the error at once.
    started = time.monotonic()
    with pytest.raises(clients.KafkaQueueFull):
        clients.produce(producer, "t", wait_s=0, value=b"third")
    assert time.monotonic() - started < 0.1
    producer.purge()


def test_fatal_errors_raise_a_typed_exception() -> None:
    policy = clients._ErrorPolicy("fatal-test", None)
    with pytest.raises(clients.KafkaFatalError, match="fatal Kafka error in client fatal-test"):
        policy(KafkaError(KafkaError._FENCED, "producer fenced", fatal=True))
    policy(KafkaError(KafkaError._TRANSPORT, "broker down"))  # transient: logged, not raised


def test_an_error_callback_that_raises_surfaces_from_poll() -> None:
    # What the fatal policy relies on: confluent-kafka re-raises a callback's exception
    # from the poll() that served it, on the thread that owns the client.
    class Boom(Exception):
        pass

    def on_error(err: KafkaError) -> None:
        raise Boom(err.str())

    producer = clients.producer(_dead_broker_conf(), client="raise-test", on_error=on_error)
    producer.produce("t", value=b"x")

    def raised() -> bool:
        try:
            producer.poll(0.2)
        except Boom:
            return True
        return False

    wait_until(raised, 20, "the error callback's exception from poll()")
    producer.purge()


def test_librdkafka_logs_and_errors_go_through_structlog_with_the_client_name() -> None:
    with capture_logs() as logs:
        producer = clients.producer(_dead_broker_conf(debug="broker"), client="log-test")
        producer.produce("t", value=b"x")
        wait_until(
            lambda: (producer.poll(0.2) or True) and any(e.get("log_level") == "warning" for e in logs),
            20, "a client error logged",
        )
        producer.purge()
    mine = [e for e in logs if e.get("kafka_client") == "log-test"]
    assert any("facility" in e for e in mine), "librdkafka's log lines carry the client's name"
    errors = [e for e in mine if e["event"].startswith("Kafka client error")]
    assert errors and all("code" in e for e in errors)
    # One line per error code per interval, however often librdkafka reports it.
    assert len(errors) <= len({e["code"] for e in errors})


def test_failed_connection_lines_are_rate_limited_per_client() -> None:
    # A broker outage: librdkafka logs every failed connection attempt (FAIL), dozens a
    # second over all clients; one line per client per interval is kept.
    with capture_logs() as logs:
        producer = clients.producer(
            _dead_broker_conf(**{"reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 10}), client="fail-test"
        )
        producer.produce("t", value=b"x")
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            producer.poll(0.1)  # serves the log lines of ~100 attempts
        producer.purge()
    fails = [e for e in logs if e.get("kafka_client") == "fail-test" and e.get("facility") == "FAIL"]
    assert len(fails) == 1, [e["event"] for e in fails]
