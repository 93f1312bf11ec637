"""A small synchronous client for a Confluent-compatible schema registry, and the wire format.

Only what decoding needs: the Avro writer schema of a schema id (``GET /schemas/ids/{id}``,
following Confluent schema references), cached forever per client because a schema id
never changes meaning, and ``register`` (``POST /subjects/{subject}/versions``) for tests
and tools. Any registry speaking Confluent's REST API works: Confluent Schema Registry,
Karapace, Redpanda, and Apicurio Registry under its compatibility path, e.g.
``http://registry:8080/apis/ccompat/v7``. ``schema.registry.url`` is that base URL; a
comma-separated list is tried in order, the way Confluent's clients do.

It is synchronous on purpose: the subscription consumer decodes records on its own
thread, and a cache miss there must block that partition until the schema is known.
Only the standard library is used (``urllib``), so there is no connection pool to manage.

Errors: an unknown schema id (HTTP 404 with Confluent's error code 40403; 40401/40402
for a schema reference's subject or version) is a :class:`RecordDecodeError` naming the
id — that record cannot be decoded, ever, so it is a bad record, not an outage. An
unreachable registry (connection refused, timeout, HTTP 5xx/429/408) is a
:class:`SchemaRegistryError` with ``retryable=True``. Bad credentials (401/403), any other
client error — notably a 404 *without* a registry error code, which is what a
``schema.registry.url`` that is not the registry's API answers, for every id — and
malformed answers are ``retryable=False``: a person must fix the configuration.

The Confluent wire format framing a record is: magic byte ``0``, the schema id as a
4-byte big-endian integer, then the Avro binary encoding of the datum
(:func:`split_confluent_frame`, :func:`confluent_frame`).
"""

from __future__ import annotations

import base64
import http.client
import json
import struct
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, Final

from fastavro import parse_schema
from fastavro.types import NamedSchemas, Schema

from subscriptions.errors import InvalidSubscriptionOptions, RecordDecodeError, SchemaRegistryError

MAGIC_BYTE: Final = 0
_HEADER: Final = struct.Struct(">bI")
_CONTENT_TYPE: Final = "application/vnd.schemaregistry.v1+json"
# Schema references nest; a cycle or a pathological chain must end in an error, not a hang.
_MAX_REFERENCE_DEPTH: Final = 32
# Confluent's REST error codes (also Karapace, Redpanda, Apicurio's ccompat API) that
# mean "this registry has no such subject / version / schema id".
_SUBJECT_NOT_FOUND: Final = 40401
_VERSION_NOT_FOUND: Final = 40402
_SCHEMA_NOT_FOUND: Final = 40403
# Answers that may succeed when asked again later.
_RETRYABLE_STATUSES: Final = frozenset({408, 429})


def confluent_frame(schema_id: int, avro_body: bytes) -> bytes:
    """``avro_body`` framed in the Confluent wire format for ``schema_id``."""
    return _HEADER.pack(MAGIC_BYTE, schema_id) + avro_body


def split_confluent_frame(data: bytes, what: str, option: str) -> tuple[int, bytes]:
    """The (schema id, Avro body) of a Confluent-framed record ``what`` ("value" or "key").

    ``option`` names the option that selected this format, for the error message.
    """
    if len(data) < _HEADER.size:
        raise RecordDecodeError(
            f"record {what} is {len(data)} bytes, shorter than the 5-byte Confluent wire-format header "
            f"(magic byte 0 + 4-byte schema id); it was not written by a Confluent Avro serializer — "
            f"check {option}"
        )
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise RecordDecodeError(
            f"record {what} starts with byte 0x{data[0]:02x}, not the Confluent magic byte 0x00; "
            f"it was not written by a Confluent Avro serializer — check {option}"
        )
    return schema_id, data[_HEADER.size:]


