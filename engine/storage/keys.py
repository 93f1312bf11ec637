"""Building LMDB keys: fixed-width integers, self-delimiting strings, prefix scans.

Every table key starts with the partition id (4 bytes, big-endian), so one LMDB
environment holds all partitions of a process and a partition's rows are one
contiguous key range. After that come the table's own components, each either
fixed width or self-delimiting, so a shorter key is never a prefix of an unrelated
longer one and prefix scans return exactly the rows asked for.

LMDB refuses keys longer than 511 bytes. Components chosen by users (object keys,
state keys, producer names) are written inline when short and replaced by a SHA-256
digest when long; a tag byte says which form follows, so the two forms never collide.
The tables that hash a component keep its original value in the row's value.

Integers are big-endian, so byte order is numeric order. Signed times are biased by
``2**63`` first, so negative times sort before positive ones.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import lmdb

__all__ = [
    "MAX_KEY_SIZE",
    "bounded",
    "ObjectComponent",
    "iter_prefix",
    "length_prefixed",
    "object_component",
    "ordered_i64",
    "partition_prefix",
    "read_object_component",
    "read_ordered_i64",
    "u32",
    "u64",
]

MAX_KEY_SIZE: Final = 511
"""LMDB's compiled-in maximum key size."""

# Object components longer than this are hashed: it leaves room for the partition
# prefix, a sequence number or a state key in the same LMDB key.
_MAX_INLINE_OBJECT: Final = 160
_INLINE: Final = b"\x00"
_HASHED: Final = b"\x01"

_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")
_BIAS: Final = 2**63


def u32(value: int) -> bytes:
    """``value`` as 4 big-endian bytes."""
    return _U32.pack(value)


def u64(value: int) -> bytes:
    """``value`` as 8 big-endian bytes."""
    return _U64.pack(value)


def ordered_i64(value: int) -> bytes:
    """A signed 64-bit ``value`` as 8 bytes whose byte order is numeric order."""
    return _U64.pack(value + _BIAS)


def read_ordered_i64(raw: bytes) -> int:
    """Inverse of :func:`ordered_i64`."""
    return int(_U64.unpack(raw)[0]) - _BIAS


def partition_prefix(partition: int) -> bytes:
    """The first 4 bytes of every key of ``partition``."""
    return _U32.pack(partition)


def length_prefixed(raw: bytes) -> bytes:
    """``raw`` preceded by its length (4 bytes): self-delimiting."""
    return _U32.pack(len(raw)) + raw


def bounded(raw: bytes, max_inline: int) -> bytes:
    """A self-delimiting component: inline if ``raw`` is short, else its SHA-256.

    Either ``0x00 + length + raw`` or ``0x01 + sha256(raw)``.
    """
    if len(raw) <= max_inline:
        return _INLINE + length_prefixed(raw)
    return _HASHED + hashlib.sha256(raw).digest()


def object_component(service: str, key: str) -> bytes:
    """The component naming one virtual object / workflow instance ``(service, key)``."""
    raw = length_prefixed(service.encode("utf-8")) + length_prefixed(key.encode("utf-8"))
    return bounded(raw, _MAX_INLINE_OBJECT)


@dataclass(frozen=True, slots=True)
class ObjectComponent:
    """An object component read back from a key: the names when stored inline, ``None``
    when hashed (then only :attr:`raw` identifies the instance)."""

    raw: bytes
    service: str | None
    key: str | None


def read_object_component(row: bytes, offset: int) -> tuple[ObjectComponent, int]:
    """The :func:`object_component` starting at ``row[offset]`` and the offset after it."""
    tag = row[offset : offset + 1]
    if tag == _HASHED:
        end = offset + 1 + 32
        return ObjectComponent(row[offset:end], None, None), end
    length = int(_U32.unpack_from(row, offset + 1)[0])
    end = offset + 5 + length
    body = row[offset + 5 : end]
    service_length = int(_U32.unpack_from(body, 0)[0])
    service = body[4 : 4 + service_length]
    key = body[8 + service_length :]
    return ObjectComponent(row[offset:end], service.decode("utf-8"), key.decode("utf-8")), end


def iter_prefix(
    txn: lmdb.Transaction[bytes], db: lmdb._Database, prefix: bytes, start: bytes | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """Rows whose key starts with ``prefix``, in key order, from ``start`` (inclusive).

    ``start`` defaults to ``prefix``; it must itself start with ``prefix``. The cursor is
    positioned lazily, so callers may stop early; they must not write to ``db`` while
    iterating (collect first, then write).
    """
    cursor = txn.cursor(db)
    if not cursor.set_range(start if start is not None else prefix):
        return
    for key, value in cursor.iternext(keys=True, values=True):
        if not key.startswith(prefix):
            return
        yield key, value
