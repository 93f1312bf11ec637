"""Payload decoding: options validation, the simple formats, Avro to JSON (unit tests).

The Confluent path against a real registry is in test_registry.py.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subscriptions.errors import InvalidSubscriptionOptions, RecordDecodeError, SchemaRegistryError
from subscriptions.payload import payload_decoder
from subscriptions.registry import SchemaRegistryClient, confluent_frame
from tests.fixtures.ports import free_port
from tests.subscriptions.avro_util import avro_bytes, schema_option

# -- options -------------------------------------------------------------------------------


def test_default_is_bytes_passed_through() -> None:
    decoder = payload_decoder({})
    assert decoder.format == "bytes"
    assert decoder.content_type == "application/octet-stream"
    assert decoder.decode(b"\x00\xffraw") == b"\x00\xffraw"
    assert decoder.decode(None) == b""


def test_format_is_case_insensitive() -> None:
    assert payload_decoder({"payload.format": " JSON "}).format == "json"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"payload.format": "protobuf"}, "payload.format 'protobuf' is not supported; use one of: bytes, json, avro, avro-confluent"),
        ({"payload.format": "avro"}, "payload.format 'avro' needs the option payload.avro.schema (an Avro schema as JSON)"),
        ({"payload.format": "avro", "payload.avro.schema": "{not json"}, "payload.avro.schema is not valid JSON"),
        ({"payload.format": "avro", "payload.avro.schema": '{"type": "recrod"}'}, "payload.avro.schema is not a valid Avro schema"),
        ({"payload.format": "avro-confluent"}, "payload.format 'avro-confluent' needs the option schema.registry.url"),
        ({"payload.format": "json", "payload.avro.schema": '"string"'}, "payload.avro.schema is set but payload.format is 'json'"),
        ({"payload.formt": "json"}, "unknown option 'payload.formt'"),
        ({"payload.format": "avro-confluent", "schema.registry.url": "registry:8081"}, "is not an http(s) URL"),
        ({"payload.format": "avro-confluent", "schema.registry.url": "http://u:p@registry:8081"}, "must not contain credentials"),
        (
            {"payload.format": "avro-confluent", "schema.registry.url": "http://r:1", "schema.registry.basic.auth.user.info": "user"},
            "must be 'user:password'",
        ),
    ],
)
def test_invalid_options_say_what_to_fix(options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidSubscriptionOptions) as err:
        payload_decoder(options, registry_factory=SchemaRegistryClient)
    assert message in str(err.value)


def test_options_outside_payload_namespace_are_not_ours() -> None:
    decoder = payload_decoder({"auto.offset.reset": "earliest", "group.id": "g", "key.format": "hex"})
    assert decoder.format == "bytes"


# -- json ----------------------------------------------------------------------------------


def test_json_is_validated_and_passed_through_unchanged() -> None:
    decoder = payload_decoder({"payload.format": "json"})
    assert decoder.content_type == "application/json"
    raw = b'{ "a": [1, 2.5, "\xc3\xa9"],  "b": null }'
    assert decoder.decode(raw) is raw
    assert decoder.decode(None) == b""


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{bad", "record value is not valid JSON (payload.format=json)"),
        (b"", "record value is not valid JSON (payload.format=json)"),
        (b'{"x": NaN}', "NaN is not a JSON value"),
        (b'"\xff"', "record value is not UTF-8 (payload.format=json)"),
        (b'\xef\xbb\xbf{"bom": 1}', "record value is not valid JSON"),
    ],
)
def test_invalid_json_is_a_record_error(raw: bytes, message: str) -> None:
    with pytest.raises(RecordDecodeError) as err:
        payload_decoder({"payload.format": "json"}).decode(raw)
    assert message in str(err.value)
    assert "set payload.format to bytes" in str(err.value)


# -- avro (inline schema) ------------------------------------------------------------------

EVENT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Event",
    "namespace": "test",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "ok", "type": "boolean"},
        {"name": "score", "type": "double"},
        {"name": "ratio", "type": "float"},
        {"name": "blob", "type": "bytes"},
        {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 2}},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "counts", "type": {"type": "map", "values": "int"}},
        {"name": "maybe", "type": ["null", "string"]},
        {"name": "child", "type": ["null", {"type": "record", "name": "Child", "fields": [{"name": "n", "type": "int"}]}]},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "price", "type": {"type": "fixed", "name": "Price", "size": 8, "logicalType": "decimal", "precision": 12, "scale": 3}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "clock", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "nanos", "type": {"type": "long", "logicalType": "timestamp-nanos"}},
    ],
}

EVENT = {
    "id": 2**40,
    "name": "Zoë",
    "ok": True,
    "score": float("nan"),
    "ratio": 0.5,
    "blob": b"\x00\xff",
    "tag": b"hi",
    "color": "GREEN",
    "tags": ["a", "b"],
    "counts": {"x": 1},
    "maybe": "here",
    "child": {"n": 7},
    "amount": Decimal("12.30"),
    "price": Decimal("-0.500"),
    "at": datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=timezone.utc),
    "at_us": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    "local": datetime(2024, 1, 2, 3, 4, 5),
    "day": date(2024, 1, 2),
    "clock": time(3, 4, 5, 123000),
    "uid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "nanos": 1704164645123456789,
}

EVENT_JSON = (
    '{"id":1099511627776,"name":"Zoë","ok":true,"score":"NaN","ratio":0.5,"blob":"AP8=","tag":"aGk=",'
    '"color":"GREEN","tags":["a","b"],"counts":{"x":1},"maybe":"here","child":{"n":7},'
    '"amount":"12.30","price":"-0.500","at":"2024-01-02T03:04:05.123000Z","at_us":"2024-01-02T03:04:05Z",'
    '"local":"2024-01-02T03:04:05","day":"2024-01-02","clock":"03:04:05.123000",'
    '"uid":"12345678-1234-5678-1234-567812345678","nanos":1704164645123456789}'
).encode("utf-8")


def test_avro_record_becomes_the_documented_json() -> None:
    decoder = payload_decoder({"payload.format": "avro", "payload.avro.schema": schema_option(EVENT_SCHEMA)})
    assert decoder.content_type == "application/json"
    assert decoder.decode(avro_bytes(EVENT_SCHEMA, EVENT)) == EVENT_JSON


def test_avro_union_is_the_plain_value_and_null_stays_null() -> None:
    schema = ["null", "long", {"type": "record", "name": "P", "fields": [{"name": "x", "type": "int"}]}]
    decoder = payload_decoder({"payload.format": "avro", "payload.avro.schema": schema_option(schema)})
    assert decoder.decode(avro_bytes(schema, {"x": 1})) == b'{"x":1}'
    assert decoder.decode(avro_bytes(schema, 5)) == b"5"
    assert decoder.decode(avro_bytes(schema, None)) == b"null"


def test_avro_with_bytes_left_over_is_a_record_error() -> None:
    decoder = payload_decoder({"payload.format": "avro", "payload.avro.schema": '"int"'})
    with pytest.raises(RecordDecodeError, match="has 1 bytes left after the Avro datum"):
        decoder.decode(avro_bytes("int", 1) + b"\x00")


def test_truncated_avro_is_a_record_error() -> None:
    decoder = payload_decoder({"payload.format": "avro", "payload.avro.schema": schema_option(EVENT_SCHEMA)})
    with pytest.raises(RecordDecodeError, match=r"record value is not Avro of the configured schema \(payload.format\)"):
        decoder.decode(avro_bytes(EVENT_SCHEMA, EVENT)[:10])


# -- avro-confluent framing (the registry itself: test_registry.py) -------------------------


def _unreachable_registry_options() -> dict[str, str]:
    return {"payload.format": "avro-confluent", "schema.registry.url": f"http://127.0.0.1:{free_port()}"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00", "record value is 2 bytes, shorter than the 5-byte Confluent wire-format header"),
        (b"\x01\x00\x00\x00\x01\x02", "record value starts with byte 0x01, not the Confluent magic byte 0x00"),
    ],
)
def test_bad_confluent_framing_is_a_record_error(raw: bytes, message: str) -> None:
    decoder = payload_decoder(_unreachable_registry_options(), registry_factory=SchemaRegistryClient)
    with pytest.raises(RecordDecodeError) as err:
        decoder.decode(raw)
    assert message in str(err.value)


def test_unreachable_registry_is_retryable() -> None:
    decoder = payload_decoder(_unreachable_registry_options(), registry_factory=SchemaRegistryClient)
    with pytest.raises(SchemaRegistryError) as err:
        decoder.decode(confluent_frame(1, b"\x02"))
    assert err.value.retryable
    assert "schema registry unreachable" in str(err.value)


def test_registry_factory_gets_url_and_credentials() -> None:
    seen: list[tuple[str, str | None]] = []

    def factory(url: str, auth: str | None) -> SchemaRegistryClient:
        seen.append((url, auth))
        return SchemaRegistryClient(url, auth)

    options = {**_unreachable_registry_options(), "schema.registry.basic.auth.user.info": "me:secret"}
    payload_decoder(options, registry_factory=factory)
    assert seen == [(options["schema.registry.url"], "me:secret")]


# -- property: any Avro value decodes to its documented JSON -------------------------------

# (schema, strategy of (value to write, JSON value expected))
Case = tuple[Any, st.SearchStrategy[tuple[Any, Any]]]


def _same(v: Any) -> Any:
    return v


def _b64(v: bytes) -> str:
    return base64.b64encode(v).decode("ascii")


def _spelled(v: float) -> Any:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def _prim(schema: Any, values: st.SearchStrategy[Any], expect: Any = _same) -> Case:
    return schema, values.map(lambda v: (v, expect(v)))


_PRIMITIVES: dict[str, Case] = {
    "null": _prim("null", st.none()),
    "boolean": _prim("boolean", st.booleans()),
    "int": _prim("int", st.integers(-(2**31), 2**31 - 1)),
    "long": _prim("long", st.integers(-(2**63), 2**63 - 1)),
    "float": _prim("float", st.floats(width=32), _spelled),
    "double": _prim("double", st.floats(), _spelled),
    "string": _prim("string", st.text()),
    "bytes": _prim("bytes", st.binary(max_size=20), _b64),
}


@st.composite
def avro_cases(draw: st.DrawFn, path: str = "T", depth: int = 0, nullable: bool = True) -> Case:
    kinds = [k for k in _PRIMITIVES if nullable or k != "null"]
    if depth < 3:
        kinds += ["record", "array", "map", "enum", "fixed"] + (["union"] if nullable else [])
    kind = draw(st.sampled_from(kinds))
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    if kind == "enum":
        symbols = ["A", "B", "C"]
        return _prim({"type": "enum", "name": path, "symbols": symbols}, st.sampled_from(symbols))
    if kind == "fixed":
        size = draw(st.integers(1, 6))
        return _prim({"type": "fixed", "name": path, "size": size}, st.binary(min_size=size, max_size=size), _b64)
    if kind == "array":
        items, values = draw(avro_cases(f"{path}_a", depth + 1))
        return {"type": "array", "items": items}, st.lists(values, max_size=4).map(
            lambda pairs: ([v for v, _ in pairs], [e for _, e in pairs])
        )
    if kind == "map":
        items, values = draw(avro_cases(f"{path}_m", depth + 1))
        return {"type": "map", "values": items}, st.dictionaries(st.text(max_size=5), values, max_size=4).map(
            lambda d: ({k: v for k, (v, _) in d.items()}, {k: e for k, (_, e) in d.items()})
        )
    if kind == "union":
        # A union with null; the other branch must not be a union or null (Avro's rule).
        branch, values = draw(avro_cases(f"{path}_u", depth + 1, nullable=False))
        return ["null", branch], st.one_of(st.just((None, None)), values)
    fields = [draw(avro_cases(f"{path}_{i}", depth + 1)) for i in range(draw(st.integers(0, 4)))]
    schema = {"type": "record", "name": path, "fields": [{"name": f"f{i}", "type": s} for i, (s, _) in enumerate(fields)]}
    return schema, st.tuples(*[values for _, values in fields]).map(
        lambda pairs: ({f"f{i}": v for i, (v, _) in enumerate(pairs)}, {f"f{i}": e for i, (_, e) in enumerate(pairs)})
    )


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_avro_round_trip_property(data: st.DataObject) -> None:
    schema, values = data.draw(avro_cases())
    value, expected = data.draw(values)
    decoder = payload_decoder({"payload.format": "avro", "payload.avro.schema": schema_option(schema)})
    out = decoder.decode(avro_bytes(schema, value))
    # Exact bytes: compact separators, record fields in schema order, UTF-8 not \u-escaped.
    assert out == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
