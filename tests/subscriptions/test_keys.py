"""Key mapping: every key.format, mappers by name, records without a key (unit tests)."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscriptions.errors import InvalidSubscriptionOptions, RecordDecodeError
from subscriptions.keys import (
    FORMATS,
    NO_KEY_MESSAGE,
    KeyMapperConfigError,
    key_mapper,
    register_key_mappers,
    registered_key_mappers,
)
from subscriptions.registry import SchemaRegistryClient
from tests.subscriptions.avro_util import avro_bytes, schema_option


# Operator mappers registered (by name) in these tests.
def reversed_hex(raw: bytes) -> str:
    return raw[::-1].hex()


class Mappers:
    @staticmethod
    def upper(raw: bytes) -> str:
        return raw.decode("ascii").upper()


def failing(raw: bytes) -> str:
    raise ValueError("no tenant byte")


def not_a_string(raw: bytes) -> object:
    return len(raw)


NOT_CALLABLE = 42

SENTINEL_MODULE = "tests.fixtures.import_sentinel"


@pytest.fixture
def operator_mappers() -> Iterator[None]:
    register_key_mappers({
        "rev": f"{__name__}:reversed_hex", "upper": f"{__name__}:Mappers.upper",
        "failing": f"{__name__}:failing", "not-a-string": f"{__name__}:not_a_string",
    }, entry_points=False)
    yield
    register_key_mappers({}, entry_points=False)


def _options(fmt: str) -> dict[str, str]:
    options = {"key.format": fmt}
    if fmt == "avro":
        options["key.avro.schema"] = '"string"'
    if fmt == "avro-confluent":
        options["schema.registry.url"] = "http://127.0.0.1:9"
    return options


def test_default_is_utf8_string() -> None:
    mapper = key_mapper({})
    assert mapper.format == "string"
    assert mapper.object_key("Zoë".encode()) == "Zoë"
    assert mapper.object_key(b"") == ""


def test_non_utf8_key_names_the_formats_that_accept_it() -> None:
    with pytest.raises(RecordDecodeError) as err:
        key_mapper({}).object_key(b"ok\xff")
    assert str(err.value) == (
        "record key is not UTF-8 (key.format=string, byte 2); set key.format to hex, base64, json, avro or avro-confluent"
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_record_without_key_is_an_error_in_every_format(fmt: str) -> None:
    mapper = key_mapper(_options(fmt), registry_factory=SchemaRegistryClient)
    with pytest.raises(RecordDecodeError) as err:
        mapper.object_key(None)
    assert str(err.value) == NO_KEY_MESSAGE
    assert NO_KEY_MESSAGE == (
        "record has no key; a virtual object or workflow sink needs the Kafka record key as the object key"
    )


def test_user_mapper_gets_no_call_for_a_missing_key_either(operator_mappers: None) -> None:
    with pytest.raises(RecordDecodeError, match="record has no key"):
        key_mapper({"key.mapper": "rev"}).object_key(None)


def test_hex_and_base64() -> None:
    assert key_mapper({"key.format": "hex"}).object_key(b"\x01\xff") == "01ff"
    assert key_mapper({"key.format": "base64"}).object_key(b"\x01\xff") == "Af8="


@given(st.binary())
def test_hex_and_base64_are_reversible(raw: bytes) -> None:
    # Reversible means injective: distinct Kafka keys never share an object.
    assert bytes.fromhex(key_mapper({"key.format": "hex"}).object_key(raw)) == raw
    assert base64.b64decode(key_mapper({"key.format": "base64"}).object_key(raw), validate=True) == raw


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'"alice"', "alice"),
        (b'"\\u00e9"', "é"),
        (b"42", "42"),
        (b" 1.5 ", "1.5"),
        (b"true", "true"),
        (b"null", "null"),
        (b'{"b": 1, "a": {"z": [1, 2], "y": "\xc3\xa9"}}', '{"a":{"y":"é","z":[1,2]},"b":1}'),
        (b"[3, 1]", "[3,1]"),
    ],
)
def test_json_keys(raw: bytes, key: str) -> None:
    assert key_mapper({"key.format": "json"}).object_key(raw) == key


@given(st.dictionaries(st.text(max_size=4), st.integers(), max_size=5))
def test_json_objects_map_to_one_key_whatever_the_field_order(obj: dict[str, int]) -> None:
    mapper = key_mapper({"key.format": "json"})
    forward = json.dumps(obj).encode()
    backward = json.dumps(dict(reversed(list(obj.items()))), indent=2).encode()
    assert mapper.object_key(forward) == mapper.object_key(backward)


@pytest.mark.parametrize("raw", [b"{bad", b"", b"NaN", b'"\xff"'])
def test_invalid_json_key_is_a_record_error(raw: bytes) -> None:
    with pytest.raises(RecordDecodeError, match=r"record key is not UTF-8 JSON \(key.format=json\)"):
        key_mapper({"key.format": "json"}).object_key(raw)


RECORD_KEY_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Key",
    "fields": [{"name": "tenant", "type": "string"}, {"name": "id", "type": "long"}],
}


@pytest.mark.parametrize(
    ("schema", "value", "key"),
    [
        ("string", "alice", "alice"),
        ("long", -42, "-42"),
        ("int", 7, "7"),
        ("boolean", True, "true"),
        ("double", 1.5, "1.5"),
        ("bytes", b"\x01\xff", "Af8="),
        ({"type": "fixed", "name": "F", "size": 2}, b"\x01\xff", "Af8="),
        ({"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}, Decimal("3.10"), "3.10"),
        (
            {"type": "long", "logicalType": "timestamp-millis"},
            datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc),
            "2024-05-06T07:08:09Z",
        ),
        (RECORD_KEY_SCHEMA, {"tenant": "acme", "id": 3}, '{"id":3,"tenant":"acme"}'),
        (["null", "string"], "u1", "u1"),
        (["null", "string"], None, "null"),
        ({"type": "array", "items": "double"}, [float("inf")], '["Infinity"]'),
    ],
)
def test_avro_keys(schema: Any, value: Any, key: str) -> None:
    mapper = key_mapper({"key.format": "avro", "key.avro.schema": schema_option(schema)})
    assert mapper.object_key(avro_bytes(schema, value)) == key


def test_avro_key_not_matching_schema_is_a_record_error() -> None:
    mapper = key_mapper({"key.format": "avro", "key.avro.schema": schema_option(RECORD_KEY_SCHEMA)})
    with pytest.raises(RecordDecodeError, match=r"record key .*\(key.format\)"):
        mapper.object_key(b"\x08ab")


def test_registered_mapper_by_name(operator_mappers: None) -> None:
    mapper = key_mapper({"key.mapper": "rev"})
    assert mapper.format == "key.mapper=rev"
    assert mapper.object_key(b"\x01\x02") == "0201"
    assert key_mapper({"key.mapper": "upper"}).object_key(b"abc") == "ABC"
    assert registered_key_mappers() == ["string", "hex", "base64", "json", "failing", "not-a-string", "rev", "upper"]


def test_builtin_mappers_by_name() -> None:
    assert key_mapper({"key.mapper": "hex"}).object_key(b"\x01\xff") == "01ff"
    assert key_mapper({"key.mapper": "json"}).object_key(b'"a"') == "a"


@pytest.mark.parametrize("spec", ["builtins:eval", "os:system", f"{SENTINEL_MODULE}:boom", SENTINEL_MODULE, "nope"])
def test_a_module_path_is_refused_and_nothing_is_imported(operator_mappers: None, spec: str) -> None:
    sys.modules.pop(SENTINEL_MODULE, None)
    with pytest.raises(InvalidSubscriptionOptions) as err:
        key_mapper({"key.mapper": spec})
    message = str(err.value)
    assert f"key.mapper {spec!r} is not a known key mapper" in message
    assert "valid names: string, hex, base64, json, failing, not-a-string, rev, upper" in message
    assert "[subscription_key_mappers]" in message and "logstrate.key_mappers" in message
    assert SENTINEL_MODULE not in sys.modules


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ({"m": "no_colon"}, "must be 'package.module:function'"),
        ({"m": "tests.subscriptions.does_not_exist:f"}, "cannot import module 'tests.subscriptions.does_not_exist': ModuleNotFoundError"),
        ({"m": f"{__name__}:missing"}, f"{__name__!r} has no attribute 'missing'"),
        ({"m": f"{__name__}:NOT_CALLABLE"}, "is a int, not a callable"),
        ({"hex": f"{__name__}:reversed_hex"}, "'hex' (subscription_key_mappers) is a built-in mapper"),
        ({"a b": f"{__name__}:reversed_hex"}, "must be letters, digits"),
    ],
)
def test_bad_operator_mapper_is_a_config_error(specs: dict[str, str], message: str) -> None:
    with pytest.raises(KeyMapperConfigError) as err:
        register_key_mappers(specs, entry_points=False)
    assert message in str(err.value)
    assert registered_key_mappers() == ["string", "hex", "base64", "json"]


def test_user_mapper_failures_fail_the_record(operator_mappers: None) -> None:
    with pytest.raises(RecordDecodeError, match="raised ValueError on the record key: no tenant byte"):
        key_mapper({"key.mapper": "failing"}).object_key(b"x")
    with pytest.raises(RecordDecodeError, match="returned int, not str"):
        key_mapper({"key.mapper": "not-a-string"}).object_key(b"x")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"key.format": "utf16"}, "key.format 'utf16' is not supported; use one of: string, hex, base64, json, avro, avro-confluent"),
        ({"key.format": "avro"}, "key.format 'avro' needs the option key.avro.schema (an Avro schema as JSON)"),
        ({"key.format": "avro", "key.avro.schema": "[}"}, "key.avro.schema is not valid JSON"),
        ({"key.format": "hex", "key.avro.schema": '"string"'}, "key.avro.schema is set but key.format is 'hex'"),
        ({"key.format": "avro-confluent"}, "key.format 'avro-confluent' needs the option schema.registry.url"),
        ({"key.mapper": "hex", "key.format": "hex"}, "key.mapper and key.format/key.avro.schema exclude each other"),
    ],
)
def test_invalid_key_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidSubscriptionOptions) as err:
        key_mapper(options)
    assert message in str(err.value)
