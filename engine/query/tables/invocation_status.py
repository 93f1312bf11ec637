"""``sys_invocation_status``: one row per invocation a partition knows (its status row).

Restate's columns and encodings: ``status`` is the stored kind (``scheduled``,
``inboxed``, ``invoked``, ``suspended``, ``paused``, ``completed``), ``target`` is
``service[/key]/handler``, ``target_service_ty`` ``service|virtual_object|workflow``,
``completion_failure`` ``[code] message``, retentions are durations. Columns logstrate
has no data for (``vqueue_id``, ``scope``, ``limit_key``, ``trace_id``,
``created_using_restate_version``, ``running_at`` ...) are null; ``invoked_by_target`` and
``invoked_by_service_name`` are filled after the scan (:mod:`engine.query.callers`).

Pushdown: ``id`` reads the named status rows only (point reads); ``partition_key``,
``id`` and ``target_service_key`` pick the partitions; ``target_service_name`` filters
rows while scanning.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Final

import pyarrow as pa

from engine.admin.invocation_render import invoked_by, target_text
from engine.ids import InvocationId
from engine.query.placement import invocation_ids, placement
from engine.query.pushdown import Constraints
from engine.query.spec import DURATION, TEXT, TIMESTAMP, U32, U32_LIST, U64, PartitionedTable, Row, ScanContext
from engine.storage.invocation_status import InvocationStatus, StatusKind
from engine.storage.tables import PartitionTables
from engine.wal import records as r

__all__ = ["STATUS_COLUMNS", "TABLE", "status_columns", "status_rows"]

STATUS_COLUMNS: Final = [
    ("id", TEXT), ("vqueue_id", TEXT), ("status", TEXT), ("completion_result", TEXT), ("completion_failure", TEXT),
    ("target", TEXT), ("target_service_name", TEXT), ("target_service_key", TEXT), ("target_handler_name", TEXT),
    ("target_service_ty", TEXT), ("scope", TEXT), ("limit_key", TEXT), ("idempotency_key", TEXT),
    ("invoked_by", TEXT), ("invoked_by_id", TEXT), ("invoked_by_subscription_id", TEXT),
    ("invoked_by_service_name", TEXT), ("invoked_by_target", TEXT), ("restarted_from", TEXT),
    ("pinned_deployment_id", TEXT), ("pinned_service_protocol_version", U32), ("trace_id", TEXT),
    ("journal_size", U32), ("journal_commands_size", U32), ("created_at", TIMESTAMP),
    ("created_using_restate_version", TEXT), ("modified_at", TIMESTAMP), ("inboxed_at", TIMESTAMP),
    ("scheduled_at", TIMESTAMP), ("scheduled_start_at", TIMESTAMP), ("running_at", TIMESTAMP),
    ("completed_at", TIMESTAMP), ("completion_retention", DURATION), ("journal_retention", DURATION),
    ("suspended_waiting_for_completions", U32_LIST), ("suspended_waiting_for_signals", U32_LIST),
    ("suspended_waiting_future_json", TEXT),
]

SCHEMA: Final = pa.schema([("partition_key", U64), *STATUS_COLUMNS])

_SERVICE_TY: Final = {
    r.ServiceKind.SERVICE: "service",
    r.ServiceKind.VIRTUAL_OBJECT: "virtual_object",
    r.ServiceKind.WORKFLOW: "workflow",
}


def status_rows(
    tables: PartitionTables, constraints: Constraints
) -> Iterator[tuple[InvocationId, InvocationStatus]]:
    """The status rows of one partition the constraints allow (``id``: point reads)."""
    ids = invocation_ids(constraints, "id")
    if ids is not None:
        for invocation_id in sorted(ids, key=str):
            status = tables.status.get(invocation_id)
            if status is not None:
                yield invocation_id, status
        return
    services = constraints.strings("target_service_name")
    for invocation_id, status in tables.status.scan():
        if services is None or status.target.service in services:
            yield invocation_id, status


def failure_text(failure: r.Failure) -> str:
    """Restate's rendering of a failure in SQL: ``[code] message``."""
    return f"[{failure.code}] {failure.message}"


def _waiting(status: InvocationStatus) -> Row:
    completions = [n.id for n in status.waiting_for if isinstance(n, r.CompletionId)]
    signals = [n.index for n in status.waiting_for if isinstance(n, r.SignalIndex)]
    singles: list[dict[str, object]] = [{"Single": {"CompletionId": c}} for c in completions]
    singles += [{"Single": {"SignalIndex": s}} for s in signals]
    singles += [{"Single": {"SignalName": n.name}} for n in status.waiting_for if isinstance(n, r.SignalName)]
    return {
        "suspended_waiting_for_completions": completions,
        "suspended_waiting_for_signals": signals,
        "suspended_waiting_future_json": json.dumps({"Unknown": singles}, separators=(",", ":")),
    }


def status_columns(invocation_id: InvocationId, status: InvocationStatus) -> Row:
    """The ``sys_invocation_status`` columns of one invocation."""
    target = status.target
    kind = status.kind
    row: Row = {
        "partition_key": invocation_id.partition_key,
        "id": str(invocation_id),
        "status": kind.value,
        "target": target_text(target),
        "target_service_name": target.service,
        "target_service_key": target.key,
        "target_handler_name": target.handler,
        "target_service_ty": _SERVICE_TY[target.service_kind],
        "idempotency_key": status.idempotency_key,
        **invoked_by(status, unknown="restate"),
        "pinned_deployment_id": None if status.deployment_id is None else str(status.deployment_id),
        "pinned_service_protocol_version": status.protocol_version,
        "created_at": status.created_at_ms,
        "modified_at": status.modified_at_ms,
        "scheduled_start_at": status.execute_at_ms,
        "completion_retention": status.completion_retention_ms,
        "journal_retention": status.journal_retention_ms,
    }
    if kind not in (StatusKind.SCHEDULED, StatusKind.INBOXED):
        row["journal_size"] = status.journal_length
        row["journal_commands_size"] = status.commands
    if kind is StatusKind.SCHEDULED:
        row["scheduled_at"] = status.created_at_ms
    elif kind is StatusKind.INBOXED:
        row["inboxed_at"] = status.modified_at_ms
    elif kind is StatusKind.SUSPENDED:
        row.update(_waiting(status))
    elif kind is StatusKind.COMPLETED:
        row["completed_at"] = status.modified_at_ms
        if isinstance(status.result, r.Failure):
            row["completion_result"] = "failure"
            row["completion_failure"] = failure_text(status.result)
        elif status.result is not None:
            row["completion_result"] = "success"
    return row


def _rows(tables: PartitionTables, constraints: Constraints, context: ScanContext) -> Iterable[Row]:
    return (status_columns(i, s) for i, s in status_rows(tables, constraints))


TABLE: Final = PartitionedTable(
    name="sys_invocation_status",
    schema=SCHEMA,
    rows=_rows,
    pushdown=frozenset({"partition_key", "id", "target_service_name", "target_service_key"}),
    partitions=placement(invocation_id="id", object_service="target_service_name", object_key="target_service_key"),
)
