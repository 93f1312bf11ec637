"""Traces from a real engine: spans of invocations and attempts, received over OTLP/HTTP.

A real engine (subprocess) with ``LOGSTRATE_TRACING_ENDPOINT`` pointing at an OTLP/HTTP
receiver (:mod:`tests.fixtures.otlp_receiver`), a real official-SDK endpoint, and real
requests: the spans must continue the caller's ``traceparent`` (ingress header, Kafka
record header), nest attempts under their invocation, make a callee's invocation a child
of the calling attempt (a call and a one-way send, through the WAL), and the endpoint
must receive the attempt's ``traceparent``. An invocation an operator kills or cancels
has its span and is counted on ``/metrics`` like one its handler ends.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.observability.tracing import format_traceparent, parse_traceparent, traces_url
from tests.engine.observability.metrics_scrape import scrape, value
from tests.engine.test_invocations import register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish
from tests.fixtures.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoint, spawn_service_endpoint, wait_ready
from tests.fixtures.systems import http

APP = "tests.fixtures.official_sdk_tracing:app"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    otlp = OtlpReceiver().start()
    try:
        yield otlp
    finally:
        otlp.stop()


@pytest.fixture
def traced_endpoint(tmp_path: Path) -> Iterator[tuple[ServiceEndpoint, Path]]:
    log = tmp_path / "traceparents.log"
    endpoint = wait_ready(spawn_service_endpoint(APP, tmp_path, env={"TRACEPARENT_LOG": str(log)}))
    try:
        yield endpoint, log
    finally:
        endpoint.stop()


@pytest.fixture
def traced_engine(engine_factory: Callable[..., EngineProcess], receiver: OtlpReceiver) -> EngineProcess:
    engine = engine_factory(
        partitions=2,
        # Batches leave every 100 ms instead of every 5 s (the SDK's own setting).
        env={"LOGSTRATE_TRACING_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"},
    )
    engine.start_and_wait()
    engine.wait_leading_all()
    return engine


def _named(spans: list[ReceivedSpan], name: str, trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name and s.trace_id == trace_id]


def _one(receiver: OtlpReceiver, name: str, trace_id: str, what: str) -> ReceivedSpan:
    found = wait_until(lambda: _named(receiver.spans(), name, trace_id), 30, what)
    assert len(found) == 1, found
    return found[0]


def _invoke_log(log: Path, path: str) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split(" ", 1)[1] for line in lines if line.split(" ", 1)[0] == path]


@pytest.mark.parametrize("mode", ["bidi", "request-response"])
def test_spans_continue_the_callers_trace_through_calls_and_sends(
    traced_engine: EngineProcess, traced_endpoint: tuple[ServiceEndpoint, Path], receiver: OtlpReceiver,
    mode: str,
) -> None:
    endpoint, log = traced_endpoint
    register(traced_engine, endpoint, use_http_11=mode == "request-response")
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    name = f"n-{secrets.token_hex(3)}"
    status, body = http(
        "POST", f"{traced_engine.ingress_url}/TraceFront/hello", name,
        headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
    )
    assert (status, body) == (200, f"echo {name}")

    # The caller's invocation: a child of the incoming traceparent's span.
    front = _one(receiver, "invocation TraceFront/hello", trace_id, "the invocation span of TraceFront/hello")
    assert front.parent_span_id == caller_span
    assert front.service_name == "logstrate"
    assert front.attributes["rpc.service"] == "TraceFront"
    assert front.attributes["rpc.method"] == "hello"
    assert str(front.attributes["restate.invocation.id"]).startswith("inv_")
    assert "restate.invocation.key" not in front.attributes
    assert front.end_ns >= front.start_ns

    # Its attempts: children of the invocation span (in request/response mode the call
    # suspends the first attempt, so there are several).
    def front_attempts() -> list[ReceivedSpan] | None:
        found = _named(receiver.spans(), "attempt TraceFront/hello", trace_id)
        ended = [s for s in found if s.attributes.get("restate.attempt.outcome") == "ended"]
        return found if ended else None

    attempts = wait_until(front_attempts, 30, "the attempt spans of TraceFront/hello")
    assert {a.parent_span_id for a in attempts} == {front.span_id}
    assert all(a.attributes["restate.invocation.id"] == front.attributes["restate.invocation.id"] for a in attempts)
    if mode == "request-response":
        assert len(attempts) >= 2, attempts
    attempt_ids = {a.span_id for a in attempts}

    # The call and the one-way send: the callee's invocation is a child of a calling attempt.
    for handler in ("echo", "note"):
        callee = _one(receiver, f"invocation TraceBack/{handler}", trace_id, f"the span of TraceBack/{handler}")
        assert callee.parent_span_id in attempt_ids, (handler, callee, attempt_ids)
        assert callee.attributes["restate.invocation.key"] == name
        assert callee.attributes["restate.invocation.target"] == f"TraceBack/{name}/{handler}"
        callee_attempts = wait_until(
            lambda: _named(receiver.spans(), f"attempt TraceBack/{handler}", trace_id), 30, "callee attempts"
        )
        assert {a.parent_span_id for a in callee_attempts} == {callee.span_id}

    # What the endpoint received: the traceparent of the attempt that called it.
    sent = wait_until(lambda: _invoke_log(log, "/invoke/TraceFront/hello") or None, 10, "the endpoint's log")
    for value in sent:
        context = parse_traceparent(value)
        assert context is not None, value
        assert f"{context.trace_id:032x}" == trace_id
        assert f"{context.span_id:016x}" in attempt_ids
    echo_attempts = {a.span_id for a in _named(receiver.spans(), "attempt TraceBack/echo", trace_id)}
    for value in _invoke_log(log, "/invoke/TraceBack/echo"):
        context = parse_traceparent(value)
        assert context is not None and f"{context.span_id:016x}" in echo_attempts, value


def test_without_a_traceparent_an_invocation_starts_its_own_trace_and_failures_are_errors(
    traced_engine: EngineProcess, traced_endpoint: tuple[ServiceEndpoint, Path], receiver: OtlpReceiver,
) -> None:
    endpoint, _ = traced_endpoint
    register(traced_engine, endpoint)
    status, _ = http("POST", f"{traced_engine.ingress_url}/TraceFront/fail", "x")
    assert status == 409

    def failed() -> list[ReceivedSpan]:
        return [s for s in receiver.spans() if s.name == "invocation TraceFront/fail"]

    span = wait_until(failed, 30, "the span of the failed invocation")[0]
    assert span.parent_span_id == ""  # a root span
    assert span.status_code == 2  # STATUS_CODE_ERROR
    attempts = wait_until(lambda: _named(receiver.spans(), "attempt TraceFront/fail", span.trace_id), 30, "attempts")
    assert {a.parent_span_id for a in attempts} == {span.span_id}


def _status(engine: EngineProcess, invocation_id: str) -> str | None:
    status, body = http("GET", f"{engine.admin_url}/invocations/{invocation_id}")
    return str(body["status"]) if status == 200 else None


def test_invocations_an_operator_ends_are_traced_and_counted(
    traced_engine: EngineProcess, traced_endpoint: tuple[ServiceEndpoint, Path], receiver: OtlpReceiver,
) -> None:
    # No attempt reports these ends (a kill aborts the attempt; a cancel before the
    # start runs none): the leader that applies the kill or cancel counts and traces them.
    endpoint, _ = traced_endpoint
    register(traced_engine, endpoint, use_http_11=True)
    key = f"k-{secrets.token_hex(3)}"
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    status, body = http("POST", f"{traced_engine.ingress_url}/TraceBack/{key}/block/send", "x",
                        headers={"traceparent": f"00-{trace_id}-{caller_span}-01"})
    assert status == 202, body
    blocking = body["invocationId"]
    wait_until(lambda: _status(traced_engine, blocking) == "suspended", 30, "the first block to suspend")
    status, body = http("POST", f"{traced_engine.ingress_url}/TraceBack/{key}/block/send", "y")
    assert status == 202, body
    queued = body["invocationId"]
    assert _status(traced_engine, queued) == "inboxed"

    assert http("PATCH", f"{traced_engine.admin_url}/invocations/{queued}/cancel")[0] == 200
    assert http("PATCH", f"{traced_engine.admin_url}/invocations/{blocking}/kill")[0] == 200

    killed = _one(receiver, "invocation TraceBack/block", trace_id, "the span of the killed invocation")
    assert killed.parent_span_id == caller_span  # the caller's trace, continued
    assert killed.status_code == 2 and killed.attributes["restate.invocation.id"] == blocking
    assert killed.attributes["restate.invocation.key"] == key
    attempts = _named(receiver.spans(), "attempt TraceBack/block", trace_id)
    assert attempts and {a.parent_span_id for a in attempts} == {killed.span_id}

    def cancelled() -> list[ReceivedSpan]:
        return [s for s in receiver.spans()
                if s.name == "invocation TraceBack/block" and s.attributes.get("restate.invocation.id") == queued]

    span = wait_until(cancelled, 30, "the span of the invocation cancelled before it started")[0]
    assert span.status_code == 2 and span.parent_span_id == ""

    block = {"service": "TraceBack", "handler": "block"}

    def counted() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        _, samples = scrape(traced_engine.admin_url)
        return samples if value(samples, "logstrate_invocations_failed_total", **block) == 2 else None

    samples = wait_until(counted, 30, "both ends to be counted as failed")
    assert value(samples, "logstrate_invocations_started_total", **block) == 1  # the cancelled one never started
    assert value(samples, "logstrate_invocations_completed_total", **block) == 0
    assert value(samples, "logstrate_invocation_duration_seconds_count", **block) == 2


def test_a_kafka_record_traceparent_continues_its_trace(
    traced_engine: EngineProcess, traced_endpoint: tuple[ServiceEndpoint, Path], receiver: OtlpReceiver,
    kafka: KafkaBroker, topic_prefix: str,
) -> None:
    endpoint, _ = traced_endpoint
    register(traced_engine, endpoint)
    topic = f"{topic_prefix}.events"
    create_topic(kafka.bootstrap_servers, topic, 1)
    status, body = http("POST", f"{traced_engine.admin_url}/kafka-clusters",
                        {"name": "local", "properties": {"bootstrap.servers": kafka.bootstrap_servers}})
    assert status == 201, body
    status, body = http("POST", f"{traced_engine.admin_url}/subscriptions", {
        "source": f"kafka://local/{topic}", "sink": "service://TraceBack/echo",
        "options": {"auto.offset.reset": "earliest"},
    })
    assert status == 201, body
    trace_id, producer_span = secrets.token_hex(16), secrets.token_hex(8)
    publish(kafka.bootstrap_servers, topic, [(b"k1", "from kafka")],
            headers=[("traceparent", f"00-{trace_id}-{producer_span}-01".encode())])
    span = _one(receiver, "invocation TraceBack/echo", trace_id, "the span of the subscription's invocation")
    assert span.parent_span_id == producer_span
    assert span.attributes["restate.invocation.key"] == "k1"


def test_tracing_is_off_by_default_and_the_sdk_is_not_even_loaded() -> None:
    # An engine without tracing_endpoint imports no OpenTelemetry module at all, so no
    # invocation can create a span object (engine.node imports the tracer lazily).
    code = (
        "import sys, engine.node, engine.partition.leader.invocations, engine.invoker.session;"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_traceparent_helpers() -> None:
    value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    context = parse_traceparent(value)
    assert context is not None and format_traceparent(context) == value
    for bad in ("", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", "ff-" + value[3:],
                "00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-xyz-b7ad6b7169203331-01",
                value + "-extra"):
        assert parse_traceparent(bad) is None, bad
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("https://c/otlp/v1/traces") == "https://c/otlp/v1/traces"


def test_tracing_endpoint_setting_flags_over_env_over_toml(tmp_path: Path) -> None:
    from engine.config import load_config
    from engine.errors import ConfigError

    assert load_config(env={}).tracing_endpoint is None  # off by default
    toml = tmp_path / "engine.toml"
    toml.write_text('tracing_endpoint = "http://toml:4318"\n')
    assert load_config(config_file=toml, env={}).tracing_endpoint == "http://toml:4318"
    env = {"LOGSTRATE_TRACING_ENDPOINT": "http://env:4318"}
    assert load_config(config_file=toml, env=env).tracing_endpoint == "http://env:4318"
    flags = {"tracing_endpoint": "https://flag:4318/v1/traces"}
    assert load_config(config_file=toml, env=env, overrides=flags).tracing_endpoint == "https://flag:4318/v1/traces"
    with pytest.raises(ConfigError, match="tracing_endpoint must be an http"):
        load_config(env={"LOGSTRATE_TRACING_ENDPOINT": "collector:4318"})


def test_a_call_carries_the_trace_context_into_the_callee_headers() -> None:
    # The state machine's rule (WAL schema v11): the calling attempt's traceparent joins
    # the callee's headers, unless the command names its own.
    from engine.partition.state_machine.journal_commands import _callee_headers
    from engine.wal.records import Header
    from restate_protocol import pb

    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    plain = pb.CallCommandMessage(service_name="S", handler_name="h", headers=[pb.Header(key="a", value="1")])
    assert _callee_headers(plain, caller) == (Header("a", "1"), Header("traceparent", caller))
    assert _callee_headers(plain, None) == (Header("a", "1"),)
    own = pb.OneWayCallCommandMessage(service_name="S", handler_name="h",
                                      headers=[pb.Header(key="traceparent", value="00-own")])
    assert _callee_headers(own, caller) == (Header("traceparent", "00-own"),)
