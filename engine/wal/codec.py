"""Binary encoding of WAL records: a 2-byte prefix, then schemaless Avro.

Wire layout of one Kafka record value::

    byte 0     0x4C ('L'), magic: marks a logstrate WAL record (Confluent-framed Avro
               starts with 0x00, so the two cannot be confused)
    byte 1     schema version of the writer, 1..255 (see engine.wal.schema)
    byte 2..   the Envelope record, Avro binary encoding (fastavro schemaless_writer)
               with the writer schema of that version; nothing follows it

The Envelope holds ``epoch`` (nullable long), ``dedup_id`` (nullable record) and
``body``, a union with one branch per record type of :mod:`engine.wal.records`.

Schema evolution: adding a record type or an optional field with a default, or any
other change, makes a new schema version (rules in :mod:`engine.wal.schema`). Writers
always use :data:`~engine.wal.schema.CURRENT_VERSION`. Readers keep every older writer
schema and decode old bytes with fastavro's writer/reader schema resolution into the
current shape, so a new engine reads everything older engines wrote. An older engine
cannot read a record type it does not know: upgrade every engine process before
anything writes a new record type.

Python values map to Avro generically, by the dataclasses' type hints: ids become
``fixed`` bytes, enums their symbol, tuples arrays, and fields typed as a union of
dataclasses become Avro unions written in fastavro's ``(record name, dict)`` notation.
Converters are built once per class, not per record.
"""

from __future__ import annotations

import dataclasses
import io
import types
import typing
from collections.abc import Callable
from enum import Enum
from typing import Any, Final

import fastavro

from engine.errors import EngineError
from engine.ids import DeploymentId, InvocationId, SubscriptionId
from engine.wal import records as r
from engine.wal.schema import CURRENT_VERSION, NAMESPACE, WRITER_SCHEMAS, Schema

__all__ = ["MAGIC", "WalCodecError", "WalSchemaTooNew", "decode", "encode", "encode_envelope"]

MAGIC: Final = 0x4C

_Conv = Callable[[Any], Any]


class WalCodecError(EngineError):
    """Bytes are not a WAL record this engine can read, or a record cannot be encoded."""


class WalSchemaTooNew(WalCodecError):
    """A WAL record written by a newer engine (a schema version above this engine's): it
    is not corrupt, this engine just cannot read it; the partition must wait for an
    upgrade rather than skip it (:mod:`engine.partition.halt`)."""

    def __init__(self, message: str, version: int) -> None:
        super().__init__(message)
        self.version = version


# Every dataclass that appears in the schema, so Avro record names map back to classes.
_DATACLASSES: Final[tuple[type[Any], ...]] = (
    r.Invoke, r.JournalAppend, r.InvocationSuspended, r.InvocationEnded,
    r.InvocationFailedAttempt, r.DeploymentPinned, r.Notify, r.TimerFired,
    r.OutboxTruncate, r.AnnounceLeader, r.CancelInvocation, r.KillInvocation,
    r.PurgeInvocation, r.AttachInvocation, r.PatchState,
    r.InvocationTarget, r.Header, r.IngressSource, r.InvocationSource,
    r.SubscriptionSource, r.IngressSink, r.InvocationSink, r.CompletionId,
    r.SignalIndex, r.SignalName, r.Value, r.FailureMetadata, r.Failure, r.Void,
    r.InvocationIdResult, r.StateKeys, r.TimerKey, r.StateEntry, r.DedupId,
    r.CallTarget, r.PauseInvocation, r.ResumeInvocation, r.GetInvocationOutput,
    r.RecordBatch, r.RestartAsNewInvocation,
)  # fmt: skip
_RECORD_TYPES: Final = frozenset(typing.get_args(r.Record))
_NAME_OF: Final[dict[type[Any], str]] = {cls: f"{NAMESPACE}.{cls.__name__}" for cls in _DATACLASSES}
_CLASS_OF: Final[dict[str, type[Any]]] = {name: cls for cls, name in _NAME_OF.items()}
_BYTES_IDS: Final[tuple[type[Any], ...]] = (InvocationId, DeploymentId, SubscriptionId)

# Parsed once: fastavro re-parses an unparsed schema on every call.
_PARSED: Final[dict[int, Schema]] = {
    version: typing.cast(Schema, fastavro.parse_schema(schema))
    for version, schema in WRITER_SCHEMAS.items()
}


def _identity(value: Any) -> Any:
    return value


