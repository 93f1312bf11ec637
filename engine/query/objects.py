"""Naming the virtual object / workflow instance a table row belongs to.

Tables keyed by instance store its ``(service, key)`` inline unless they are long, when
the key holds a digest (:func:`engine.storage.keys.object_component`). For those, the
names are looked up among the targets of the partition's invocations; an instance with
no invocation left shows null names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from engine.query.pushdown import Constraints
from engine.query.spec import Row
from engine.storage.keys import ObjectComponent, object_component
from engine.storage.tables import PartitionTables
from engine.wal.partitioning import partition_key_for_key

__all__ = ["ObjectNames", "instance_rows"]

T = TypeVar("T")


class ObjectNames:
    """The names of the instances of one partition (one read transaction)."""

    def __init__(self, tables: PartitionTables) -> None:
        self._tables = tables
        self._hashed: dict[bytes, tuple[str, str]] | None = None

    def names(self, component: ObjectComponent) -> tuple[str | None, str | None]:
        """``(service, key)``, or ``(None, None)`` when it cannot be told."""
        if component.service is not None:
            return component.service, component.key
        if self._hashed is None:
            self._hashed = {}
            for _, status in self._tables.status.scan():
                target = status.target
                if target.key is not None:
                    self._hashed[object_component(target.service, target.key)] = (target.service, target.key)
        return self._hashed.get(component.raw, (None, None))

    @staticmethod
    def partition_key(service: str | None, key: str | None) -> int | None:
        """The partition key of an instance (its key alone places it)."""
        return None if key is None else partition_key_for_key(service or "", key)


def instance_rows(
    tables: PartitionTables, constraints: Constraints, entries: Iterable[tuple[ObjectComponent, T]]
) -> Iterator[tuple[Row, T]]:
    """Each entry the ``service_name``/``service_key`` constraints allow, with the row's
    ``partition_key``, ``service_name`` and ``service_key`` columns."""
    names = ObjectNames(tables)
    for component, item in entries:
        service, key = names.names(component)
        if constraints.allows("service_name", service) and constraints.allows("service_key", key):
            yield {"partition_key": names.partition_key(service, key), "service_name": service, "service_key": key}, item
