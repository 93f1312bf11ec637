"""Avro records as handler inputs, outputs, state values and step results (fastavro).

The schema is declared where the serde is used, usually on the handler::

    ORDER = {"type": "record", "name": "Order", "fields": [
        {"name": "item", "type": "string"}, {"name": "quantity", "type": "int"}]}

    @shop.handler(input_serde=AvroSerde(ORDER), output_serde=AvroSerde(RECEIPT))
    async def buy(ctx: Context, order: Order) -> Receipt: ...

Values travel as Avro *binary* encoding without a header (the schema is agreed on in
advance, not sent along), content type ``avro/binary`` as the Avro specification names
it. Records decode to dicts, or to ``record_type`` (a dataclass or pydantic model;
nested dataclass fields are built too). When the handler's annotation is a dataclass or
pydantic model and no ``record_type`` is given, the annotation is used.

Discovery has no Avro field: the handler advertises the content type, no JSON schema
(the body is not JSON), and the Avro schema itself in the handler's metadata under
``avro.input.schema`` / ``avro.output.schema`` (manifest v2+), so tooling can find it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import types
import typing
from typing import Any, Generic, TypeVar

import fastavro

from sdk.errors import HandlerDefinitionError, TerminalError

__all__ = ["AVRO_CONTENT_TYPE", "AvroSerde", "is_record_type"]

T = TypeVar("T")

AVRO_CONTENT_TYPE = "avro/binary"
"""The content type of Avro binary bodies (Avro specification, HTTP transport)."""


def _to_datum(value: Any) -> Any:
    """What fastavro writes: plain dicts/lists for dataclasses and pydantic models."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_datum(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_datum(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_datum(v) for k, v in value.items()}
    return value


def _build(record_type: Any, datum: Any) -> Any:
    """``datum`` (a decoded value) as ``record_type``: dataclasses (nested ones too, also
    inside lists, dicts and optionals) and pydantic models; anything else unchanged."""
    if datum is None:
        return None
    origin = typing.get_origin(record_type)
    args = typing.get_args(record_type)
    if origin in (list, tuple, set, frozenset) and args and isinstance(datum, list):
        return [_build(args[0], v) for v in datum]
    if origin is dict and len(args) == 2 and isinstance(datum, dict):
        return {k: _build(args[1], v) for k, v in datum.items()}
    if origin in (typing.Union, types.UnionType):
        candidates = [a for a in args if a is not type(None)]
        return _build(candidates[0], datum) if len(candidates) == 1 else datum
    validate = getattr(record_type, "model_validate", None)
    if callable(validate):
        return validate(datum)
    if not (isinstance(record_type, type) and dataclasses.is_dataclass(record_type)):
        return datum
    if not isinstance(datum, dict):
        raise TypeError(f"expected a record for {record_type.__name__}, got {type(datum).__name__}")
    hints = typing.get_type_hints(record_type)
    fields = {f.name for f in dataclasses.fields(record_type)}
    return record_type(**{k: _build(hints.get(k), v) for k, v in datum.items() if k in fields})


def is_record_type(tp: Any) -> bool:
    """Whether ``tp`` can be built from a decoded record (dataclass or pydantic model)."""
    if not isinstance(tp, type):
        return False
    return dataclasses.is_dataclass(tp) or callable(getattr(tp, "model_validate", None))


class AvroSerde(Generic[T]):
    """Avro binary encoding with a fixed schema.

    Args:
        schema: The Avro schema: a dict (a record, usually), a list (a union) or a type
            name, or its JSON text.
        record_type: Decode records into this dataclass or pydantic model instead of
            dicts; ``None`` keeps dicts unless the handler's annotation says otherwise.

    Raises:
        HandlerDefinitionError: the schema is not valid Avro.
    """

    content_type = AVRO_CONTENT_TYPE

    def __init__(self, schema: dict[str, Any] | list[Any] | str, record_type: type[T] | None = None) -> None:
        if isinstance(schema, str) and schema.lstrip().startswith(("{", "[", '"')):
            schema = json.loads(schema)
        self.schema: dict[str, Any] | list[Any] | str = schema
        try:
            self._parsed = fastavro.parse_schema(schema)
        except Exception as exc:  # noqa: BLE001 - fastavro raises several types
            raise HandlerDefinitionError(f"invalid Avro schema: {exc}") from exc
        self.record_type = record_type

    @property
    def name(self) -> str:
        """The schema's full name (or its type, for unnamed schemas)."""
        if isinstance(self._parsed, dict):
            return str(self._parsed.get("name") or self._parsed.get("type"))
        return str(self._parsed)

    def schema_json(self) -> str:
        """The schema as compact JSON text (the form published in discovery metadata)."""
        return json.dumps(self.schema, separators=(",", ":"), sort_keys=True)

    def with_record_type(self, record_type: Any) -> AvroSerde[Any]:
        """This serde decoding into ``record_type`` (used for handler annotations)."""
        return AvroSerde(self.schema, record_type)

    def serialize(self, value: T) -> bytes:
        """Encode ``value`` (dict, dataclass, pydantic model or a primitive).

        Raises:
            TerminalError: 500 when the value does not fit the schema (a bug that no
                retry fixes).
        """
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, self._parsed, _to_datum(value))
        except Exception as exc:  # noqa: BLE001 - fastavro's errors vary by type
            raise TerminalError(f"value does not match Avro schema {self.name}: {exc}", 500) from exc
        return buffer.getvalue()

    def deserialize(self, data: bytes) -> T:
        """Decode ``data``; raises :class:`TerminalError` 400 when it is not valid."""
        buffer = io.BytesIO(data)
        try:
            datum = fastavro.schemaless_reader(buffer, self._parsed, None)
            if buffer.tell() != len(data):
                raise ValueError(f"{len(data) - buffer.tell()} bytes left after the record")
            if self.record_type is not None:
                return typing.cast(T, _build(self.record_type, datum))
            return typing.cast(T, datum)
        except Exception as exc:  # noqa: BLE001 - any decoding problem is bad input
            raise TerminalError(f"cannot decode Avro {self.name}: {exc}", 400) from exc

    def json_schema(self) -> dict[str, Any] | bool | None:
        """``None``: an Avro body is not JSON (the Avro schema goes into metadata)."""
        return None