def _union_members(hint: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return None


def _is_record_class(hint: Any) -> bool:
    """A dataclass written as an Avro record (ids are dataclasses too, written as bytes)."""
    return dataclasses.is_dataclass(hint) and hint not in _BYTES_IDS


def _encoder_for(hint: Any) -> _Conv:
    """A function turning a value of type ``hint`` into what fastavro writes."""
    members = _union_members(hint)
    if members is not None:
        classes = [m for m in members if m is not type(None)]
        if all(_is_record_class(m) for m in classes):
            # Union of records: name the branch explicitly (tuple notation), because
            # several records share a shape (Cancel/Kill/Purge) and fastavro would guess.
            encoders = {cls: _dataclass_encoder(cls) for cls in classes}

            def encode_union(value: Any) -> Any:
                if value is None:
                    return None
                cls = type(value)
                encoder = encoders.get(cls)
                if encoder is None:
                    raise WalCodecError(f"{cls.__name__} is not allowed here ({hint})")
                return (_NAME_OF[cls], encoder(value))

            return encode_union
        if len(classes) == 1:
            inner = _encoder_for(classes[0])
            return lambda value: None if value is None else inner(value)
        raise TypeError(f"unsupported union in a WAL record: {hint}")
    if typing.get_origin(hint) is tuple:
        item = _encoder_for(typing.get_args(hint)[0])
        return lambda value: [item(v) for v in value]
    if hint in _BYTES_IDS:
        return lambda value: value.to_bytes()
    if isinstance(hint, type) and issubclass(hint, Enum):
        return lambda value: value.name
    if dataclasses.is_dataclass(hint):
        return _dataclass_encoder(typing.cast(type[Any], hint))
    if hint in (int, str, bytes, bool):
        return _identity
    raise TypeError(f"unsupported type in a WAL record: {hint}")


def _decoder_for(hint: Any) -> _Conv:
    """The inverse of :func:`_encoder_for`, on what fastavro reads."""
    members = _union_members(hint)
    if members is not None:
        classes = [m for m in members if m is not type(None)]
        if all(_is_record_class(m) for m in classes):
            decoders = {_NAME_OF[cls]: _dataclass_decoder(cls) for cls in classes}
            only = next(iter(decoders.values())) if len(decoders) == 1 else None
            shapes = [(frozenset(f.name for f in dataclasses.fields(c)), c) for c in classes]
            by_fields = {
                shape: cls for shape, cls in shapes if [s for s, _ in shapes].count(shape) == 1
            }

            def decode_union(data: Any) -> Any:
                if data is None:
                    return None
                if isinstance(data, tuple):
                    name, payload = data
                    decoder = decoders.get(name)
                    if decoder is None:
                        raise WalCodecError(f"record {name} is not allowed here ({hint})")
                    return decoder(payload)
                if only is not None:
                    return only(data)
                # A field that was one record in an older writer schema and is a union
                # now: fastavro resolves it without naming the branch, so pick the one
                # class whose field names are exactly the value's.
                cls = by_fields.get(frozenset(data)) if isinstance(data, dict) else None
                if cls is None:
                    raise WalCodecError(f"union value without a record name for {hint}")
                return decoders[_NAME_OF[cls]](data)

            return decode_union
        if len(classes) == 1:
            inner = _decoder_for(classes[0])
            return lambda data: None if data is None else inner(data)
        raise TypeError(f"unsupported union in a WAL record: {hint}")
    if typing.get_origin(hint) is tuple:
        item = _decoder_for(typing.get_args(hint)[0])
        return lambda data: tuple(item(v) for v in data)
    if hint in _BYTES_IDS:
        from_bytes = typing.cast(_Conv, hint.from_bytes)

        def decode_id(data: Any) -> Any:
            # Inside a union fastavro names the branch of a fixed too.
            return from_bytes(data[1] if isinstance(data, tuple) else data)

        return decode_id
    if isinstance(hint, type) and issubclass(hint, Enum):
        enum_type = hint

        def decode_enum(data: Any) -> Any:
            # Inside some unions fastavro names the branch even for an enum.
            return enum_type[data[1] if isinstance(data, tuple) else data]

        return decode_enum
    if dataclasses.is_dataclass(hint):
        return _dataclass_decoder(typing.cast(type[Any], hint))
    if hint in (int, str, bytes, bool):
        return _identity
    raise TypeError(f"unsupported type in a WAL record: {hint}")


_ENCODERS: dict[type[Any], _Conv] = {}
_DECODERS: dict[type[Any], _Conv] = {}


def _fields_of(cls: type[Any]) -> list[tuple[str, Any, Any]]:
    """(name, type hint, default or MISSING) of each field of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name], f.default) for f in dataclasses.fields(cls)]


def _dataclass_encoder(cls: type[Any]) -> _Conv:
    cached = _ENCODERS.get(cls)
    if cached is not None:
        return cached
    if cls not in _NAME_OF:
        raise TypeError(f"{cls.__name__} has no Avro schema")

    field_encoders: list[tuple[str, _Conv]] = []

    def encode_dataclass(value: Any) -> dict[str, Any]:
        return {name: conv(getattr(value, name)) for name, conv in field_encoders}

    _ENCODERS[cls] = encode_dataclass  # before recursing: types may nest
    field_encoders.extend((name, _encoder_for(hint)) for name, hint, _ in _fields_of(cls))
    return encode_dataclass


def _dataclass_decoder(cls: type[Any]) -> _Conv:
    cached = _DECODERS.get(cls)
    if cached is not None:
        return cached
    if cls not in _NAME_OF:
        raise TypeError(f"{cls.__name__} has no Avro schema")

    field_decoders: list[tuple[str, _Conv, Any]] = []

    def decode_dataclass(data: dict[str, Any]) -> Any:
        kwargs = {}
        for name, conv, default in field_decoders:
            # A field the reader schema lacks keeps its Python default; Avro resolution
            # fills fields added in later versions from their schema defaults.
            if name in data:
                kwargs[name] = conv(data[name])
            elif default is dataclasses.MISSING:
                raise WalCodecError(f"{cls.__name__}: field {name!r} is missing")
        return cls(**kwargs)

    _DECODERS[cls] = decode_dataclass
    field_decoders.extend(
        (name, _decoder_for(hint), default) for name, hint, default in _fields_of(cls)
    )
    return decode_dataclass


_encode_dedup = _encoder_for(r.DedupId | None)
_decode_dedup = _decoder_for(r.DedupId | None)
_encode_body = _encoder_for(r.Record)
_decode_body = _decoder_for(r.Record)


def encode(record: r.Record, epoch: int | None = None, dedup_id: r.DedupId | None = None) -> bytes:
    """Encode ``record`` with its envelope stamps, in the current schema version.

    Raises :class:`WalCodecError` if ``record`` is not a WAL record or holds a value the
    schema cannot carry (an integer beyond 64 bits, a wrong type).
    """
    if type(record) not in _RECORD_TYPES:
        raise WalCodecError(f"{type(record).__name__} is not a WAL record type")
    try:
        datum = {
            "epoch": epoch,
            "dedup_id": _encode_dedup(dedup_id),
            "body": _encode_body(record),
        }
        out = io.BytesIO()
        out.write(bytes((MAGIC, CURRENT_VERSION)))
        fastavro.schemaless_writer(out, _PARSED[CURRENT_VERSION], datum, strict=True)
    except WalCodecError:
        raise
    except Exception as exc:  # fastavro raises ValueError, TypeError, OverflowError, ...
        raise WalCodecError(f"cannot encode {type(record).__name__}: {exc}") from exc
    return out.getvalue()


def encode_envelope(envelope: r.Envelope) -> bytes:
    """Encode an :class:`~engine.wal.records.Envelope` (its ``schema_version`` is ignored:
    records are always written in the current version)."""
    return encode(envelope.record, epoch=envelope.epoch, dedup_id=envelope.dedup_id)


def decode(data: bytes, *, reader_version: int | None = None) -> r.Envelope:
    """Decode one WAL record value.

    ``reader_version`` picks the reader schema (default: the current one); bytes of
    any known writer version are resolved into it. Raises :class:`WalCodecError`,
    naming the problem, for anything that is not a complete, well-formed record.
    """
    if len(data) < 2:
        raise WalCodecError(f"WAL record too short ({len(data)} bytes)")
    if data[0] != MAGIC:
        raise WalCodecError(
            f"not a WAL record: first byte is 0x{data[0]:02x}, expected 0x{MAGIC:02x}"
        )
    version = data[1]
    writer_schema = _PARSED.get(version)
    if writer_schema is None:
        message = (
            f"WAL record has schema version {version}; this engine reads versions "
            f"{min(_PARSED)}..{max(_PARSED)} (upgrade the engine)"
        )
        if version > max(_PARSED):
            raise WalSchemaTooNew(message, version)
        raise WalCodecError(message)
    reader = CURRENT_VERSION if reader_version is None else reader_version
    reader_schema = _PARSED.get(reader)
    if reader_schema is None:
        raise WalCodecError(f"unknown reader schema version {reader}")
    stream = io.BytesIO(data)
    stream.seek(2)
    try:
        datum = fastavro.schemaless_reader(
            stream,
            writer_schema,
            None if reader_schema is writer_schema else reader_schema,
            return_record_name=True,
        )
        if stream.tell() != len(data):
            raise WalCodecError(
                f"{len(data) - stream.tell()} unexpected bytes after the WAL record"
            )
        if not isinstance(datum, dict):
            raise WalCodecError("WAL record is not an Avro record")
        return r.Envelope(
            record=_decode_body(datum["body"]),
            epoch=datum.get("epoch"),
            dedup_id=_decode_dedup(datum.get("dedup_id")),
            schema_version=version,
        )
    except WalCodecError:
        raise
    except Exception as exc:  # truncated or corrupt input surfaces as many error types
        raise WalCodecError(f"corrupt WAL record (schema version {version}): {exc!r}") from exc
