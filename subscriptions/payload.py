"""Decoding a Kafka record's value into the input bytes of the subscription's handler.

Configured from the subscription's string options:

``payload.format``
    ``bytes`` (default)
        The value is passed through unchanged (content type ``application/octet-stream``).
    ``json``
        The value must be UTF-8 JSON; it is validated and passed through unchanged
        (``application/json``). Anything else is a :class:`RecordDecodeError`.
    ``avro``
        Plain Avro binary (no framing) written with the schema in ``payload.avro.schema``
        (the writer schema as JSON). Decoded to JSON, see below.
    ``avro-confluent``
        Confluent wire format: magic byte ``0``, 4-byte big-endian schema id, Avro binary.
        The writer schema is fetched once per id from the registry at
        ``schema.registry.url`` (optional ``schema.registry.basic.auth.user.info`` =
        ``user:password``). Decoded to JSON, see below.

A record without a value (``null``, e.g. a tombstone) is passed as empty input in every
format: the handler is invoked without input rather than the record being dropped.

Avro to JSON
------------
Avro values become compact UTF-8 JSON (no spaces, record fields in schema order):

* null, boolean, int, long, float, double, string: the JSON equivalent; enum: its symbol;
  array: array; map and record: object.
* union: the value of the branch itself — ``{"a": 1}``, not Avro-JSON's ``{"R": {"a": 1}}``.
* bytes and fixed: standard base64 (padded) string.
* float/double NaN and infinities (not representable in JSON): the strings ``"NaN"``,
  ``"Infinity"``, ``"-Infinity"``.
* decimal (bytes or fixed): string in plain notation with the schema's scale, e.g.
  ``"12.30"`` (a string because a JSON number would lose precision in most parsers).
* timestamp-millis/-micros: ISO-8601 UTC string, e.g. ``"2024-01-02T03:04:05.123000Z"``;
  local-timestamp-millis/-micros: the same without the ``Z``; date: ``"2024-01-02"``;
  time-millis/-micros: ``"03:04:05.123000"``. Fractional seconds are printed with six
  digits when not zero and omitted when zero (Python's ``isoformat``). ISO strings rather
  than epoch numbers: they say what they are, and every language parses them.
* uuid (on string): the UUID string.
* logical types fastavro leaves as their underlying type (timestamp-nanos,
  local-timestamp-nanos, duration, uuid on fixed) map as that type: a number or base64.

Errors: options are checked when the decoder is built (:class:`InvalidSubscriptionOptions`
with what to fix); a record that does not decode raises :class:`RecordDecodeError`; an
unreachable registry raises :class:`SchemaRegistryError` (``retryable=True``).
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from fastavro import parse_schema, schemaless_reader
from fastavro.types import AvroMessage, Schema

from subscriptions.errors import InvalidSubscriptionOptions, RecordDecodeError
from subscriptions.registry import SchemaRegistryClient, shared_registry_client, split_confluent_frame

PAYLOAD_FORMAT: Final = "payload.format"
PAYLOAD_AVRO_SCHEMA: Final = "payload.avro.schema"
REGISTRY_URL: Final = "schema.registry.url"
REGISTRY_BASIC_AUTH: Final = "schema.registry.basic.auth.user.info"

FORMATS: Final = ("bytes", "json", "avro", "avro-confluent")
OCTET_STREAM: Final = "application/octet-stream"
APPLICATION_JSON: Final = "application/json"

#: Builds the registry client for (``schema.registry.url``, basic-auth ``user:password``).
RegistryFactory = Callable[[str, str | None], SchemaRegistryClient]

_KNOWN_PAYLOAD_OPTIONS: Final = frozenset({PAYLOAD_FORMAT, PAYLOAD_AVRO_SCHEMA})


class PayloadDecoder:
    """Turns record values into handler input for one subscription (thread-safe)."""

    def __init__(self, format: str, content_type: str, decode: Callable[[bytes], bytes]) -> None:
        self._format = format
        self._content_type = content_type
        self._decode = decode

    @property
    def format(self) -> str:
        """The ``payload.format`` this decoder implements."""
        return self._format

    @property
    def content_type(self) -> str:
        """The content type of the handler input: octet-stream for bytes, else JSON."""
        return self._content_type

    def decode(self, value: bytes | None) -> bytes:
        """The handler input for a record value; ``None`` (no value) becomes ``b""``.

        Raises :class:`RecordDecodeError` if the value does not decode,
        :class:`SchemaRegistryError` if the schema registry cannot be reached.
        """
        if value is None:
            return b""
        return self._decode(value)

    def __repr__(self) -> str:
        return f"PayloadDecoder(format={self._format!r})"


def payload_decoder(
    options: Mapping[str, str], registry_factory: RegistryFactory = shared_registry_client
) -> PayloadDecoder:
    """The decoder configured by ``options``; invalid options raise
    :class:`InvalidSubscriptionOptions` at once, so the admin API can answer 400."""
    unknown = sorted(k for k in options if k.startswith("payload.") and k not in _KNOWN_PAYLOAD_OPTIONS)
    if unknown:
        raise InvalidSubscriptionOptions(
            f"unknown option {unknown[0]!r}; payload options are {', '.join(sorted(_KNOWN_PAYLOAD_OPTIONS))}"
        )
    fmt = option_choice(options, PAYLOAD_FORMAT, FORMATS, default="bytes")
    if fmt != "avro" and PAYLOAD_AVRO_SCHEMA in options:
        raise InvalidSubscriptionOptions(
            f"{PAYLOAD_AVRO_SCHEMA} is set but {PAYLOAD_FORMAT} is {fmt!r}; "
            f"set {PAYLOAD_FORMAT} to avro to decode with that schema, or remove it"
        )
    if fmt == "bytes":
        return PayloadDecoder(fmt, OCTET_STREAM, _identity)
    if fmt == "json":
        return PayloadDecoder(fmt, APPLICATION_JSON, _validated_json)
    if fmt == "avro":
        schema = inline_avro_schema(options, PAYLOAD_AVRO_SCHEMA, PAYLOAD_FORMAT)

        def decode_avro(value: bytes) -> bytes:
            return avro_to_json_bytes(read_avro(schema, value, "value", PAYLOAD_FORMAT))

        return PayloadDecoder(fmt, APPLICATION_JSON, decode_avro)
    registry = registry_from_options(options, registry_factory, PAYLOAD_FORMAT)

    def decode_confluent(value: bytes) -> bytes:
        return avro_to_json_bytes(read_confluent(registry, value, "value", PAYLOAD_FORMAT))

    return PayloadDecoder(fmt, APPLICATION_JSON, decode_confluent)


# -- option helpers shared with keys.py ----------------------------------------------------


def option_choice(options: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    """The value of option ``name`` (case-insensitive, trimmed), one of ``choices``."""
    raw = options.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise InvalidSubscriptionOptions(f"{name} {raw!r} is not supported; use one of: {', '.join(choices)}")
    return value


def inline_avro_schema(options: Mapping[str, str], schema_option: str, format_option: str) -> Schema:
    """The parsed Avro schema in option ``schema_option`` (required by ``format_option``=avro)."""
    text = options.get(schema_option)
    if text is None or not text.strip():
        raise InvalidSubscriptionOptions(
            f"{format_option} 'avro' needs the option {schema_option} (an Avro schema as JSON)"
        )
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InvalidSubscriptionOptions(f"{schema_option} is not valid JSON: {exc}") from exc
    try:
        return parse_schema(document)
    except Exception as exc:  # fastavro raises several exception types for a bad schema
        raise InvalidSubscriptionOptions(f"{schema_option} is not a valid Avro schema: {exc}") from exc


def registry_from_options(
    options: Mapping[str, str], registry_factory: RegistryFactory, format_option: str
) -> SchemaRegistryClient:
    """The registry client for ``schema.registry.url`` (required by ``format_option``)."""
    url = options.get(REGISTRY_URL, "").strip()
    if not url:
        raise InvalidSubscriptionOptions(
            f"{format_option} 'avro-confluent' needs the option {REGISTRY_URL} "
            f"(the schema registry's base URL, e.g. http://registry:8081)"
        )
    return registry_factory(url, options.get(REGISTRY_BASIC_AUTH))


# -- Avro decoding -------------------------------------------------------------------------


def read_avro(schema: Schema, data: bytes, what: str, option: str) -> AvroMessage:
    """The Avro datum encoded in all of ``data`` (record ``what``, format chosen by ``option``)."""
    buffer = io.BytesIO(data)
    try:
        datum = schemaless_reader(buffer, schema)
    except Exception as exc:
        # Record bytes are arbitrary input; fastavro reports malformed data with many
        # exception types (EOFError, IndexError, UnicodeDecodeError, ValueError, ...).
        raise RecordDecodeError(
            f"record {what} is not Avro of the configured schema ({option}): {type(exc).__name__}: {exc}"
        ) from exc
    rest = len(data) - buffer.tell()
    if rest:
        # Bytes left over mean the data was written with another schema (or framing).
        raise RecordDecodeError(
            f"record {what} has {rest} bytes left after the Avro datum; it was written with a "
            f"different schema or framing than {option} expects"
        )
    return datum


def read_confluent(registry: SchemaRegistryClient, data: bytes, what: str, option: str) -> AvroMessage:
    """The Avro datum of a Confluent-framed record ``what``, its schema from ``registry``."""
    schema_id, body = split_confluent_frame(data, what, option)
    return read_avro(registry.schema_by_id(schema_id), body, what, f"{option}, schema id {schema_id}")


# -- Avro values to JSON -------------------------------------------------------------------


def avro_to_json_bytes(value: object, *, sort_keys: bool = False) -> bytes:
    """``value`` (as fastavro decodes it) as compact UTF-8 JSON, per the module's mapping."""
    try:
        text = _dumps(value, sort_keys)
    except ValueError:
        # allow_nan=False refused a NaN or infinity; JSON has no such numbers, so spell them.
        text = _dumps(_spell_non_finite(value), sort_keys)
    return text.encode("utf-8")


