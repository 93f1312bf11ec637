"""Ingress credentials in headers: the handler gets them, every view of the invocation hides them.

A real engine (``ingress_sensitive_headers = x-api-key``) and the official SDK's
``Headers/seen`` in request/response mode, which answers from a second request that
replays the journal: the headers it reports are those the engine kept in the WAL (a
retry after a crash needs them, which is why they are persisted). ``GET
/invocations/{id}`` (journal), ``POST /query`` (``sys_journal.entry_json`` and ``raw``)
and the engine's log show ``<redacted>`` instead of the values of ``Authorization``,
``Cookie``, ``Proxy-Authorization`` and ``X-Api-Key``; a plain header stays visible.
The WAL record itself holds them (whoever reads the topic sees them: Kafka ACLs).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer

from engine.sensitive_headers import REDACTED
from tests.engine.test_invocations import register
from tests.fixtures.engine import EngineProcess
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.ports import wait_until
from tests.fixtures.service_endpoint import ServiceEndpoints
from tests.security.auth_client import request

HEADERS_APP = "tests.fixtures.official_sdk_headers:app"
SENT = {
    "authorization": "Bearer user-token-5b2c9f",
    "cookie": "session=cookie-81aa3e",
    "proxy-authorization": "Basic proxy-cred-0c4d",
    "x-api-key": "apikey-e6f1b7",
}
PLAIN = {"x-plain": "visible-3141"}


def _wal_holds(kafka: KafkaBroker, topic: str, needle: bytes) -> bool:
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": f"peek-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    try:
        def found() -> bool:
            message = consumer.poll(1.0)
            return message is not None and message.error() is None and needle in (message.value() or b"")

        return bool(wait_until(found, 30, f"{needle!r} in {topic}", interval=0))
    finally:
        consumer.close()


def test_handlers_see_credentials_that_no_answer_shows(
    engine_factory: Callable[..., EngineProcess], service_endpoints: ServiceEndpoints, kafka: KafkaBroker,
    topic_prefix: str,
) -> None:
    engine = engine_factory(env={"LOGSTRATE_INGRESS_SENSITIVE_HEADERS": "X-Api-Key"})
    engine.start_and_wait()
    register(engine, service_endpoints.get(HEADERS_APP), use_http_11=True)

    names = [*SENT, *PLAIN]
    reply = request("POST", f"{engine.ingress_url}/Headers/seen", names, {**SENT, **PLAIN})
    assert reply.status == 200, reply
    # The replayed attempt got them from the journal.
    assert reply.json == {name: hashlib.sha256(value.encode()).hexdigest() for name, value in {**SENT, **PLAIN}.items()}
    invocation_id = reply.headers["x-restate-id"]

    described = request("GET", f"{engine.admin_url}/invocations/{invocation_id}")
    assert described.status == 200, described
    text = described.body.decode()
    assert all(value not in text for value in SENT.values()), text
    (input_entry,) = [e for e in described.json["journal"] if e["type"] == "InputCommand"]
    shown = {h["key"]: h["value"] for h in input_entry["entry"]["headers"]}
    assert {name: shown[name] for name in SENT} == {name: REDACTED for name in SENT}
    assert shown["x-plain"] == PLAIN["x-plain"]

    query = request("POST", f"{engine.admin_url}/query",
                    {"query": f"SELECT entry_type, entry_json, entry_lite_json, raw FROM sys_journal "
                              f"WHERE id = '{invocation_id}' ORDER BY index"},
                    {"accept": "application/json"})
    assert query.status == 200, query
    rows = query.json["rows"]
    dumped = json.dumps(rows)
    assert all(value not in dumped for value in SENT.values()), dumped
    (input_row,) = [r for r in rows if r["entry_type"] == "Command: Input"]
    assert REDACTED in input_row["entry_json"] and PLAIN["x-plain"] in input_row["entry_json"]
    # The raw protocol message is redacted too (whatever encoding the JSON answer uses for bytes).
    assert "user-token" not in str(input_row["raw"])

    listing = request("GET", f"{engine.admin_url}/invocations?service=Headers")
    assert listing.status == 200 and all(value not in listing.body.decode() for value in SENT.values())
    assert all(value not in engine.output() for value in SENT.values())

    # The trade-off, documented: the WAL keeps them for retries.
    assert _wal_holds(kafka, f"{topic_prefix}.wal", SENT["x-api-key"].encode())
