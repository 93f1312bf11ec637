"""Running one SQL query: plan on empty tables, load the rows the plan can need, execute.

1. Plan: every table is registered with its schema and no rows (pyarrow datasets, so
   DataFusion pushes filters into the scans); the optimized plan tells which tables are
   scanned and with which equality constraints (:mod:`engine.query.pushdown`). A query
   DataFusion refuses is a :class:`QuerySyntaxError`.
2. Load: for each scanned partitioned table, the partitions its constraints allow
   (:mod:`engine.query.placement`) are read, each through its table's ``rows`` with the
   constraints (point reads by id where possible). Several scans of one table are read
   once with the constraints they share. Metadata tables are read from the view.
3. Execute: the same SQL over the loaded rows; DataFusion applies every predicate.

Nothing here runs on the invocation path: it reads committed LMDB in short read
transactions, off the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as ds
from datafusion import SessionConfig, SessionContext

from engine.metadata.view import MetadataView
from engine.query.catalog import METADATA_TABLES, PARTITIONED_TABLES, TABLES
from engine.query.errors import QuerySyntaxError
from engine.query.pushdown import ANY, Constraints, scans_of
from engine.query.spec import PartitionedTable, Row, ScanContext, to_table
from engine.storage.tables import PartitionTables

__all__ = ["QueryResult", "ScanPlan", "execute", "plan", "rows_of"]

_PUSHDOWN = {name: spec.pushdown for name, spec in PARTITIONED_TABLES.items()}


def _context() -> SessionContext:
    config = SessionConfig().with_information_schema(True).with_default_catalog_and_schema("restate", "public")
    return SessionContext(config)


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """One partitioned table to load: the constraints shared by all its scans."""

    table: str
    constraints: Constraints

    def partitions(self, partition_count: int) -> list[int]:
        found = PARTITIONED_TABLES[self.table].partitions(self.constraints, partition_count)
        return list(range(partition_count)) if found is None else sorted(found)


@dataclass(frozen=True, slots=True)
class QueryResult:
    schema: pa.Schema
    batches: list[pa.RecordBatch]


def _merge(scans: Sequence[Constraints]) -> Constraints:
    """Constraints every scan satisfies: the columns all constrain, values united."""
    if not scans or any(not s.values for s in scans):
        return ANY
    columns = set(scans[0].values)
    for scan in scans[1:]:
        columns &= set(scan.values)
    return Constraints({c: frozenset().union(*(s.values[c] for s in scans)) for c in columns})


def plan(sql: str) -> list[ScanPlan]:
    """The partitioned tables ``sql`` scans and their constraints."""
    ctx = _context()
    for spec in TABLES.values():
        ctx.register_dataset(spec.name, ds.dataset(spec.schema.empty_table()))
    try:
        logical = ctx.sql(sql).optimized_logical_plan()
    except Exception as exc:  # DataFusion raises plain Exceptions carrying its message
        raise QuerySyntaxError(str(exc)) from None
    return [ScanPlan(table, _merge(scans)) for table, scans in scans_of(logical, _PUSHDOWN).items()]


def rows_of(spec: PartitionedTable, tables: PartitionTables, constraints: Constraints, partition_count: int,
            view: MetadataView | None = None) -> list[Row]:
    """The rows of one partition for ``constraints`` (copied out of the transaction)."""
    context = ScanContext(partition_count=partition_count, now_ms=int(time.time() * 1000), view=view)
    return list(spec.rows(tables, constraints, context))


def execute(sql: str, loaded: Mapping[str, Iterable[pa.Table]], view: MetadataView) -> QueryResult:
    """Run ``sql`` over ``loaded`` partitioned tables (absent ones empty) and the view."""
    ctx = _context()
    for name, spec in PARTITIONED_TABLES.items():
        parts = [t for t in loaded.get(name, ()) if t.num_rows]
        _register(ctx, name, spec.schema, [b for t in parts for b in t.to_batches()])
    for name, meta in METADATA_TABLES.items():
        _register(ctx, name, meta.schema, to_table(meta.schema, meta.rows(view)).to_batches())
    try:
        frame = ctx.sql(sql)
        batches = frame.collect()
    except Exception as exc:
        raise QuerySyntaxError(str(exc)) from None
    schema = batches[0].schema if batches else frame.schema()
    return QueryResult(schema, batches)


def _register(ctx: SessionContext, name: str, schema: pa.Schema, batches: list[pa.RecordBatch]) -> None:
    """``batches`` as table ``name``, in memory. Never without a batch: a scan of no
    partitions fails DataFusion's plan check under a sort with a limit (``SortExec:
    TopK ... does not satisfy distribution requirements``), as ``describe`` of a
    completed invocation without a journal asks."""
    ctx.register_record_batches(name, [batches or [pa.RecordBatch.from_pylist([], schema=schema)]])


RowsReader = Callable[[int, Callable[[PartitionTables], list[Row]]], list[Row]]
