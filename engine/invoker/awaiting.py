"""What a suspended invocation waits for: the leaves of the SDK's await tree.

Protocol v5/v6 suspensions list the awaited completion ids, signal indexes and signal
names flat; v7 describes the await point as a tree of futures combined with
FIRST_COMPLETED, ALL_COMPLETED, ... (``SuspensionMessage.awaiting_on``, also sent ahead
as ``AwaitingOnMessage``). The WAL's ``InvocationSuspended`` keeps a flat set: the
invocation is resumed as soon as *any* leaf gets a notification. For trees that need
more than one leaf (ALL_COMPLETED) that can resume early; the SDK then replays, sees the
await point still unresolved and suspends again, so early is safe, only slower.
"""

from __future__ import annotations

from restate_protocol import pb
from engine.wal.records import CompletionId, NotificationId, SignalIndex, SignalName

__all__ = ["awaited_notifications"]


def awaited_notifications(source: pb.Future | pb.SuspensionMessage) -> tuple[NotificationId, ...]:
    """Every notification id in ``source``, depth first, without duplicates.

    ``source`` is a v7 future tree or the flat lists of a v5/v6 suspension (the
    ``awaiting_on`` field of a v7 suspension is not looked at here; pass it directly).
    """
    seen: dict[NotificationId, None] = {}
    # An explicit stack rather than recursion: the tree's depth is the peer's choice.
    stack: list[pb.Future | pb.SuspensionMessage] = [source]
    while stack:
        node = stack.pop()
        for completion_id in node.waiting_completions:
            seen.setdefault(CompletionId(completion_id), None)
        for index in node.waiting_signals:
            seen.setdefault(SignalIndex(index), None)
        for name in node.waiting_named_signals:
            seen.setdefault(SignalName(name), None)
        if isinstance(node, pb.Future):
            # Reversed so children are visited in their declared order.
            stack.extend(reversed(node.nested_futures))
    return tuple(seen)
