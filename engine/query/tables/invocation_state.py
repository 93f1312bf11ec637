"""``sys_invocation_state``: the attempts of invocations the invoker works on.

Restate fills it from its invoker's in-memory status (so only for invocations with an
attempt running or backing off); logstrate derives it from the status row of each
``invoked`` or ``paused`` invocation: ``retry_count`` is the failed attempts so far,
``in_flight`` is false while a retry waits (``next_retry_at`` in the future) and for a
paused invocation, and the last failure is ``[code] message`` with the command it was
at. ``last_start_at``, ``last_attempt_server``, ``last_failure_error_code`` (Restate's
documented error codes) and the ``*_entry_*`` columns (protocol v3 and older) are null.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pyarrow as pa

from engine.admin.invocation_render import command_type_name
from engine.ids import InvocationId
from engine.query.placement import placement
from engine.query.pushdown import Constraints
from engine.query.spec import BOOL, TEXT, TIMESTAMP, U64, PartitionedTable, Row, ScanContext
from engine.query.tables.invocation_status import status_rows
from engine.storage.invocation_status import InvocationStatus, StatusKind
from engine.storage.tables import PartitionTables

__all__ = ["STATE_COLUMNS", "TABLE", "state_columns"]

STATE_COLUMNS: Final = [
    ("in_flight", BOOL), ("retry_count", U64), ("last_start_at", TIMESTAMP), ("last_attempt_deployment_id", TEXT),
    ("last_attempt_server", TEXT), ("next_retry_at", TIMESTAMP), ("last_failure", TEXT),
    ("last_failure_error_code", TEXT), ("last_failure_related_command_index", U64),
    ("last_failure_related_command_name", TEXT), ("last_failure_related_command_type", TEXT),
    ("last_failure_related_entry_index", U64), ("last_failure_related_entry_name", TEXT),
    ("last_failure_related_entry_type", TEXT), ("last_awaiting_on_future_json", TEXT),
]

SCHEMA: Final = pa.schema([("partition_key", U64), ("id", TEXT), *STATE_COLUMNS])

_TRACKED: Final = frozenset({StatusKind.INVOKED, StatusKind.PAUSED})


def state_columns(invocation_id: InvocationId, status: InvocationStatus, now_ms: int) -> Row | None:
    """The ``sys_invocation_state`` columns of one invocation; ``None`` when no attempt
    of it is running or waiting to be retried."""
    if status.kind not in _TRACKED:
        return None
    failure = status.last_failure
    backing_off = failure is not None and failure.retry_at_ms > now_ms
    row: Row = {
        "partition_key": invocation_id.partition_key,
        "id": str(invocation_id),
        "in_flight": status.kind is StatusKind.INVOKED and not backing_off,
        "retry_count": status.attempt,
        "last_attempt_deployment_id": None if status.deployment_id is None else str(status.deployment_id),
    }
    if failure is not None:
        row["last_failure"] = f"[{failure.code}] {failure.message}"
        if backing_off and status.kind is StatusKind.INVOKED:
            row["next_retry_at"] = failure.retry_at_ms
        row["last_failure_related_command_index"] = failure.related_command_index
        row["last_failure_related_command_name"] = failure.related_command_name or None
        if failure.related_command_type is not None:
            row["last_failure_related_command_type"] = command_type_name(failure.related_command_type)
    return row


def _rows(tables: PartitionTables, constraints: Constraints, context: ScanContext) -> Iterable[Row]:
    for invocation_id, status in status_rows(tables, constraints):
        row = state_columns(invocation_id, status, context.now_ms)
        if row is not None:
            yield row


TABLE: Final = PartitionedTable(
    name="sys_invocation_state",
    schema=SCHEMA,
    rows=_rows,
    pushdown=frozenset({"partition_key", "id"}),
    partitions=placement(invocation_id="id"),
)
