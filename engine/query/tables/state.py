"""``state``: the K/V state of virtual objects and workflows, one row per key.

Restate's encoding: ``key`` is the state key as text, ``value`` the raw bytes,
``value_utf8`` the same bytes as text when they are valid UTF-8 (else null), and the
byte lengths of both. ``scope`` is null.

Pushdown: ``service_key`` (with or without ``service_name``) and ``partition_key`` pick
the partitions; ``service_name`` and ``service_key`` filter rows while scanning.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pyarrow as pa

from engine.query.objects import instance_rows
from engine.query.placement import placement
from engine.query.pushdown import Constraints
from engine.query.spec import BINARY, TEXT, U64, PartitionedTable, Row, ScanContext
from engine.storage.tables import PartitionTables

__all__ = ["TABLE", "text_or_none"]

SCHEMA: Final = pa.schema([
    ("partition_key", U64), ("scope", TEXT), ("service_name", TEXT), ("service_key", TEXT), ("key", TEXT),
    ("key_length", U64), ("value_utf8", TEXT), ("value", BINARY), ("value_length", U64),
])


def text_or_none(raw: bytes) -> str | None:
    """``raw`` as text when it is valid UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _rows(tables: PartitionTables, constraints: Constraints, context: ScanContext) -> Iterable[Row]:
    for row, entry in instance_rows(tables, constraints, tables.state.scan_all()):
        yield {
            **row,
            "key": entry.key.decode("utf-8", errors="replace"),
            "key_length": len(entry.key),
            "value_utf8": text_or_none(entry.value),
            "value": entry.value,
            "value_length": len(entry.value),
        }


TABLE: Final = PartitionedTable(
    name="state",
    schema=SCHEMA,
    rows=_rows,
    pushdown=frozenset({"partition_key", "service_name", "service_key"}),
    partitions=placement(object_service="service_name", object_key="service_key"),
)
