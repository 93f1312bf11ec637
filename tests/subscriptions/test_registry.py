"""The Confluent wire-format path against a real schema registry (Apicurio Registry, the
``schema_registry`` session fixture), and the client's error handling.

Errors a real registry will not produce on demand (HTTP 500, 401, a hung connection) are
injected with a tiny local HTTP server at the end of this file; everything else talks to
the real registry.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from subscriptions.errors import RecordDecodeError, SchemaRegistryError
from subscriptions.keys import key_mapper
from subscriptions.payload import payload_decoder
from subscriptions.registry import SchemaRegistryClient, confluent_frame, shared_registry_client
from tests.fixtures.ports import free_port
from tests.fixtures.schema_registry import SchemaRegistry
from tests.subscriptions.avro_util import avro_bytes
from tests.subscriptions.test_payload import EVENT, EVENT_JSON, EVENT_SCHEMA


def _subject(kind: str) -> str:
    return f"t-{uuid.uuid4().hex[:10]}-{kind}"


def _confluent_options(registry: SchemaRegistry, prefix: str = "payload") -> dict[str, str]:
    return {f"{prefix}.format": "avro-confluent", "schema.registry.url": registry.url}


def test_wire_format_value_decodes_to_json(schema_registry: SchemaRegistry) -> None:
    client = SchemaRegistryClient(schema_registry.url)
    schema_id = client.register(_subject("value"), json.dumps(EVENT_SCHEMA))
    record = confluent_frame(schema_id, avro_bytes(EVENT_SCHEMA, EVENT))

    decoder = payload_decoder(_confluent_options(schema_registry))
    assert decoder.content_type == "application/json"
    assert decoder.decode(record) == EVENT_JSON


def test_wire_format_key_maps_to_object_key(schema_registry: SchemaRegistry) -> None:
    schema = {"type": "record", "name": "OrderKey", "fields": [{"name": "region", "type": "string"}, {"name": "n", "type": "int"}]}
    client = shared_registry_client(schema_registry.url)
    schema_id = client.register(_subject("key"), json.dumps(schema))
    string_id = client.register(_subject("key"), '"string"')

    mapper = key_mapper(_confluent_options(schema_registry, "key"))
    assert mapper.object_key(confluent_frame(schema_id, avro_bytes(schema, {"region": "eu", "n": 4}))) == '{"n":4,"region":"eu"}'
    assert mapper.object_key(confluent_frame(string_id, avro_bytes("string", "order-17"))) == "order-17"


def test_schema_references_are_resolved(schema_registry: SchemaRegistry) -> None:
    address = {"type": "record", "name": "Address", "namespace": "t", "fields": [{"name": "city", "type": "string"}]}
    person = {"type": "record", "name": "Person", "namespace": "t", "fields": [{"name": "home", "type": "t.Address"}]}
    client = SchemaRegistryClient(schema_registry.url)
    address_subject = _subject("address")
    client.register(address_subject, json.dumps(address))
    person_id = client.register(
        _subject("person"), json.dumps(person), references=[{"name": "t.Address", "subject": address_subject, "version": 1}]
    )
    full = {**person, "fields": [{"name": "home", "type": address}]}
    record = confluent_frame(person_id, avro_bytes(full, {"home": {"city": "Lyon"}}))
    assert payload_decoder(_confluent_options(schema_registry)).decode(record) == b'{"home":{"city":"Lyon"}}'


def test_registering_the_same_schema_again_gives_the_same_id(schema_registry: SchemaRegistry) -> None:
    client = SchemaRegistryClient(schema_registry.url)
    subject = _subject("value")
    assert client.register(subject, '"long"') == client.register(subject, '"long"')


def test_unknown_schema_id_is_a_record_error_naming_the_id(schema_registry: SchemaRegistry) -> None:
    decoder = payload_decoder(_confluent_options(schema_registry), registry_factory=SchemaRegistryClient)
    with pytest.raises(RecordDecodeError, match="schema id 987654 is unknown to the schema registry"):
        decoder.decode(confluent_frame(987654, b"\x02"))


def test_non_avro_schema_is_a_record_error(schema_registry: SchemaRegistry) -> None:
    proto = 'syntax = "proto3";\nmessage Event { string name = 1; }\n'
    body = json.dumps({"schemaType": "PROTOBUF", "schema": proto}).encode()
    request = urllib.request.Request(
        f"{schema_registry.url}/subjects/{_subject('proto')}/versions",
        data=body,
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        schema_id = json.loads(response.read())["id"]
    with pytest.raises(RecordDecodeError, match=f"schema id {schema_id} is a PROTOBUF schema; only Avro"):
        SchemaRegistryClient(schema_registry.url).schema_by_id(schema_id)


def test_record_not_matching_its_registered_schema(schema_registry: SchemaRegistry) -> None:
    client = SchemaRegistryClient(schema_registry.url)
    schema_id = client.register(_subject("value"), json.dumps(EVENT_SCHEMA))
    decoder = payload_decoder(_confluent_options(schema_registry))
    with pytest.raises(RecordDecodeError, match=f"payload.format, schema id {schema_id}"):
        decoder.decode(confluent_frame(schema_id, b"\x02"))


def test_schemas_are_fetched_once_even_from_many_threads(
    schema_registry: SchemaRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = SchemaRegistryClient(schema_registry.url)
    schema_id = client.register(_subject("value"), json.dumps(EVENT_SCHEMA))
    record = confluent_frame(schema_id, avro_bytes(EVENT_SCHEMA, EVENT))
    fetches: list[str] = []
    real_urlopen = urllib.request.urlopen

    def counting_urlopen(request: urllib.request.Request, *args: Any, **kwargs: Any) -> Any:
        fetches.append(request.full_url)
        return real_urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", counting_urlopen)
    decoder = payload_decoder(_confluent_options(schema_registry), registry_factory=lambda url, auth: client)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(decoder.decode, [record] * 200))
    assert set(results) == {EVENT_JSON}
    assert fetches == [f"{schema_registry.url}/schemas/ids/{schema_id}"]


def test_next_url_is_tried_when_the_first_is_down(schema_registry: SchemaRegistry) -> None:
    client = SchemaRegistryClient(f"http://127.0.0.1:{free_port()}, {schema_registry.url}/")
    schema_id = client.register(_subject("value"), '"string"')
    assert client.schema_by_id(schema_id) == "string"


# -- failures injected with a local HTTP server --------------------------------------------


class _Faulty(BaseHTTPRequestHandler):
    """Answers every GET with the server's configured (status, body, delay)."""

    def do_GET(self) -> None:
        server: Any = self.server
        server.seen_auth.append(self.headers.get("Authorization"))
        status, body, delay = server.answer
        time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def faulty() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Faulty)
    server.seen_auth = []
    server.answer = (200, b"{}", 0.0)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("answer", "retryable", "message"),
    [
        ((503, b'{"message": "down"}', 0.0), True, "HTTP 503"),
        ((429, b"{}", 0.0), True, "HTTP 429"),
        ((401, b"{}", 0.0), False, "refused access (HTTP 401); check schema.registry.basic.auth.user.info"),
        ((200, b"<html>", 0.0), False, "gave an unusable answer for schema id 5"),
        ((200, b"{}", 1.0), True, "timed out"),
    ],
)
def test_registry_failures(faulty: Any, answer: tuple[int, bytes, float], retryable: bool, message: str) -> None:
    faulty.answer = answer
    client = SchemaRegistryClient(faulty.url, timeout=0.3)
    with pytest.raises(SchemaRegistryError) as err:
        client.schema_by_id(5)
    assert err.value.retryable is retryable
    assert message in str(err.value)


def test_basic_auth_is_sent_and_never_shown(faulty: Any) -> None:
    faulty.answer = (403, b"{}", 0.0)
    with pytest.raises(SchemaRegistryError) as err:
        SchemaRegistryClient(faulty.url, "svc:s3cret").schema_by_id(1)
    assert faulty.seen_auth == ["Basic c3ZjOnMzY3JldA=="]
    assert "s3cret" not in str(err.value)


def test_invalid_schema_in_registry_is_a_record_error(faulty: Any) -> None:
    faulty.answer = (200, json.dumps({"schema": '{"type": "nope"}'}).encode(), 0.0)
    with pytest.raises(RecordDecodeError, match="schema id 3 in the schema registry is not a valid Avro schema"):
        SchemaRegistryClient(faulty.url).schema_by_id(3)
