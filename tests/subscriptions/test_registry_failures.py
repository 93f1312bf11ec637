"""Schema-registry errors that retrying cannot fix: bad records go to the error path, a bad
registry configuration halts the subscription at the failing record, nothing is lost.

* An unknown schema id (HTTP 404 with the registry's error code 40403) is one bad record:
  dead-lettered (or skipped loudly), and the records after it still run.
* A ``schema.registry.url`` that is not the registry's API (HTTP 404 *without* a
  registry error code, for every id) or refused credentials (401/403) would fail every
  record: the consumer halts — its partitions paused, nothing committed past the failing
  record, ``status.this_process.halted`` saying what to fix, one log line — and after the
  documented fix (recreate the subscription with the same ``group.id``, or pause/resume
  once the registry is fixed) every event arrives exactly once, in order.

The real registry (Apicurio, ``schema_registry``) gives the real 404s. It runs without
authentication, so the 401 comes from a tiny local HTTP server standing in for a
registry that refuses the subscription's credentials; once "fixed" it relays requests
to the real registry.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from subscriptions.errors import SchemaRegistryError
from subscriptions.registry import SchemaRegistryClient, confluent_frame
from tests.fixtures.engine import SEALING, EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.kafka_topics import create_topic, publish, read_all
from tests.fixtures.ports import wait_until
from tests.fixtures.schema_registry import SchemaRegistry
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.fixtures.systems import http
from tests.subscriptions.avro_util import avro_bytes
from tests.subscriptions.scenario import SUBSCRIPTION_APP, add_cluster, object_state, start_engine, subscribe

SEQ = {"type": "record", "name": "Seq", "namespace": "t", "fields": [{"name": "seq", "type": "int"}]}
SINK = "service://SeqLog/append"
HALTED_LOG = "subscription halted"
KEYS = ("k0", "k1", "k2", "k3")


def _register_seq(registry: SchemaRegistry) -> int:
    return SchemaRegistryClient(registry.url).register(f"t-{uuid.uuid4().hex[:10]}-value", json.dumps(SEQ))


def _events(schema_id: int, start: int, stop: int) -> list[tuple[bytes, bytes]]:
    """Events ``start..stop`` round-robin over :data:`KEYS`, each ``{"seq": n}`` counting per key."""
    return [
        (KEYS[i % len(KEYS)].encode(), confluent_frame(schema_id, avro_bytes(SEQ, {"seq": i // len(KEYS)})))
        for i in range(start, stop)
    ]


def _options(url: str, group: str, **more: str) -> dict[str, str]:
    return {"payload.format": "avro-confluent", "schema.registry.url": url, "group.id": group, **more}


def _status(engine: EngineProcess, sub: str) -> dict[str, Any]:
    status, body = http("GET", f"{engine.admin_url}/subscriptions/{sub}")
    assert status == 200, body
    result: dict[str, Any] = body["status"]
    return result


def _halted(engine: EngineProcess, sub: str) -> str:
    return str(wait_until(lambda: _status(engine, sub).get("this_process", {}).get("halted"), 60,
                          "the subscription consumer to halt"))


def _assert_held_at_start(engine: EngineProcess, sub: str, published: int) -> None:
    """Nothing was committed past the failing first record, and nothing ran."""
    # A few poll rounds of the halted consumer: it must neither retry nor move on.
    time.sleep(2.0)
    status = _status(engine, sub)
    assert status["partitions"] == [{"partition": 0, "committed": None, "end": published, "lag": published}], status
    assert status["this_process"]["ingested"] == 0, status
    for key in KEYS:
        assert object_state(engine, "SeqLog", key).get("seqs") is None
    assert engine.output().count(HALTED_LOG) == 1, "the halt is logged once, not on every poll"


def _assert_exactly_once_in_order(engine: EngineProcess, per_key: int) -> None:
    def lists() -> dict[str, list[int]] | None:
        got = {key: object_state(engine, "SeqLog", key).get("seqs") or [] for key in KEYS}
        return got if sum(map(len, got.values())) >= per_key * len(KEYS) else None

    got = wait_until(lists, 120, "every event after the fix", interval=0.5)
    assert got == {key: list(range(per_key)) for key in KEYS}


# --- the client against the real registry -------------------------------------------------------


def test_a_url_that_is_not_the_registry_api_is_not_a_bad_record(schema_registry: SchemaRegistry) -> None:
    schema_id = _register_seq(schema_registry)
    with pytest.raises(SchemaRegistryError) as err:
        SchemaRegistryClient(f"{schema_registry.url}/wrong").schema_by_id(schema_id)
    assert err.value.retryable is False
    assert "HTTP 404 without a schema-registry error code" in str(err.value)
    assert "check schema.registry.url" in str(err.value)


# --- a local stand-in for a registry that refuses the credentials -------------------------------


class _Gate(BaseHTTPRequestHandler):
    """``server.mode``: "401" refuses every request; "relay" forwards GETs to the real registry."""

    def do_GET(self) -> None:
        server: Any = self.server
        status, body = 401, b'{"error_code": 40101, "message": "Unauthorized"}'
        if server.mode == "relay":
            try:
                with urllib.request.urlopen(server.upstream + self.path, timeout=10) as answer:
                    status, body = answer.status, answer.read()
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read()
        elif server.mode != "401":
            status, body = int(server.mode), b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gate(schema_registry: SchemaRegistry) -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Gate)
    server.mode = "401"
    server.upstream = schema_registry.url
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("mode", "retryable"), [("408", True), ("401", False), ("403", False), ("400", False)])
def test_client_errors_are_permanent_except_timeouts(gate: Any, mode: str, retryable: bool) -> None:
    gate.mode = mode
    with pytest.raises(SchemaRegistryError) as err:
        SchemaRegistryClient(gate.url).schema_by_id(5)
    assert err.value.retryable is retryable, str(err.value)


# --- subscriptions on a real engine ---------------------------------------------------------------


def test_unknown_schema_id_is_a_bad_record_dead_lettered_and_the_rest_runs(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    schema_registry: SchemaRegistry, topic_prefix: str,
) -> None:
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP))
    add_cluster(engine, kafka)
    schema_id = _register_seq(schema_registry)
    topic, dlq = f"{topic_prefix}.unknown-id", f"{topic_prefix}.dlq"
    create_topic(kafka.bootstrap_servers, topic, 1)
    create_topic(kafka.bootstrap_servers, dlq, 1)
    sub = subscribe(engine, topic, SINK, _options(schema_registry.url, f"{topic_prefix}-g", **{"dead-letter-topic": dlq}))
    unknown = confluent_frame(987_654, avro_bytes(SEQ, {"seq": 0}))
    good = _events(schema_id, 0, 8)
    publish(kafka.bootstrap_servers, topic, [*good[:4], (b"bad", unknown), *good[4:]])

    _assert_exactly_once_in_order(engine, per_key=2)
    (dead,) = wait_until(lambda: read_all(kafka.bootstrap_servers, dlq), 60, "the dead letter")
    headers = dict(dead.headers())
    assert dead.key() == b"bad" and dead.value() == unknown
    assert b"schema id 987654 is unknown to the schema registry" in headers["logstrate.error.message"]
    assert headers["logstrate.source.offset"] == b"4"
    local = _status(engine, sub)["this_process"]
    assert local["failed"] == 1 and local["halted"] is None, local


def test_a_url_that_is_not_the_registry_api_halts_until_the_subscription_is_recreated(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    schema_registry: SchemaRegistry, topic_prefix: str,
) -> None:
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP))
    add_cluster(engine, kafka)
    schema_id = _register_seq(schema_registry)
    topic, group = f"{topic_prefix}.bad-url", f"{topic_prefix}-g"
    dlq = f"{topic_prefix}.dlq"
    create_topic(kafka.bootstrap_servers, topic, 1)
    create_topic(kafka.bootstrap_servers, dlq, 1)
    publish(kafka.bootstrap_servers, topic, _events(schema_id, 0, 12))
    # A real 404 from the real registry: the path below its API does not exist. Even with
    # a dead-letter topic, no record is dead-lettered: it is not the records' fault.
    bad = subscribe(engine, topic, SINK, _options(f"{schema_registry.url}/wrong", group, **{"dead-letter-topic": dlq}))

    halted = _halted(engine, bad)
    assert "does not look like a Confluent-compatible registry API; check schema.registry.url" in halted
    assert "Consumption stopped at partition 0 offset 0" in halted
    assert "delete the subscription and create it again" in halted and f"option group.id={group}" in halted
    publish(kafka.bootstrap_servers, topic, _events(schema_id, 12, 20))
    _assert_held_at_start(engine, bad, published=20)
    assert read_all(kafka.bootstrap_servers, dlq) == []

    # The documented fix: the same consumer group, the corrected URL.
    assert http("DELETE", f"{engine.admin_url}/subscriptions/{bad}")[0] == 202
    fixed = subscribe(engine, topic, SINK, _options(schema_registry.url, group))
    _assert_exactly_once_in_order(engine, per_key=5)
    local = _status(engine, fixed)["this_process"]
    assert local["halted"] is None and local["failed"] == 0, local


def test_refused_credentials_halt_until_the_registry_is_fixed_and_the_subscription_restarted(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    schema_registry: SchemaRegistry, gate: Any, topic_prefix: str,
) -> None:
    engine = start_engine(engine_factory, service_endpoints.get(SUBSCRIPTION_APP), env=dict(SEALING))
    add_cluster(engine, kafka)
    schema_id = _register_seq(schema_registry)
    topic = f"{topic_prefix}.auth"
    create_topic(kafka.bootstrap_servers, topic, 1)
    publish(kafka.bootstrap_servers, topic, _events(schema_id, 0, 8))
    options = _options(gate.url, f"{topic_prefix}-g", **{"schema.registry.basic.auth.user.info": "svc:wrong"})
    sub = subscribe(engine, topic, SINK, options)

    halted = _halted(engine, sub)
    assert "refused access (HTTP 401); check schema.registry.basic.auth.user.info" in halted
    assert f"PATCH /subscriptions/{sub}/pause and then /resume" in halted
    assert "svc:wrong" not in halted and "svc:wrong" not in engine.output()
    _assert_held_at_start(engine, sub, published=8)

    # The registry accepts the credentials now; restarting the consumers picks it up.
    gate.mode = "relay"
    assert http("PATCH", f"{engine.admin_url}/subscriptions/{sub}/pause")[0] == 200
    wait_until(lambda: "this_process" not in _status(engine, sub), 30, "the paused consumer to stop")
    assert http("PATCH", f"{engine.admin_url}/subscriptions/{sub}/resume")[0] == 200
    _assert_exactly_once_in_order(engine, per_key=2)
    local = _status(engine, sub)["this_process"]
    assert local["halted"] is None and local["ingested"] == 8, local
