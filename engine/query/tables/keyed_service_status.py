"""``sys_keyed_service_status``: which invocation holds each locked virtual object /
workflow key (``invocation_id``). Pushdown as for ``state``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pyarrow as pa

from engine.query.objects import instance_rows
from engine.query.placement import placement
from engine.query.pushdown import Constraints
from engine.query.spec import TEXT, U64, PartitionedTable, Row, ScanContext
from engine.storage.tables import PartitionTables

__all__ = ["TABLE"]

SCHEMA: Final = pa.schema([
    ("partition_key", U64), ("service_name", TEXT), ("service_key", TEXT), ("invocation_id", TEXT),
])


def _rows(tables: PartitionTables, constraints: Constraints, context: ScanContext) -> Iterable[Row]:
    for row, holder in instance_rows(tables, constraints, tables.locks.scan_all()):
        yield {**row, "invocation_id": str(holder)}


TABLE: Final = PartitionedTable(
    name="sys_keyed_service_status",
    schema=SCHEMA,
    rows=_rows,
    pushdown=frozenset({"partition_key", "service_name", "service_key"}),
    partitions=placement(object_service="service_name", object_key="service_key"),
)
