"""What a system table is: its Arrow schema, where its rows live, how they are read.

Two kinds: :class:`PartitionedTable` rows live in the partition tables (one LMDB
environment per process, holding the partitions it leads) and are read per partition;
:class:`MetadataTable` rows come from the metadata view every process holds whole
(deployments, services). The column names, types and value encodings are Restate's
(``crates/storage-query-datafusion`` of restatedev/restate, checked against
restate-server 1.7.12's ``information_schema.columns``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from engine.metadata.view import MetadataView
from engine.query.pushdown import Constraints
from engine.storage.tables import PartitionTables

__all__ = [
    "BINARY",
    "BOOL",
    "DURATION",
    "MetadataTable",
    "PartitionedTable",
    "Row",
    "ScanContext",
    "TEXT",
    "TIMESTAMP",
    "TEXT_LIST",
    "TableSpec",
    "to_table",
    "U32",
    "U32_LIST",
    "U64",
]

Row = dict[str, Any]
"""One row by column name; absent columns are null."""

# Restate's Arrow types (what its information_schema reports).
TEXT = pa.large_string()
BINARY = pa.large_binary()
U32 = pa.uint32()
U64 = pa.uint64()
BOOL = pa.bool_()
TIMESTAMP = pa.timestamp("ms", tz="+00:00")
"""Milliseconds since the epoch, UTC (a row holds the integer)."""
DURATION = pa.duration("ms")
U32_LIST = pa.list_(pa.uint32())
TEXT_LIST = pa.list_(pa.large_string())


@dataclass(frozen=True, slots=True)
class ScanContext:
    """What a scan needs besides the tables."""

    partition_count: int
    now_ms: int
    """The wall clock at the query (tells running from backing off)."""
    view: MetadataView | None = None
    """The metadata (services' kinds, for a call's target in ``sys_journal``)."""


@dataclass(frozen=True, slots=True)
class PartitionedTable:
    """A table whose rows live in the partition tables."""

    name: str
    schema: pa.Schema
    rows: Callable[[PartitionTables, Constraints, ScanContext], Iterable[Row]]
    """The rows of one partition that can satisfy the constraints (a superset is fine)."""
    pushdown: frozenset[str]
    """The columns whose constraints :attr:`rows` and :attr:`partitions` use."""
    partitions: Callable[[Constraints, int], frozenset[int] | None]
    """The partitions (of P) holding rows that can satisfy the constraints; ``None``: all."""


@dataclass(frozen=True, slots=True)
class MetadataTable:
    """A table whose rows come from the metadata view (the same in every process)."""

    name: str
    schema: pa.Schema
    rows: Callable[[MetadataView], Iterable[Row]]


TableSpec = PartitionedTable | MetadataTable


def to_table(schema: pa.Schema, rows: Iterable[Row]) -> pa.Table:
    """Rows as an Arrow table of ``schema`` (missing columns null)."""
    return pa.Table.from_pylist(list(rows), schema=schema)