def avro_scalar_to_json(value: object) -> object:
    """The JSON value of a non-container Avro value (bytes, decimal, dates...); others as is."""
    if isinstance(value, float) and not math.isfinite(value):
        return _spell_float(value)
    try:
        return _json_default(value)
    except TypeError:
        return value


def _dumps(value: object, sort_keys: bool) -> str:
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=sort_keys, default=_json_default
    )


def _json_default(value: object) -> object:
    # Called by json.dumps for the types JSON lacks; the mapping is the module docstring's.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):  # before date: datetime is a date subclass
        if value.tzinfo is not None and value.utcoffset() is not None and not value.utcoffset():
            return value.replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"no JSON mapping for {type(value).__name__}")


def _spell_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _spell_non_finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return _spell_float(value)
    if isinstance(value, dict):
        return {k: _spell_non_finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_spell_non_finite(v) for v in value]
    return value


# -- the simple formats --------------------------------------------------------------------


def _identity(value: bytes) -> bytes:
    return value


def _validated_json(value: bytes) -> bytes:
    try:
        json.loads(value.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise RecordDecodeError(
            f"record value is not UTF-8 ({PAYLOAD_FORMAT}=json): {exc}; "
            f"set {PAYLOAD_FORMAT} to bytes to pass it through unchanged"
        ) from exc
    except ValueError as exc:
        raise RecordDecodeError(
            f"record value is not valid JSON ({PAYLOAD_FORMAT}=json): {exc}; "
            f"set {PAYLOAD_FORMAT} to bytes to pass it through unchanged"
        ) from exc
    return value


def _reject_constant(name: str) -> object:
    # Python's json accepts NaN/Infinity, which are not JSON; handlers in other languages
    # would fail on them, so refuse them here with a clear message.
    raise ValueError(f"{name} is not a JSON value")
