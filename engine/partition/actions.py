"""What the partition state machine asks the leader to do after a batch commits.

The state machine never performs side effects; it returns these. It returns them on
every replica, leader or not, so that applying a record is the same computation
everywhere; the runtime carries them out only when it leads the partition for the
current epoch (and drops them while catching up). Every action is safe to perform
more than once: re-invoking a running invocation is a no-op in the invoker,
re-registering a timer or re-sending an outbox sequence is deduplicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from engine.ids import InvocationId
from engine.wal.records import Header, NotificationId, OutputResult, Record, TimerKey, Void

if TYPE_CHECKING:
    from engine.partition.state_reader import InvocationTaskData

__all__ = [
    "AbortInvocation",
    "Action",
    "BecameLeader",
    "CancelTimer",
    "ForwardNotification",
    "InvocationStopped",
    "InvokeAction",
    "LostLeadership",
    "RegisterTimer",
    "RespondToIngress",
    "SendOutbox",
    "SpeculationRejected",
    "Submitted",
]


@dataclass(frozen=True, slots=True)
class InvokeAction:
    """Start or resume an attempt of ``invocation_id``.

    The invoker needs the target, deployment pin, journal and state
    (:mod:`engine.partition.state_reader`). The state machine names only the
    invocation; the processor of a partition this process leads fills ``task`` from the
    batch's own write transaction (its end state, what a read after the commit would
    see), so the event loop need not open a read transaction and decode the status
    again. ``None``: the leader reads it from LMDB.
    """

    invocation_id: InvocationId
    task: InvocationTaskData | None = None


@dataclass(frozen=True, slots=True)
class AbortInvocation:
    """Stop the running attempt of ``invocation_id``, if any (kill)."""

    invocation_id: InvocationId


@dataclass(frozen=True, slots=True)
class InvocationStopped:
    """An invocation ended by a kill or a cancel (an operator's through the admin API,
    or its caller's passed down), not by an attempt: the leader counts it in the
    invocation metrics and emits its span, as the executor does for an end an attempt
    reports (no attempt reports this one). Carried out by the leader that applied the
    record; a replay while catching up drops it like every action, so an invocation is
    counted once."""

    invocation_id: InvocationId
    service: str
    handler: str
    key: str | None
    created_at_ms: int
    headers: tuple[Header, ...]
    """The invocation's request headers: its ``traceparent`` continues the caller's trace."""
    failure: str
    """The end's failure message (``killed``, ``canceled``)."""


@dataclass(frozen=True, slots=True)
class SpeculationRejected:
    """The speculative first attempt of ``invocation_id`` was not accepted: its records
    were dropped and the invocation was admitted as any other (started or inboxed), so
    the leader must run it anew (``engine/partition/leader/speculation.py``)."""

    invocation_id: InvocationId


@dataclass(frozen=True, slots=True)
class RegisterTimer:
    """Schedule ``timer`` in the timer service (the row is already in LMDB)."""

    timer: TimerKey


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget ``timer`` in the timer service (its row was deleted: the invocation that
    owned it ended), so a dead invocation's timer never fires."""

    timer: TimerKey


@dataclass(frozen=True, slots=True)
class SendOutbox:
    """Deliver outbox row ``sequence`` to the partition owning ``target_partition_key``."""

    sequence: int
    target_partition_key: int
    record: Record


@dataclass(frozen=True, slots=True)
class Submitted:
    """The answer to a ``/send`` with a derived id (idempotency key, workflow run): its
    ``Invoke`` was applied, and either created the invocation or found it there already."""

    previously_accepted: bool


@dataclass(frozen=True, slots=True)
class RespondToIngress:
    """Answer HTTP request ``request_id`` waiting on engine process ``node_id``."""

    node_id: str
    request_id: str
    invocation_id: InvocationId
    result: OutputResult | Void | Submitted
    """``Void`` answers an output query for an invocation that has not completed;
    ``Submitted`` a send with a derived id (:func:`.state_machine.invoke.on_invoke`)."""


@dataclass(frozen=True, slots=True)
class ForwardNotification:
    """A notification was journaled while an attempt runs.

    A bidirectional-streaming attempt can be sent the entry at ``entry_index`` right
    away; a request/response attempt ignores it (the SDK suspends and the state
    machine resumes it, because the notification is in the journal by then).
    """

    invocation_id: InvocationId
    entry_index: int
    notification_id: NotificationId


@dataclass(frozen=True, slots=True)
class BecameLeader:
    """``node_id`` leads ``partition`` from ``epoch`` on (the node that is ``node_id``
    starts its leader services; everyone else ignores this)."""

    partition: int
    epoch: int
    node_id: str


@dataclass(frozen=True, slots=True)
class LostLeadership:
    """``node_id`` no longer leads ``partition``: its ``epoch`` was superseded."""

    partition: int
    epoch: int
    node_id: str


Action: TypeAlias = (
    InvokeAction
    | AbortInvocation
    | InvocationStopped
    | SpeculationRejected
    | RegisterTimer
    | CancelTimer
    | SendOutbox
    | RespondToIngress
    | ForwardNotification
    | BecameLeader
    | LostLeadership
)
"""Everything :func:`engine.partition.state_machine.apply` may return."""
