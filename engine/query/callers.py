"""``invoked_by_target`` and ``invoked_by_service_name``: the caller, named by its target.

A status row keeps only the caller's id (``InvocationSource``); Restate keeps the caller's
target with it, and the CLI shows it (``Invoked by: QCaller/call inv_...``). After the
rows are loaded, the callers' status rows are read by id (point reads, in whichever
partition and process holds them, :func:`engine.query.fanout.load`) and the two columns
filled in. Only for queries that can show them (they name an ``invoked_by`` column or
select ``*``); a caller whose status is gone (purged) stays unnamed.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from engine.query.engine import ScanPlan
from engine.query.pushdown import Constraints

__all__ = ["fill_callers", "needs_callers"]

_TABLES: Final = ("sys_invocation", "sys_invocation_status")

Loader = Callable[[Sequence[ScanPlan]], Awaitable[tuple[dict[str, list[pa.Table]], list[int]]]]


_STAR: Final = re.compile(r"(?<!\()\s*\*")
"""A ``*`` that may select every column (``SELECT *``, ``t.*``), not ``count(*)``."""


def needs_callers(sql: str) -> bool:
    """Whether ``sql`` may show the caller columns (a superset is fine: it costs reads)."""
    return "invoked_by" in sql.lower() or _STAR.search(sql.replace("(*)", "()")) is not None


async def fill_callers(loaded: dict[str, list[pa.Table]], load: Loader) -> None:
    """Fill the caller columns of the loaded invocation rows in place."""
    wanted: set[str] = set()
    for name in _TABLES:
        for table in loaded.get(name, []):
            wanted.update(i for i in table.column("invoked_by_id").to_pylist() if i is not None)
    if not wanted:
        return
    found, _missing = await load([ScanPlan("sys_invocation_status", Constraints({"id": frozenset(wanted)}))])
    targets: dict[str, tuple[str, str]] = {}
    for table in found.get("sys_invocation_status", []):
        for row in table.select(["id", "target", "target_service_name"]).to_pylist():
            targets[row["id"]] = (row["target"], row["target_service_name"])
    if not targets:
        return
    for name in _TABLES:
        loaded[name] = [_filled(table, targets) for table in loaded.get(name, [])]


def _filled(table: pa.Table, targets: dict[str, tuple[str, str]]) -> pa.Table:
    callers = table.column("invoked_by_id").to_pylist()
    for column, pick in (("invoked_by_target", 0), ("invoked_by_service_name", 1)):
        index = table.schema.get_field_index(column)
        old = table.column(column)
        new = pa.array([targets[c][pick] if c in targets else None for c in callers], type=old.type)
        table = table.set_column(index, table.schema.field(index), pc.coalesce(old, new))
    return table
