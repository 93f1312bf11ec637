"""``AnnounceLeader``: a new leader epoch for the partition.

A newer epoch replaces the stored one: from then on, records stamped with an older
epoch are fenced off (:mod:`.fencing`). The actions name both sides, so each process
learns from the log alone whether it starts or stops leading; an announcement that
is not newer changes nothing.
"""

from __future__ import annotations

from engine.partition.actions import BecameLeader, LostLeadership
from engine.partition.state_machine.context import ApplyContext
from engine.storage.fsm import LeaderEpoch
from engine.wal.records import AnnounceLeader

__all__ = ["on_announce_leader"]


def on_announce_leader(ctx: ApplyContext, record: AnnounceLeader) -> None:
    """Apply an ``AnnounceLeader`` record."""
    log = ctx.log.bind(epoch=record.epoch, node_id=record.node_id)
    if record.partition != ctx.partition:
        log.error(
            "leader announcement for another partition; ignored",
            announced_partition=record.partition,
        )
        return
    current = ctx.tables.fsm.leader()
    if current is not None and record.epoch <= current.epoch:
        log.debug(
            "leader announcement not newer than the current epoch; ignored",
            current_epoch=current.epoch,
        )
        return
    ctx.tables.fsm.set_leader(LeaderEpoch(record.epoch, record.node_id))
    if current is not None:
        ctx.emit(LostLeadership(ctx.partition, current.epoch, current.node_id))
    ctx.emit(BecameLeader(ctx.partition, record.epoch, record.node_id))
    log.info("new partition leader")
