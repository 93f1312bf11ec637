"""What every step of the state machine works with while applying one record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from structlog.typing import FilteringBoundLogger

from engine.ids import InvocationId
from engine.partition.actions import Action, SpeculationRejected
from engine.storage.invocation_status import InvocationStatus
from engine.storage.tables import PartitionTables
from engine.wal.records import HandlerKind

if TYPE_CHECKING:
    from engine.partition.state_machine.poison import Poisoned

__all__ = ["DEFAULT_OPTIONS", "ApplyContext", "StateMachineOptions"]

_HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class StateMachineOptions:
    """Cluster-wide settings that change what ``apply`` writes.

    Every process must use the same values: they decide when cleanup timers fire, and
    replicas of a partition must compute the same state from the same log.

    Attributes:
        completed_retention_ms: How long a completed invocation's status and result stay
            (answering late ``attach``/``output`` requests and duplicate sends) before
            the CLEANUP timer deletes them. 0 deletes the status on completion.
        idempotent_retention_ms: The same for invocations with an idempotency key and
            for workflow runs, whose retention is what makes a retry with the same key
            or workflow id get the same answer (Restate's default: one day).
    """

    completed_retention_ms: int = _HOUR_MS
    idempotent_retention_ms: int = 24 * _HOUR_MS

    def retention_for(self, status: InvocationStatus) -> int:
        """How long to keep ``status`` once completed, in ms."""
        if status.idempotency_key is not None or status.target.handler_kind is HandlerKind.WORKFLOW:
            return self.idempotent_retention_ms
        return self.completed_retention_ms


DEFAULT_OPTIONS = StateMachineOptions()


@dataclass(slots=True)
class ApplyContext:
    """The tables, clock and action list of one ``apply`` call.

    ``now_ms`` is the applied record's timestamp (Kafka CreateTime): every time the
    state machine stores or computes derives from it, never from the wall clock.
    """

    tables: PartitionTables
    partition: int
    partition_count: int
    offset: int
    now_ms: int
    options: StateMachineOptions
    base_log: FilteringBoundLogger
    actions: list[Action] = field(default_factory=list)
    poisoned: Mapping[int, Poisoned] | None = None
    """Records of this WAL record that raised when applied before, by index
    (:mod:`.poison`); ``None`` on the normal path."""
    rejected_speculations: set[InvocationId] | None = None
    """Invocations whose speculative first attempt this WAL record's ``Invoke`` refused
    (:func:`.invoke.on_invoke`): the rest of the record's batch is dropped for them."""
    _log: FilteringBoundLogger | None = None

    @property
    def log(self) -> FilteringBoundLogger:
        """The logger bound to the partition and offset; bound on first use, as most
        records log nothing and a bind per record is measurable on the apply path."""
        if self._log is None:
            self._log = self.base_log.bind(partition=self.partition, offset=self.offset)
        return self._log

    def emit(self, action: Action) -> None:
        """Add ``action`` to what this record asks of the leader."""
        self.actions.append(action)

    def reject_speculation(self, invocation_id: InvocationId) -> None:
        """Drop the rest of this batch's records of ``invocation_id`` (its speculative
        attempt's) and tell the leader to run it anew."""
        if self.rejected_speculations is None:
            self.rejected_speculations = set()
        self.rejected_speculations.add(invocation_id)
        self.emit(SpeculationRejected(invocation_id))

    def log_for(self, invocation_id: InvocationId, **context: Any) -> FilteringBoundLogger:
        """The context's logger bound to ``invocation_id`` (and ``context``)."""
        return self.log.bind(invocation_id=str(invocation_id), **context)
