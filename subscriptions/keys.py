"""Mapping a Kafka record key to the object key of a virtual-object or workflow sink.

The record key is the object (or workflow) key, so all events with one key run one at a
time, in publish order. Object keys are strings; Kafka keys are bytes, which need not be
UTF-8. Restate fails on non-UTF-8 keys; here the mapping is chosen per subscription with
the option ``key.format``:

``string`` (default)
    The key bytes as UTF-8 text. Bytes that are not UTF-8 raise :class:`RecordDecodeError`
    naming the formats that accept them.
``hex``
    Lower-case hexadecimal of the key bytes: ``b"\\x01\\xff"`` -> ``"01ff"``.
``base64``
    Standard base64 with padding: ``b"\\x01\\xff"`` -> ``"Af8="``.
``json``
    The key bytes must be UTF-8 JSON. A JSON string maps to the string itself
    (``"\\"alice\\""`` -> ``alice``); any other value to its canonical JSON: compact, object
    keys sorted (``{"b":1,"a":2}`` -> ``{"a":2,"b":1}``, ``42`` -> ``42``), so equal
    values always give the same object key.
``avro``
    Plain Avro binary written with the schema in ``key.avro.schema`` (JSON).
``avro-confluent``
    Confluent wire format (magic byte 0, 4-byte schema id, Avro binary), the schema from
    the registry at ``schema.registry.url`` (shared with ``payload.format``).

An Avro key's value maps like this: a string to itself, an int/long to its decimal text,
bytes/fixed/decimal/dates/timestamps/uuid to the JSON string of the payload mapping
(base64, ``"12.30"``, ISO-8601; see :mod:`subscriptions.payload`), anything else (records,
arrays, maps, booleans, null, floats) to canonical compact JSON with sorted keys.

For anything else, ``key.mapper = "<name>"`` picks a mapper **by name**: one of the
built-in ones (``string``, ``hex``, ``base64``, ``json``: the formats above that need no
other option) or one the engine's operator registered in the engine's own configuration
(``[subscription_key_mappers] tenant = "mypackage.keys:tenant_key"`` in the TOML file, or
an entry point of the group ``logstrate.key_mappers`` of an installed package; see
:func:`register_key_mappers`). An API request can never name a module to import: the
admin API is reachable by whoever can reach the engine, and an import (``builtins:eval``
plus a record key of the caller's choice) would run their code on the engine host. A
name that is not registered is an :class:`InvalidSubscriptionOptions` listing the valid
names, and nothing is imported. An exception a registered mapper raises on a record, or
a result that is not a ``str``, fails that record (:class:`RecordDecodeError`).
``key.mapper`` and ``key.format`` are exclusive. A mapper must be deterministic: the same
key must always give the same object key, or events of one Kafka key would be spread
over several objects.

A record without a key cannot be routed to an object: :meth:`KeyMapper.object_key` raises
:class:`RecordDecodeError` for it, whatever the format, and the consumer sends it to the
subscription's error path instead of dropping it.
"""

from __future__ import annotations

import base64
import importlib
import importlib.metadata
import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Final

from subscriptions.errors import InvalidSubscriptionOptions, RecordDecodeError
from subscriptions.payload import (
    RegistryFactory,
    avro_scalar_to_json,
    avro_to_json_bytes,
    inline_avro_schema,
    option_choice,
    read_avro,
    read_confluent,
    registry_from_options,
)
from subscriptions.registry import shared_registry_client

KEY_FORMAT: Final = "key.format"
KEY_AVRO_SCHEMA: Final = "key.avro.schema"
KEY_MAPPER: Final = "key.mapper"
ENTRY_POINT_GROUP: Final = "logstrate.key_mappers"
"""Entry point group through which installed packages offer key mappers by name."""

FORMATS: Final = ("string", "hex", "base64", "json", "avro", "avro-confluent")

NO_KEY_MESSAGE: Final = (
    "record has no key; a virtual object or workflow sink needs the Kafka record key as the object key"
)


