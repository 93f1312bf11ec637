"""Serdes chosen from annotations: JSON, bytes, dataclasses, pydantic models; Avro."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

import sdk
from sdk.avro import AvroSerde
from sdk.endpoint import Endpoint
from sdk.errors import HandlerDefinitionError, TerminalError
from sdk.serde import BytesSerde, DataclassSerde, JsonSerde, PydanticSerde, json_schema_for, serde_for
from sdk.service import handler_def_of


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


# -- Avro ---------------------------------------------------------------------------

ITEM_SCHEMA = {"type": "record", "name": "Item", "namespace": "shop", "fields": [
    {"name": "sku", "type": "string"}, {"name": "price", "type": "double"}]}
ORDER_SCHEMA = {"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "string"},
    {"name": "items", "type": {"type": "array", "items": ITEM_SCHEMA}},
    {"name": "note", "type": ["null", "string"], "default": None}]}


@dataclass
class Item:
    sku: str
    price: float


@dataclass
class Order:
    id: str
    items: list[Item]
    note: str | None = None


def test_avro_round_trips_dicts_and_dataclasses_with_nested_records() -> None:
    import fastavro
    import io

    serde = AvroSerde(ORDER_SCHEMA)
    assert serde.content_type == "avro/binary" and serde.json_schema() is None
    order = {"id": "o1", "items": [{"sku": "tea", "price": 2.5}], "note": None}
    data = serde.serialize(order)
    # Plain schemaless Avro binary, as any Avro library writes it.
    expected = io.BytesIO()
    fastavro.schemaless_writer(expected, fastavro.parse_schema(ORDER_SCHEMA), order)
    assert data == expected.getvalue()
    assert serde.deserialize(data) == order
    typed = AvroSerde(json.dumps(ORDER_SCHEMA), record_type=Order)
    built = typed.deserialize(typed.serialize(Order("o2", [Item("cup", 4.0)], "gift")))
    assert built == Order("o2", [Item("cup", 4.0)], "gift")
    assert isinstance(built.items[0], Item)


def test_avro_errors_are_terminal_400_in_and_500_out() -> None:
    serde = AvroSerde(ITEM_SCHEMA)
    with pytest.raises(TerminalError) as bad_input:
        serde.deserialize(b"\x07")
    assert bad_input.value.status_code == 400 and "shop.Item" in bad_input.value.message
    with pytest.raises(TerminalError) as trailing:
        serde.deserialize(serde.serialize({"sku": "a", "price": 1.0}) + b"\x00")
    assert trailing.value.status_code == 400
    with pytest.raises(TerminalError) as bad_output:
        serde.serialize({"sku": 3})
    assert bad_output.value.status_code == 500
    with pytest.raises(HandlerDefinitionError):
        AvroSerde({"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]})


def test_avro_on_a_handler_binds_the_annotation_and_publishes_the_schema() -> None:
    shop = sdk.Service("AvroShop")

    @shop.handler(input_serde=AvroSerde(ORDER_SCHEMA), output_serde=AvroSerde(ITEM_SCHEMA))
    async def cheapest(ctx: sdk.Context, order: Order) -> Item:
        return min(order.items, key=lambda i: i.price)

    definition = handler_def_of(cheapest)
    decoded = definition.input_serde.deserialize(AvroSerde(ORDER_SCHEMA).serialize(
        {"id": "o", "items": [{"sku": "a", "price": 1.0}], "note": None}))
    assert decoded == Order("o", [Item("a", 1.0)])
    response = Endpoint([shop]).discover("application/vnd.restate.endpointmanifest.v4+json")
    assert isinstance(response.body, bytes)
    handler = json.loads(response.body)["services"][0]["handlers"][0]
    assert handler["input"] == {"required": False, "contentType": "avro/binary"}
    assert handler["output"] == {"contentType": "avro/binary", "setContentTypeIfEmpty": False}
    assert json.loads(handler["metadata"]["avro.input.schema"]) == ORDER_SCHEMA
    assert json.loads(handler["metadata"]["avro.output.schema"]) == ITEM_SCHEMA
    v1 = Endpoint([shop]).discover("application/vnd.restate.endpointmanifest.v1+json")
    assert isinstance(v1.body, bytes) and b"metadata" not in v1.body
