"""``sys_invocation``: Restate's view joining ``sys_invocation_status`` and
``sys_invocation_state``, built here from the one status row both come from.

``status`` is the view's: ``inboxed`` shows as ``pending``, ``invoked`` as ``running``
(an attempt in flight), ``backing-off`` (waiting to retry) or ``ready``; the others as
stored. Like Restate's view it has no ``partition_key`` column.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pyarrow as pa

from engine.query.placement import placement
from engine.query.pushdown import Constraints
from engine.query.spec import TEXT, PartitionedTable, Row, ScanContext
from engine.query.tables.invocation_state import STATE_COLUMNS, state_columns
from engine.query.tables.invocation_status import STATUS_COLUMNS, status_columns, status_rows
from engine.storage.tables import PartitionTables

__all__ = ["TABLE", "view_status"]

_LEADING: Final = [c for c in STATUS_COLUMNS if c[0] not in ("status", "completion_result", "completion_failure")]
_FROM_STATE: Final = [c for c in STATE_COLUMNS if c[0] != "in_flight"]

SCHEMA: Final = pa.schema([
    *_LEADING, *_FROM_STATE,
    pa.field("status", TEXT, nullable=False), ("completion_result", TEXT), ("completion_failure", TEXT),
])


def view_status(stored: str, state: Row | None) -> str:
    """The view's status from the stored one and the attempt state."""
    if stored == "inboxed":
        return "pending"
    if stored != "invoked":
        return stored
    if state is not None and state.get("in_flight"):
        return "running"
    if state is not None and (state.get("retry_count") or 0) > 0:
        return "backing-off"
    return "ready"


def _rows(tables: PartitionTables, constraints: Constraints, context: ScanContext) -> Iterable[Row]:
    for invocation_id, status in status_rows(tables, constraints):
        row = status_columns(invocation_id, status)
        del row["partition_key"]
        state = state_columns(invocation_id, status, context.now_ms)
        if state is not None:
            row.update({k: v for k, v in state.items() if k not in ("partition_key", "id", "in_flight")})
        row["status"] = view_status(status.kind.value, state)
        yield row


TABLE: Final = PartitionedTable(
    name="sys_invocation",
    schema=SCHEMA,
    rows=_rows,
    pushdown=frozenset({"id", "target_service_name", "target_service_key"}),
    partitions=placement(partition_key=None, invocation_id="id", object_service="target_service_name",
                         object_key="target_service_key"),
)
