"""Invocation metrics of a real engine, and what they cost per invocation.

A real engine and a real official-SDK endpoint (request/response mode, so a call
suspends its caller's attempt); the counters and histograms are read from ``/metrics``
with Prometheus's parser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.engine.observability.metrics_scrape import scrape, total, value
from tests.engine.test_invocations import register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, ServiceEndpoints
from tests.fixtures.systems import http

APP = "tests.fixtures.official_sdk_tracing:app"
CALLS = 5


@pytest.fixture
def endpoint(service_endpoints: ServiceEndpoints) -> Iterator[ServiceEndpoint]:
    yield service_endpoints.get(APP)


def test_started_completed_failed_and_latency_by_service_and_handler(
    engine_factory: Callable[..., EngineProcess], endpoint: ServiceEndpoint
) -> None:
    engine = engine_factory(partitions=2)
    engine.start_and_wait()
    engine.wait_leading_all()
    register(engine, endpoint, use_http_11=True)
    for i in range(CALLS):
        assert http("POST", f"{engine.ingress_url}/TraceFront/hello", f"m{i}") == (200, f"echo m{i}")
    status, _ = http("POST", f"{engine.ingress_url}/TraceFront/fail", "x")
    assert status == 409

    def settled() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        _, samples = scrape(engine.admin_url)
        # The one-way notes end after their callers answered: wait for them too.
        done = value(samples, "logstrate_invocations_completed_total", service="TraceBack", handler="note")
        return samples if done == CALLS else None

    samples = wait_until(settled, 30, "every invocation to be counted")
    for service, handler in (("TraceFront", "hello"), ("TraceBack", "echo"), ("TraceBack", "note")):
        labels = {"service": service, "handler": handler}
        assert value(samples, "logstrate_invocations_started_total", **labels) == CALLS, labels
        assert value(samples, "logstrate_invocations_completed_total", **labels) == CALLS, labels
        assert value(samples, "logstrate_invocations_failed_total", **labels) == 0, labels
        assert value(samples, "logstrate_invocation_duration_seconds_count", **labels) == CALLS, labels
        assert value(samples, "logstrate_invocation_duration_seconds_sum", **labels) > 0, labels
        assert value(samples, "logstrate_invocation_attempt_duration_seconds_count", outcome="ended", **labels) == CALLS
    fail = {"service": "TraceFront", "handler": "fail"}
    assert value(samples, "logstrate_invocations_started_total", **fail) == 1
    assert value(samples, "logstrate_invocations_failed_total", **fail) == 1
    assert value(samples, "logstrate_invocations_completed_total", **fail) == 0
    # Request/response: hello's first attempt suspends on the call, the next one ends.
    hello = {"service": "TraceFront", "handler": "hello"}
    assert value(samples, "logstrate_invocation_attempt_duration_seconds_count", outcome="suspended", **hello) >= CALLS
    # An attempt never lasts longer than its invocation.
    attempts = total(samples, "logstrate_invocation_attempt_duration_seconds_sum", **hello)
    assert attempts <= value(samples, "logstrate_invocation_duration_seconds_sum", **hello)
    # Every durable step went through the WAL producer.
    assert value(samples, "logstrate_wal_produce_latency_seconds_count") >= 3 * CALLS