class SchemaRegistryClient:
    """A thread-safe, caching client of one Confluent-compatible schema registry.

    ``url`` is the registry's base URL (several may be given, comma-separated);
    ``basic_auth`` is ``"user:password"`` for HTTP basic authentication or None;
    ``timeout`` bounds each HTTP request in seconds.
    """

    def __init__(self, url: str, basic_auth: str | None = None, *, timeout: float = 10.0) -> None:
        self._urls = _parse_urls(url)
        self._timeout = timeout
        self._headers = {"Accept": f"{_CONTENT_TYPE}, application/json"}
        if basic_auth is not None:
            if ":" not in basic_auth:
                raise InvalidSubscriptionOptions(
                    "schema.registry.basic.auth.user.info must be 'user:password' (the colon is missing)"
                )
            token = base64.b64encode(basic_auth.encode("utf-8")).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._schemas: dict[int, Schema] = {}
        # One lock serializes fetches: misses are rare (a few schema ids per topic) and
        # this keeps concurrent consumers from fetching the same id twice.
        self._fetch_lock = threading.Lock()

    @property
    def urls(self) -> tuple[str, ...]:
        """The base URLs, in the order they are tried."""
        return self._urls

    def schema_by_id(self, schema_id: int) -> Schema:
        """The parsed (fastavro) Avro writer schema registered under ``schema_id``.

        Raises :class:`RecordDecodeError` if the registry does not know the id or it is
        not a valid Avro schema, :class:`SchemaRegistryError` if the registry cannot answer.
        """
        # A dict lookup is atomic, so hits need no lock; only misses take the fetch lock.
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        with self._fetch_lock:
            cached = self._schemas.get(schema_id)
            if cached is None:
                cached = self._fetch_schema(schema_id)
                self._schemas[schema_id] = cached
        return cached

    def register(self, subject: str, schema_json: str, references: Sequence[Mapping[str, object]] = ()) -> int:
        """Register an Avro schema under ``subject`` and return its schema id.

        Registering a schema the subject already has returns the existing id. Meant for
        tests and tools; the engine itself only reads.
        """
        body: dict[str, object] = {"schema": schema_json, "schemaType": "AVRO"}
        if references:
            body["references"] = [dict(r) for r in references]
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        status, answer = self._request("POST", path, body)
        if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("id"), int):
            message = answer.get("message") if isinstance(answer, dict) else None
            raise SchemaRegistryError(
                f"schema registry rejected the schema for subject {subject!r} (HTTP {status}): "
                f"{message or answer!r}",
                retryable=False,
            )
        return int(answer["id"])

    # -- internals ---------------------------------------------------------------------

    def _fetch_schema(self, schema_id: int) -> Schema:
        path = f"/schemas/ids/{schema_id}"
        status, doc = self._request("GET", path)
        if status == 404:
            if _error_code(doc) != _SCHEMA_NOT_FOUND:
                raise self._not_an_api(path, doc)
            raise RecordDecodeError(
                f"schema id {schema_id} is unknown to the schema registry at {self._urls[0]}; "
                f"the record was written against another registry or the schema was deleted"
            )
        schema_text = self._schema_text(doc, status, f"schema id {schema_id}")
        named: NamedSchemas = {}
        self._resolve_references(doc, named, f"schema id {schema_id}", depth=0)
        return _parse(schema_text, named, f"schema id {schema_id}")

    def _resolve_references(self, doc: Any, named: NamedSchemas, what: str, depth: int) -> None:
        # Confluent schema references: the named types a schema uses live in other
        # subjects. Parse each referenced schema (its own references first) into the same
        # named-types table so the referring schema can use those names.
        references = doc.get("references") if isinstance(doc, dict) else None
        if not references:
            return
        if depth >= _MAX_REFERENCE_DEPTH:
            raise RecordDecodeError(f"{what}: schema references nest deeper than {_MAX_REFERENCE_DEPTH} levels")
        for ref in references:
            if not isinstance(ref, dict) or not isinstance(ref.get("subject"), str):
                raise SchemaRegistryError(f"{what}: malformed schema reference {ref!r}", retryable=False)
            subject, version = ref["subject"], ref.get("version", "latest")
            label = f"{what} -> reference {ref.get('name', subject)!r} ({subject} version {version})"
            path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions/{version}"
            status, ref_doc = self._request("GET", path)
            if status == 404:
                if _error_code(ref_doc) not in (_SUBJECT_NOT_FOUND, _VERSION_NOT_FOUND):
                    raise self._not_an_api(path, ref_doc)
                raise RecordDecodeError(f"{label} is unknown to the schema registry at {self._urls[0]}")
            text = self._schema_text(ref_doc, status, label)
            self._resolve_references(ref_doc, named, label, depth + 1)
            _parse(text, named, label)

    def _not_an_api(self, path: str, doc: Any) -> SchemaRegistryError:
        # A registry API answers an unknown id with its own error code; a bare 404 comes
        # from a server (or a path on it) that is not that API, and would come for every
        # record: a configuration error, not a bad record.
        return SchemaRegistryError(
            f"schema registry at {self._urls[0]} answered GET {path} with HTTP 404 without a schema-registry "
            f"error code ({_short(doc)}): the URL does not look like a Confluent-compatible registry API; "
            f"check schema.registry.url (the registry's base URL, e.g. http://registry:8081; Apicurio: "
            f"http://registry:8080/apis/ccompat/v7)",
            retryable=False,
        )

    def _schema_text(self, doc: Any, status: int, what: str) -> str:
        if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("schema"), str):
            message = doc.get("message") if isinstance(doc, dict) else None
            raise SchemaRegistryError(
                f"schema registry at {self._urls[0]} gave an unusable answer for {what} (HTTP {status}): "
                f"{message or doc!r}",
                retryable=False,
            )
        schema_type = doc.get("schemaType") or "AVRO"
        if str(schema_type).upper() != "AVRO":
            raise RecordDecodeError(
                f"{what} is a {schema_type} schema; only Avro schemas can be decoded (avro-confluent)"
            )
        return str(doc["schema"])

    def _request(self, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
        """(HTTP status, parsed JSON body) of the first base URL that answers below 500.

        Connection failures, timeouts, 5xx, 408 and 429 try the next URL and, after the
        last one, raise a retryable :class:`SchemaRegistryError`; 401/403 raise a permanent
        one. Other statuses are the caller's to judge.
        """
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = _CONTENT_TYPE
        failures: list[str] = []
        for base in self._urls:
            request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as response:
                    status, raw = int(response.status), response.read()
            except urllib.error.HTTPError as exc:
                status, raw = exc.code, _read_quietly(exc)
            except (OSError, http.client.HTTPException) as exc:
                # URLError (refused, DNS), socket timeouts and dropped connections.
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                failures.append(f"{base}: {reason or type(exc).__name__}")
                continue
            if status >= 500 or status in _RETRYABLE_STATUSES:
                failures.append(f"{base}: HTTP {status}")
                continue
            if status in (401, 403):
                raise SchemaRegistryError(
                    f"schema registry at {base} refused access (HTTP {status}); "
                    f"check schema.registry.basic.auth.user.info",
                    retryable=False,
                )
            return status, _json_or_none(raw)
        raise SchemaRegistryError(
            f"schema registry unreachable ({method} {path}): " + "; ".join(failures), retryable=True
        )


_shared: dict[tuple[str, str | None], SchemaRegistryClient] = {}
_shared_lock = threading.Lock()


def shared_registry_client(url: str, basic_auth: str | None = None) -> SchemaRegistryClient:
    """The process-wide client for (``url``, ``basic_auth``), so subscriptions and the
    key and payload decoders of one subscription share one schema cache."""
    with _shared_lock:
        client = _shared.get((url, basic_auth))
        if client is None:
            client = SchemaRegistryClient(url, basic_auth)
            _shared[(url, basic_auth)] = client
        return client


def _parse_urls(url: str) -> tuple[str, ...]:
    urls: list[str] = []
    for part in url.split(","):
        part = part.strip().rstrip("/")
        if not part:
            continue
        parsed = urllib.parse.urlsplit(part)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidSubscriptionOptions(
                f"schema.registry.url {part!r} is not an http(s) URL; give the registry's base URL, "
                f"e.g. http://registry:8081 (Apicurio: http://registry:8080/apis/ccompat/v7)"
            )
        if parsed.username is not None or parsed.password is not None:
            raise InvalidSubscriptionOptions(
                "schema.registry.url must not contain credentials; "
                "put them in schema.registry.basic.auth.user.info as 'user:password'"
            )
        urls.append(part)
    if not urls:
        raise InvalidSubscriptionOptions(
            "schema.registry.url is empty; give the registry's base URL, e.g. http://registry:8081"
        )
    return tuple(urls)


def _parse(schema_text: str, named: NamedSchemas, what: str) -> Schema:
    try:
        return parse_schema(json.loads(schema_text), named_schemas=named)
    except Exception as exc:  # fastavro raises several types for a bad schema
        raise RecordDecodeError(f"{what} in the schema registry is not a valid Avro schema: {exc}") from exc


def _read_quietly(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except (OSError, http.client.HTTPException):
        return b""


def _error_code(doc: Any) -> int | None:
    """The Confluent ``error_code`` of an error answer, if it has one."""
    code = doc.get("error_code") if isinstance(doc, dict) else None
    return code if isinstance(code, int) else None


def _short(doc: Any) -> str:
    text = "empty body" if doc is None else json.dumps(doc)
    return text if len(text) <= 200 else text[:200] + "..."


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
