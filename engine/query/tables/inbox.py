"""``sys_inbox``: invocations waiting for their virtual object / workflow key's lock.

One row per waiting invocation: the instance, the invocation ``id``, its place in the
queue (``sequence_number``) and ``created_at`` (the invocation's creation). Pushdown as
for ``state``; ``id`` also picks the partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pyarrow as pa

from engine.query.objects import instance_rows
from engine.query.placement import placement
from engine.query.pushdown import Constraints
from engine.query.spec import TEXT, TIMESTAMP, U64, PartitionedTable, Row, ScanContext
from engine.storage.tables import PartitionTables

__all__ = ["TABLE"]

SCHEMA: Final = pa.schema([
    ("partition_key", U64), ("service_name", TEXT), ("service_key", TEXT), ("id", TEXT),
    ("sequence_number", U64), ("created_at", TIMESTAMP),
])


def _rows(tables: PartitionTables, constraints: Constraints, context: ScanContext) -> Iterable[Row]:
    for row, entry in instance_rows(tables, constraints, tables.inbox.scan_all()):
        status = tables.status.get(entry.invocation_id)
        yield {
            **row,
            "id": str(entry.invocation_id),
            "sequence_number": entry.sequence,
            "created_at": None if status is None else status.created_at_ms,
        }


TABLE: Final = PartitionedTable(
    name="sys_inbox",
    schema=SCHEMA,
    rows=_rows,
    pushdown=frozenset({"partition_key", "service_name", "service_key", "id"}),
    partitions=placement(invocation_id="id", object_service="service_name", object_key="service_key"),
)
