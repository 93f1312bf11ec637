"""Records from the admin API that act on existing things.

``PatchState`` replaces an object's whole state, optionally only
if the state still has the version the patch was based on. ``PurgeInvocation`` lives
with the rest of the lifecycle (:mod:`.lifecycle`).
"""

from __future__ import annotations

from engine.partition.state_machine.context import ApplyContext
from engine.wal.records import PatchState

__all__ = ["on_patch_state"]


def on_patch_state(ctx: ApplyContext, record: PatchState) -> None:
    """Apply a ``PatchState`` record."""
    state = ctx.tables.state
    log = ctx.log.bind(service=record.service, key=record.key)
    if record.expected_version is not None:
        if not state.version_matches(record.service, record.key, record.expected_version):
            log.info(
                "state patch refused: the state changed since it was read",
                current_version=state.version(record.service, record.key),
            )
            return
    state.clear_all(record.service, record.key)
    for entry in record.new_state:
        state.put(record.service, record.key, entry.key, entry.value)
    log.info("object state replaced", entries=len(record.new_state))
