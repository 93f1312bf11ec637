"""Every system table ``POST /query`` serves, by name."""

from __future__ import annotations

from typing import Final

from engine.query.spec import MetadataTable, PartitionedTable, TableSpec
from engine.query.tables import (
    deployment,
    inbox,
    invocation,
    invocation_state,
    invocation_status,
    journal,
    keyed_service_status,
    promise,
    service,
    state,
)

__all__ = ["METADATA_TABLES", "PARTITIONED_TABLES", "TABLES"]

PARTITIONED_TABLES: Final[dict[str, PartitionedTable]] = {
    t.name: t
    for t in (
        invocation.TABLE, invocation_status.TABLE, invocation_state.TABLE, journal.TABLE, state.TABLE,
        inbox.TABLE, keyed_service_status.TABLE, promise.TABLE,
    )
}
METADATA_TABLES: Final[dict[str, MetadataTable]] = {t.name: t for t in (deployment.TABLE, service.TABLE)}
TABLES: Final[dict[str, TableSpec]] = {**PARTITIONED_TABLES, **METADATA_TABLES}
