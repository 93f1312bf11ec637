"""Serialization of handler inputs/outputs, state values and journaled results.

A :class:`Serde` turns a value into bytes and back, names its content type and (when
it can) describes the value with a JSON schema for discovery. :func:`serde_for` picks
one from a type annotation:

* ``bytes`` -> :class:`BytesSerde` (passthrough, ``application/octet-stream``);
* pydantic models (only if pydantic is installed) -> :class:`PydanticSerde`;
* dataclasses -> :class:`DataclassSerde`;
* anything else -> :class:`JsonSerde` (validated and converted by pydantic's
  ``TypeAdapter`` when pydantic is installed, plain ``json`` otherwise).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Generic, Protocol, TypeVar

from sdk.errors import TerminalError

__all__ = [
    "BytesSerde",
    "DataclassSerde",
    "JsonSerde",
    "PydanticSerde",
    "Serde",
    "json_schema_for",
    "serde_for",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

try:  # pydantic is optional: used when installed, never required.
    import pydantic as _pydantic
except ImportError:  # pragma: no cover - exercised only without pydantic
    _pydantic = None  # type: ignore[assignment,unused-ignore]


class Serde(Protocol[T]):
    """How values of one type travel as bytes."""

    content_type: str

    def serialize(self, value: T) -> bytes:
        """Encode ``value``."""
        ...

    def deserialize(self, data: bytes) -> T:
        """Decode ``data``; raises :class:`TerminalError` (400) on malformed input."""
        ...

    def json_schema(self) -> dict[str, Any] | bool | None:
        """JSON schema of the value for discovery, ``None`` when not applicable."""
        ...


class BytesSerde:
    """Raw bytes, unchanged."""

    content_type = "application/octet-stream"

    def serialize(self, value: bytes) -> bytes:
        return bytes(value)

    def deserialize(self, data: bytes) -> bytes:
        return data

    def json_schema(self) -> dict[str, Any] | bool | None:
        return None


def _to_jsonable(value: Any) -> Any:
    if _pydantic is not None and isinstance(value, _pydantic.BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    return value


class JsonSerde(Generic[T]):
    """JSON, optionally converted to ``type_hint`` (via pydantic when installed).

    ``None`` is encoded as an empty body, and an empty body decodes to ``None``, as the
    Restate SDKs do for handlers without a result.
    """

    content_type = "application/json"

    def __init__(self, type_hint: Any = None) -> None:
        self.type_hint = type_hint
        self._adapter: Any = None
        if _pydantic is not None and type_hint is not None and type_hint is not Any:
            try:
                self._adapter = _pydantic.TypeAdapter(type_hint)
            except Exception:  # noqa: BLE001 - not every annotation is adaptable
                self._adapter = None

    def serialize(self, value: T) -> bytes:
        if value is None:
            return b""
        if self._adapter is not None:
            try:
                return bytes(self._adapter.dump_json(value))
            except Exception:  # noqa: BLE001 - fall back to plain json below
                pass
        return json.dumps(_to_jsonable(value), separators=(",", ":")).encode()

    def deserialize(self, data: bytes) -> T:
        if not data:
            return typing.cast(T, None)
        try:
            if self._adapter is not None:
                return typing.cast(T, self._adapter.validate_json(data))
            return typing.cast(T, json.loads(data))
        except Exception as exc:  # noqa: BLE001 - any decoding problem is bad input
            raise TerminalError(f"cannot decode JSON value: {exc}", status_code=400) from exc

    def json_schema(self) -> dict[str, Any] | bool | None:
        return json_schema_for(self.type_hint)


class DataclassSerde(JsonSerde[T]):
    """A dataclass as a JSON object (nested dataclasses too)."""

    def deserialize(self, data: bytes) -> T:
        if self._adapter is not None or not data:
            return super().deserialize(data)
        raw = super().deserialize(data)
        try:
            return typing.cast(T, self.type_hint(**typing.cast(dict[str, Any], raw)))
        except TypeError as exc:
            raise TerminalError(f"cannot build {self.type_hint.__name__}: {exc}", 400) from exc


class PydanticSerde(JsonSerde[T]):
    """A pydantic model as JSON (``model_dump_json`` / ``model_validate_json``)."""

    def serialize(self, value: T) -> bytes:
        if value is None:
            return b""
        dumped: str = typing.cast(Any, value).model_dump_json()
        return dumped.encode()

    def deserialize(self, data: bytes) -> T:
        if not data:
            return typing.cast(T, None)
        try:
            return typing.cast(T, self.type_hint.model_validate_json(data))
        except Exception as exc:  # noqa: BLE001 - validation errors are bad input
            raise TerminalError(f"invalid {self.type_hint.__name__}: {exc}", 400) from exc


_PRIMITIVE_SCHEMAS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    dict: {"type": "object"},
    list: {"type": "array"},
    type(None): {"type": "null"},
}


def json_schema_for(type_hint: Any) -> dict[str, Any] | bool | None:
    """A JSON schema for ``type_hint``; ``True`` (anything) when it cannot be derived."""
    if type_hint is None or type_hint is Any:
        return True
    if type_hint in _PRIMITIVE_SCHEMAS:
        return dict(_PRIMITIVE_SCHEMAS[type_hint])
    if _pydantic is not None:
        try:
            schema: dict[str, Any] = _pydantic.TypeAdapter(type_hint).json_schema()
            return schema
        except Exception:  # noqa: BLE001 - fall through to "anything"
            return True
    return True


def _is_pydantic_model(tp: Any) -> bool:
    return _pydantic is not None and isinstance(tp, type) and issubclass(tp, _pydantic.BaseModel)


def serde_for(type_hint: Any) -> Serde[Any]:
    """The default serde of a type annotation (see the module docstring)."""
    if type_hint is bytes:
        return BytesSerde()
    if _is_pydantic_model(type_hint):
        return PydanticSerde(type_hint)
    if isinstance(type_hint, type) and dataclasses.is_dataclass(type_hint):
        return DataclassSerde(type_hint)
    origin = typing.get_origin(type_hint)
    if origin in (typing.Union, types.UnionType):
        return JsonSerde(type_hint)
    return JsonSerde(type_hint)
