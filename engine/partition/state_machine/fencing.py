"""Which envelopes get applied at all: epoch fencing and producer deduplication.

* Fencing: an envelope stamped with an epoch older than the partition's current
  leader epoch comes from a deposed leader (a zombie still appending) and is dropped.
  Unstamped envelopes (ingress, subscriptions, other partitions' outboxes) always pass.
* Deduplication: an envelope with ``dedup_id`` whose sequence is at or below the
  highest one applied from that producer is a re-send and is dropped; otherwise its
  sequence becomes the new highest, in the same transaction as its effects.

A dropped envelope still advances the applied offset (the caller does that), so it is
never looked at again.
"""

from __future__ import annotations

from engine.partition.state_machine.context import ApplyContext
from engine.wal.records import Envelope

__all__ = ["admit_envelope"]


def admit_envelope(ctx: ApplyContext, envelope: Envelope) -> bool:
    """True if ``envelope`` must be applied; records its dedup sequence if so."""
    record_type = type(envelope.record).__name__
    if envelope.epoch is not None:
        current = ctx.tables.fsm.current_epoch()
        if envelope.epoch < current:
            ctx.log.info(
                "record from a fenced-off epoch dropped",
                record=record_type,
                epoch=envelope.epoch,
                current_epoch=current,
            )
            return False
    dedup_id = envelope.dedup_id
    if dedup_id is not None:
        if ctx.tables.dedup.is_duplicate(dedup_id.producer, dedup_id.sequence):
            ctx.log.debug(
                "duplicate record dropped",
                record=record_type,
                producer=dedup_id.producer,
                sequence=dedup_id.sequence,
            )
            return False
        ctx.tables.dedup.store(dedup_id.producer, dedup_id.sequence)
    return True
