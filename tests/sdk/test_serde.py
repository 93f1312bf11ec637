"""Serdes chosen from annotations: JSON, bytes, dataclasses, pydantic models."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from sdk.errors import TerminalError
from sdk.serde import BytesSerde, DataclassSerde, JsonSerde, PydanticSerde, json_schema_for, serde_for


@dataclass
class Point:
    x: int
    y: int


class Model(BaseModel):
    name: str
    tags: list[str] = []


def test_json_round_trip_and_none_is_empty() -> None:
    serde = serde_for(dict[str, int])
    assert isinstance(serde, JsonSerde)
    assert serde.deserialize(serde.serialize({"a": 1})) == {"a": 1}
    assert serde.serialize(None) == b""
    assert serde.deserialize(b"") is None


def test_bytes_pass_through() -> None:
    serde = serde_for(bytes)
    assert isinstance(serde, BytesSerde)
    assert serde.serialize(b"\x00\xff") == b"\x00\xff"
    assert serde.deserialize(b"\x00\xff") == b"\x00\xff"


def test_dataclass_and_pydantic() -> None:
    point = serde_for(Point)
    assert isinstance(point, DataclassSerde)
    assert point.deserialize(point.serialize(Point(1, 2))) == Point(1, 2)
    model = serde_for(Model)
    assert isinstance(model, PydanticSerde)
    assert model.deserialize(b'{"name":"a"}') == Model(name="a")
    assert model.json_schema()["properties"]["name"] == {"title": "Name", "type": "string"}  # type: ignore[index]


def test_bad_input_is_a_terminal_400() -> None:
    with pytest.raises(TerminalError) as caught:
        serde_for(Point).deserialize(b'{"x": 1}')
    assert caught.value.status_code == 400
    with pytest.raises(TerminalError):
        serde_for(int).deserialize(b"not json")


def test_json_schemas() -> None:
    assert json_schema_for(str) == {"type": "string"}
    assert json_schema_for(int) == {"type": "integer"}
    schema = json_schema_for(Point)
    assert isinstance(schema, dict) and schema["type"] == "object"
