"""``sys_service``: the latest revision of every registered service (metadata view).
``ty`` is ``service``, ``virtual_object`` or ``workflow``; ``public`` whether the
ingress serves it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pyarrow as pa

from engine.metadata.view import MetadataView
from engine.query.spec import BOOL, TEXT, U64, MetadataTable, Row

__all__ = ["TABLE"]

SCHEMA: Final = pa.schema([
    ("name", TEXT), ("revision", U64), ("public", BOOL), ("ty", TEXT), ("deployment_id", TEXT),
])


def _rows(view: MetadataView) -> Iterable[Row]:
    for service in view.list_services():
        yield {
            "name": service.name,
            "revision": service.revision,
            "public": service.public,
            "ty": service.ty.value.lower(),
            "deployment_id": str(service.deployment_id),
        }


TABLE: Final = MetadataTable(name="sys_service", schema=SCHEMA, rows=_rows)
