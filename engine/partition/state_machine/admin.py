"""Records from the admin API and ingress that act on existing things.

``AttachInvocation`` adds a response sink to an invocation (answered at once when it
completed already). ``PatchState`` replaces an object's whole state, optionally only
if the state still has the version the patch was based on. ``PurgeInvocation`` lives
with the rest of the lifecycle (:mod:`.lifecycle`).
"""

from __future__ import annotations

from engine.partition.state_machine.context import ApplyContext
from engine.partition.state_machine.invoke import attach_sink
from engine.wal.records import AttachInvocation, PatchState

__all__ = ["on_attach", "on_patch_state"]


def on_attach(ctx: ApplyContext, record: AttachInvocation) -> None:
    """Apply an ``AttachInvocation`` record."""
    status = ctx.tables.status.get(record.invocation_id)
    if status is None:
        # Ingress resolves attach targets before appending and reports unknown ids
        # itself; a purged invocation can still race with it.
        ctx.log_for(record.invocation_id).info("attach to an unknown invocation; ignored")
        return
    attach_sink(ctx, record.invocation_id, status, record.sink)


def on_patch_state(ctx: ApplyContext, record: PatchState) -> None:
    """Apply a ``PatchState`` record."""
    state = ctx.tables.state
    log = ctx.log.bind(service=record.service, key=record.key)
    if record.expected_version is not None:
        current = state.version(record.service, record.key)
        if current != record.expected_version:
            log.info(
                "state patch refused: the state changed since it was read", current_version=current
            )
            return
    state.clear_all(record.service, record.key)
    for entry in record.new_state:
        state.put(record.service, record.key, entry.key, entry.value)
    log.info("object state replaced", entries=len(record.new_state))
