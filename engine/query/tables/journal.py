"""``sys_journal``: the journal entries of invocations, one row per entry.

Restate's columns for journal v2 (protocol v4 and later): ``index``, ``entry_type``
(``Command: Run``, ``Notification: Call``...), ``name`` (a command's name, ``""`` when
it has none; null for notifications), ``version`` 2, ``entry_json`` / ``entry_lite_json``
(:mod:`engine.query.journal_json`), ``raw`` (logstrate: the protocol message body) and
``raw_length``. ``completed``, ``invoked_id``, ``invoked_target``, ``sleep_wakeup_at``
and ``promise_name`` belong to journal v1 and are null, as on restate-server;
``appended_at`` is when the entry was applied (null for entries stored before logstrate
recorded it).

Pushdown: ``id`` reads the named journals only; ``partition_key`` and ``id`` pick the
partitions. A completed invocation keeps its journal only with a journal retention.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

import pyarrow as pa

from engine.ids import InvocationId
from engine.query.journal_json import entry_json, entry_name, entry_raw, entry_type
from engine.query.placement import invocation_ids, placement
from engine.query.pushdown import Constraints
from engine.query.spec import BINARY, BOOL, TEXT, TIMESTAMP, U32, U64, PartitionedTable, Row, ScanContext
from engine.storage.tables import PartitionTables
from restate_protocol import JournalEntry

__all__ = ["TABLE"]

SCHEMA: Final = pa.schema([
    ("partition_key", U64), ("id", TEXT), ("index", U32), ("entry_type", TEXT), ("name", TEXT),
    ("completed", BOOL), ("invoked_id", TEXT), ("invoked_target", TEXT), ("sleep_wakeup_at", TIMESTAMP),
    ("promise_name", TEXT), ("raw", BINARY), ("raw_length", U64), ("version", U32), ("entry_json", TEXT),
    ("entry_lite_json", TEXT), ("appended_at", TIMESTAMP),
])


def _entries(
    tables: PartitionTables, constraints: Constraints
) -> Iterator[tuple[InvocationId, int, JournalEntry, int | None]]:
    ids = invocation_ids(constraints, "id")
    if ids is None:
        yield from tables.journal.timed_scan()
        return
    for invocation_id in sorted(ids, key=str):
        for index, entry, appended_at in tables.journal.timed_entries(invocation_id):
            yield invocation_id, index, entry, appended_at


def _rows(tables: PartitionTables, constraints: Constraints, context: ScanContext) -> Iterable[Row]:
    for invocation_id, index, entry, appended_at in _entries(tables, constraints):
        full, lite = entry_json(entry, invocation_id, index, context.view)
        raw = entry_raw(entry)
        yield {
            "partition_key": invocation_id.partition_key,
            "id": str(invocation_id),
            "index": index,
            "entry_type": entry_type(entry.message_type),
            "name": entry_name(entry),
            "raw": raw,
            "raw_length": len(raw),
            "version": 2,
            "entry_json": full,
            "entry_lite_json": lite,
            "appended_at": appended_at,
        }


TABLE: Final = PartitionedTable(
    name="sys_journal",
    schema=SCHEMA,
    rows=_rows,
    pushdown=frozenset({"partition_key", "id"}),
    partitions=placement(invocation_id="id"),
)
