"""``sys_deployment``: registered deployments (from the metadata view, the same in
every process). ``ty`` is ``http``; ``endpoint`` the URI with a trailing slash, as
Restate prints it; ``services`` the names of the services it serves."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pyarrow as pa

from engine.metadata.view import MetadataView
from engine.query.spec import TEXT, TEXT_LIST, TIMESTAMP, U32, MetadataTable, Row

__all__ = ["TABLE"]

SCHEMA: Final = pa.schema([
    ("id", TEXT), ("ty", TEXT), ("endpoint", TEXT), ("created_at", TIMESTAMP),
    ("min_service_protocol_version", U32), ("max_service_protocol_version", U32), ("services", TEXT_LIST),
])


def _rows(view: MetadataView) -> Iterable[Row]:
    for deployment in view.list_deployments():
        yield {
            "id": str(deployment.id),
            "ty": "http",
            "endpoint": deployment.uri if deployment.uri.endswith("/") else deployment.uri + "/",
            "created_at": int(deployment.created_at.timestamp() * 1000),
            "min_service_protocol_version": deployment.min_protocol_version,
            "max_service_protocol_version": deployment.max_protocol_version,
            "services": [service.name for service in deployment.services],
        }


TABLE: Final = MetadataTable(name="sys_deployment", schema=SCHEMA, rows=_rows)