class KeyMapper:
    """Maps record keys to object keys for one subscription (thread-safe)."""

    def __init__(self, format: str, map_key: Callable[[bytes], str]) -> None:
        self._format = format
        self._map_key = map_key

    @property
    def format(self) -> str:
        """The ``key.format``, or ``key.mapper=<name>`` for a mapper chosen by name."""
        return self._format

    def object_key(self, raw: bytes | None) -> str:
        """The object key for record key ``raw``.

        Raises :class:`RecordDecodeError` if the record has no key or the key does not
        map, :class:`SchemaRegistryError` if the schema registry cannot be reached.
        """
        if raw is None:
            raise RecordDecodeError(NO_KEY_MESSAGE)
        return self._map_key(raw)

    def __repr__(self) -> str:
        return f"KeyMapper(format={self._format!r})"


def key_mapper(options: Mapping[str, str], registry_factory: RegistryFactory = shared_registry_client) -> KeyMapper:
    """The key mapping configured by ``options``; invalid options raise
    :class:`InvalidSubscriptionOptions` at once. Nothing is ever imported here: a
    ``key.mapper`` is looked up among the built-in and operator-registered names."""
    spec = options.get(KEY_MAPPER)
    if spec is not None:
        if KEY_FORMAT in options or KEY_AVRO_SCHEMA in options:
            raise InvalidSubscriptionOptions(
                f"{KEY_MAPPER} and {KEY_FORMAT}/{KEY_AVRO_SCHEMA} exclude each other: the mapper gets "
                f"the raw key bytes; remove one of them"
            )
        return _named_mapper(spec.strip())
    fmt = option_choice(options, KEY_FORMAT, FORMATS, default="string")
    if fmt != "avro" and KEY_AVRO_SCHEMA in options:
        raise InvalidSubscriptionOptions(
            f"{KEY_AVRO_SCHEMA} is set but {KEY_FORMAT} is {fmt!r}; "
            f"set {KEY_FORMAT} to avro to decode keys with that schema, or remove it"
        )
    if fmt == "string":
        return KeyMapper(fmt, _utf8_key)
    if fmt == "hex":
        return KeyMapper(fmt, _hex_key)
    if fmt == "base64":
        return KeyMapper(fmt, _base64_key)
    if fmt == "json":
        return KeyMapper(fmt, _json_key)
    if fmt == "avro":
        schema = inline_avro_schema(options, KEY_AVRO_SCHEMA, KEY_FORMAT)
        return KeyMapper(fmt, lambda raw: avro_key_text(read_avro(schema, raw, "key", KEY_FORMAT)))
    registry = registry_from_options(options, registry_factory, KEY_FORMAT)
    return KeyMapper(fmt, lambda raw: avro_key_text(read_confluent(registry, raw, "key", KEY_FORMAT)))


def avro_key_text(value: object) -> str:
    """The object key of a decoded Avro key value (the mapping in the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    scalar = avro_scalar_to_json(value)
    if isinstance(scalar, str):
        return scalar
    return avro_to_json_bytes(value, sort_keys=True).decode("utf-8")


# -- the built-in formats ------------------------------------------------------------------


def _utf8_key(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordDecodeError(
            f"record key is not UTF-8 ({KEY_FORMAT}=string, byte {exc.start}); "
            f"set {KEY_FORMAT} to hex, base64, json, avro or avro-confluent"
        ) from exc


def _hex_key(raw: bytes) -> str:
    return raw.hex()


def _base64_key(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _json_key(raw: bytes) -> str:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordDecodeError(
            f"record key is not UTF-8 JSON ({KEY_FORMAT}=json): {exc}; "
            f"set {KEY_FORMAT} to string, hex or base64 to use the key bytes as they are"
        ) from exc
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _reject_constant(name: str) -> object:
    # NaN/Infinity are not JSON; without a canonical form they cannot be object keys.
    raise ValueError(f"{name} is not a JSON value")


# -- mappers by name -----------------------------------------------------------------------

BUILTIN_MAPPERS: Final[Mapping[str, Callable[[bytes], str]]] = {
    "string": _utf8_key,
    "hex": _hex_key,
    "base64": _base64_key,
    "json": _json_key,
}
"""``key.mapper`` names that are always available (the option-free ``key.format`` values)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_lock = threading.Lock()
_registered: dict[str, tuple[str, Callable[[bytes], object]]] = {}


class KeyMapperConfigError(ValueError):
    """An operator-registered key mapper cannot be loaded; the engine refuses to start."""


