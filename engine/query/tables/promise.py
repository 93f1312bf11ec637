"""``sys_promise``: workflow promises, one row per (workflow, key, promise name).

``completed`` says whether it has a result; a value is ``completion_success_value``
(bytes) and ``completion_success_value_utf8`` (the same as text when valid UTF-8), a
failure ``completion_failure`` as ``[code] message``. Pushdown as for ``state``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pyarrow as pa

from engine.query.objects import instance_rows
from engine.query.placement import placement
from engine.query.pushdown import Constraints
from engine.query.spec import BINARY, BOOL, TEXT, U64, PartitionedTable, Row, ScanContext
from engine.query.tables.state import text_or_none
from engine.storage.tables import PartitionTables
from engine.wal import records as r

__all__ = ["TABLE"]

SCHEMA: Final = pa.schema([
    ("partition_key", U64), ("scope", TEXT), ("service_name", TEXT), ("service_key", TEXT), ("key", TEXT),
    ("completed", BOOL), ("completion_success_value", BINARY), ("completion_success_value_utf8", TEXT),
    ("completion_failure", TEXT),
])


def _rows(tables: PartitionTables, constraints: Constraints, context: ScanContext) -> Iterable[Row]:
    entries = ((component, (name, promise)) for component, name, promise in tables.promises.scan_all())
    for base, (name, promise) in instance_rows(tables, constraints, entries):
        row: Row = {**base, "key": name, "completed": promise.result is not None}
        if isinstance(promise.result, r.Value):
            row["completion_success_value"] = promise.result.content
            row["completion_success_value_utf8"] = text_or_none(promise.result.content)
        elif isinstance(promise.result, r.Failure):
            row["completion_failure"] = f"[{promise.result.code}] {promise.result.message}"
        yield row


TABLE: Final = PartitionedTable(
    name="sys_promise",
    schema=SCHEMA,
    rows=_rows,
    pushdown=frozenset({"partition_key", "service_name", "service_key"}),
    partitions=placement(object_service="service_name", object_key="service_key"),
)
