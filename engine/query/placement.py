"""Which partitions can hold the rows a scan's constraints allow.

A constrained ``partition_key`` names its partitions directly; an invocation id carries
its partition key; a virtual object or workflow instance ``(service, key)`` is placed
by its key (:func:`engine.wal.partitioning.partition_key_for_key`). Several of them
intersect. Anything else is every partition.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.ids import IdParseError, InvocationId
from engine.query.pushdown import Constraints
from engine.wal.partitioning import partition_for, partition_key_for_key

__all__ = ["Placement", "invocation_ids", "placement"]

Placement = Callable[[Constraints, int], frozenset[int] | None]


def invocation_ids(constraints: Constraints, column: str) -> list[InvocationId] | None:
    """The invocation ids ``column`` is limited to (unparsable ones dropped: no row has
    them), or ``None`` when it is not constrained."""
    texts = constraints.strings(column)
    if texts is None:
        return None
    found = []
    for text in texts:
        try:
            found.append(InvocationId.parse(text))
        except IdParseError:
            continue
    return found


def placement(
    *, partition_key: str | None = "partition_key", invocation_id: str | None = None,
    object_service: str | None = None, object_key: str | None = None,
) -> Placement:
    """A :data:`Placement` from the named columns (each optional)."""

    def partitions(constraints: Constraints, partition_count: int) -> frozenset[int] | None:
        result: frozenset[int] | None = None

        def narrow(found: frozenset[int]) -> None:
            nonlocal result
            result = found if result is None else result & found

        if partition_key is not None:
            keys = constraints.ints(partition_key)
            if keys is not None:
                narrow(frozenset(partition_for(k, partition_count) for k in keys if 0 <= k < 2**64))
        if invocation_id is not None:
            ids = invocation_ids(constraints, invocation_id)
            if ids is not None:
                narrow(frozenset(partition_for(i.partition_key, partition_count) for i in ids))
        if object_service is not None and object_key is not None:
            keys_text = constraints.strings(object_key)
            if keys_text is not None:
                # The key alone places the instance, whatever the service.
                narrow(frozenset(partition_for(partition_key_for_key("", k), partition_count) for k in keys_text))
        return result

    return partitions