def register_key_mappers(specs: Mapping[str, str], *, entry_points: bool = True) -> dict[str, str]:
    """Replace the operator's custom key mappers: ``name -> "package.module:callable"``
    from the engine config, plus (``entry_points``) those installed packages offer in the
    entry point group ``logstrate.key_mappers`` (the config wins on a name clash).

    Called once at engine start, from the engine's own configuration, never from an API
    request. Every mapper is imported here, so a typo fails the start
    (:class:`KeyMapperConfigError`) rather than a subscription later. Returns ``name ->
    source`` of what was registered (for the start-up log).
    """
    loaded: dict[str, tuple[str, Callable[[bytes], object]]] = {}
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in specs:
                continue
            _check_name(ep.name, f"entry point {ep.value!r} of group {ENTRY_POINT_GROUP}")
            try:
                target: object = ep.load()
            except Exception as exc:  # an installed package's broken mapper is an operator error
                raise KeyMapperConfigError(
                    f"key mapper {ep.name!r} (entry point {ep.value!r} of group {ENTRY_POINT_GROUP}) cannot be "
                    f"loaded: {type(exc).__name__}: {exc}; fix or uninstall the package that declares it"
                ) from exc
            loaded[ep.name] = (f"entry point {ep.value}", _callable(target, ep.name, ep.value))
    for name, spec in specs.items():
        _check_name(name, "subscription_key_mappers")
        loaded[name] = (spec, _import_mapper(name, str(spec).strip()))
    with _lock:
        _registered.clear()
        _registered.update(loaded)
    return {name: source for name, (source, _) in loaded.items()}


def registered_key_mappers() -> list[str]:
    """Every name ``key.mapper`` accepts now: built-in ones first, then registered ones."""
    with _lock:
        custom = sorted(_registered)
    return [*BUILTIN_MAPPERS, *custom]


def _check_name(name: str, where: str) -> None:
    if not _NAME.fullmatch(name):
        raise KeyMapperConfigError(
            f"key mapper name {name!r} ({where}) must be letters, digits, '.', '_' or '-' (at most 100)"
        )
    if name in BUILTIN_MAPPERS:
        raise KeyMapperConfigError(
            f"key mapper name {name!r} ({where}) is a built-in mapper; give the custom mapper another name"
        )


def _import_mapper(name: str, spec: str) -> Callable[[bytes], object]:
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise KeyMapperConfigError(
            f"subscription_key_mappers.{name} = {spec!r} must be 'package.module:function' "
            "(a callable from key bytes to str)"
        )
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:  # any error while importing operator code is a configuration error
        raise KeyMapperConfigError(
            f"subscription_key_mappers.{name} = {spec!r}: cannot import module {module_name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    for attr in attr_path.split("."):
        try:
            target = getattr(target, attr)
        except AttributeError as exc:
            raise KeyMapperConfigError(
                f"subscription_key_mappers.{name} = {spec!r}: {module_name!r} has no attribute {attr_path!r}"
            ) from exc
    return _callable(target, name, spec)


def _callable(target: object, name: str, spec: str) -> Callable[[bytes], object]:
    if not callable(target):
        raise KeyMapperConfigError(
            f"key mapper {name!r} ({spec!r}) is a {type(target).__name__}, not a callable from key bytes to str"
        )
    function: Callable[[bytes], object] = target
    return function


def _named_mapper(name: str) -> KeyMapper:
    builtin = BUILTIN_MAPPERS.get(name)
    if builtin is not None:
        return KeyMapper(f"{KEY_MAPPER}={name}", builtin)
    with _lock:
        found = _registered.get(name)
    if found is None:
        raise InvalidSubscriptionOptions(
            f"{KEY_MAPPER} {name[:200]!r} is not a known key mapper; valid names: "
            f"{', '.join(registered_key_mappers())}. Custom mappers are registered by the engine's operator "
            f"in the engine config ([subscription_key_mappers] <name> = \"package.module:function\") or as an "
            f"entry point of the group {ENTRY_POINT_GROUP}; a subscription cannot name code to import"
        )
    _, function = found

    def map_key(raw: bytes) -> str:
        try:
            result = function(raw)
        except Exception as exc:  # a failing mapper fails this record, not the consumer
            raise RecordDecodeError(
                f"{KEY_MAPPER} {name!r} raised {type(exc).__name__} on the record key: {exc}"
            ) from exc
        if not isinstance(result, str):
            raise RecordDecodeError(
                f"{KEY_MAPPER} {name!r} returned {type(result).__name__}, not str, for the record key"
            )
        return result

    return KeyMapper(f"{KEY_MAPPER}={name}", map_key)
