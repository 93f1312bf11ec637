"""The records of the write-ahead log: everything that changes durable state.

A partition processor applies these, in log order, to its LMDB state; the result must
depend on nothing but the previous state and the record. So a record carries every
fact the state machine needs (the handler kind, the time a timer fires, the result of
a call), never a reference to something that could change between append and apply.

Each record travels in an :class:`Envelope` with two optional stamps:

* ``epoch``: the leader epoch of the process that produced the record (invoker effects,
  timer firings, outbox truncations, leader announcements). The state machine drops a
  stamped record whose epoch is older than the partition's current leader epoch, which
  fences a deposed leader's late writes.
* ``dedup_id``: ``(producer, sequence)`` for records that may be appended more than once
  (the outbox shuffle re-sending after a crash, a Kafka subscription re-reading a source
  record). Sequences are increasing per producer, so the target partition keeps only the
  highest sequence seen per producer and drops anything at or below it.

All classes are frozen and compare by value. Field names are also the Avro field names
of :mod:`engine.wal.schema`; renaming one is a schema change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias

from engine.ids import DeploymentId, InvocationId, SubscriptionId
from engine.wal.management_records import (
    CancelInvocation,
    KillInvocation,
    PauseInvocation,
    PurgeInvocation,
    RestartAsNewInvocation,
    ResumeInvocation,
)

__all__ = [
    "AnnounceLeader",
    "AttachInvocation",
    "GetInvocationOutput",
    "CancelInvocation",
    "CompletionId",
    "DedupId",
    "DeploymentPinned",
    "Envelope",
    "Failure",
    "FailureMetadata",
    "HandlerKind",
    "Header",
    "IngressSink",
    "IngressSource",
    "InvocationEnded",
    "InvocationFailedAttempt",
    "InvocationIdResult",
    "InvocationSink",
    "InvocationSource",
    "InvocationSuspended",
    "InvocationTarget",
    "Invoke",
    "InvokerEffect",
    "CallTarget",
    "JournalAppend",
    "KillInvocation",
    "NotificationId",
    "NotificationResult",
    "Notify",
    "OutboxTruncate",
    "OutputResult",
    "PatchState",
    "PauseInvocation",
    "PurgeInvocation",
    "Record",
    "ResponseSink",
    "RestartAsNewInvocation",
    "ResumeInvocation",
    "ServiceKind",
    "SignalIndex",
    "SignalName",
    "Source",
    "StateEntry",
    "StateKeys",
    "SubscriptionSource",
    "TimerFired",
    "TimerKey",
    "TimerKind",
    "Value",
    "Void",
]


# --- shared building blocks --------------------------------------------------------------


class ServiceKind(Enum):
    """What kind of service a handler belongs to (the manifest's ``ty``)."""

    SERVICE = "SERVICE"
    VIRTUAL_OBJECT = "VIRTUAL_OBJECT"
    WORKFLOW = "WORKFLOW"


class HandlerKind(Enum):
    """How a keyed handler holds its key (the manifest's handler ``ty``)."""

    EXCLUSIVE = "EXCLUSIVE"
    """One at a time per key: goes through the key's inbox."""
    SHARED = "SHARED"
    """Concurrent, read-only state access: bypasses the inbox."""
    WORKFLOW = "WORKFLOW"
    """A workflow's ``run`` handler: at most once per workflow key."""


@dataclass(frozen=True, slots=True)
class InvocationTarget:
    """The handler an invocation runs.

    ``handler_kind`` is recorded rather than looked up at apply time because the
    deployment metadata may change between append and apply; ``None`` for plain services.
    """

    service: str
    handler: str
    key: str | None
    service_kind: ServiceKind
    handler_kind: HandlerKind | None = None


@dataclass(frozen=True, slots=True)
class Header:
    """One request header passed to the handler (names as received, lower-cased by HTTP)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class IngressSource:
    """The invocation came in over HTTP ingress on engine process ``node_id``."""

    node_id: str
    request_id: str


@dataclass(frozen=True, slots=True)
class InvocationSource:
    """Another invocation called or sent to this one from its journal entry ``entry_index``."""

    invocation_id: InvocationId
    entry_index: int


@dataclass(frozen=True, slots=True)
class SubscriptionSource:
    """A Kafka subscription turned source record ``topic/partition@offset`` into this call."""

    subscription_id: SubscriptionId
    topic: str
    partition: int
    offset: int


Source: TypeAlias = IngressSource | InvocationSource | SubscriptionSource | None
"""Who caused an invocation; ``None`` for internal or unknown origins."""


@dataclass(frozen=True, slots=True)
class IngressSink:
    """Answer the HTTP request ``request_id`` waiting on engine process ``node_id``."""

    node_id: str
    request_id: str


@dataclass(frozen=True, slots=True)
class InvocationSink:
    """Complete ``completion_id`` in the calling invocation's journal."""

    invocation_id: InvocationId
    completion_id: int


ResponseSink: TypeAlias = IngressSink | InvocationSink | None
"""Where the result goes when the invocation ends; ``None`` for one-way sends."""


@dataclass(frozen=True, slots=True)
class CompletionId:
    """A notification completing a command's ``result_completion_id`` (protocol v4+)."""

    id: int


@dataclass(frozen=True, slots=True)
class SignalIndex:
    """A signal by index: 1 is the built-in CANCEL signal, awakeables start at 17."""

    index: int


@dataclass(frozen=True, slots=True)
class SignalName:
    """A named signal (protocol v4+)."""

    name: str


NotificationId: TypeAlias = CompletionId | SignalIndex | SignalName
"""What a notification completes, mirroring the protocol's notification ``id`` oneof."""


@dataclass(frozen=True, slots=True)
class Value:
    """A successful result: the serialized value, possibly empty."""

    content: bytes


@dataclass(frozen=True, slots=True)
class FailureMetadata:
    """One key/value pair of error metadata (protocol v6+ ``FailureMetadata``)."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Failure:
    """A terminal failure: an HTTP-like status code and a message."""

    code: int
    message: str
    metadata: tuple[FailureMetadata, ...] = ()


@dataclass(frozen=True, slots=True)
class Void:
    """A completion without a value (a sleep that elapsed, a cleared promise)."""


@dataclass(frozen=True, slots=True)
class InvocationIdResult:
    """The id of an invocation just created (the answer to a call's invocation id future)."""

    invocation_id: InvocationId


@dataclass(frozen=True, slots=True)
class StateKeys:
    """The state keys of an object (the answer to a lazy ``get state keys``)."""

    keys: tuple[bytes, ...]


NotificationResult: TypeAlias = Value | Failure | Void | InvocationIdResult | StateKeys
"""The payload of a notification, mirroring the protocol's notification ``result`` oneof."""

OutputResult: TypeAlias = Value | Failure
"""The outcome of a whole invocation."""


class TimerKind(Enum):
    """What happens when a timer fires."""

    SLEEP = "SLEEP"
    """Complete a sleep command's completion id with :class:`Void`."""
    DELAYED_INVOKE = "DELAYED_INVOKE"
    """Start an invocation submitted with ``execute_at_ms``."""
    RETRY = "RETRY"
    """Re-invoke after a failed attempt's back-off."""
    CLEANUP = "CLEANUP"
    """Drop a completed invocation's retained status, output and journal."""


@dataclass(frozen=True, slots=True)
class TimerKey:
    """Identifies a timer: when it fires, for which invocation, what it does.

    ``completion_id`` is the sleep command's completion id for :attr:`TimerKind.SLEEP`,
    ``None`` otherwise.
    """

    fire_at_ms: int
    invocation_id: InvocationId
    kind: TimerKind
    completion_id: int | None = None


@dataclass(frozen=True, slots=True)
class StateEntry:
    """One key/value pair of an object's state."""

    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class DedupId:
    """Deduplication stamp: the target keeps the highest ``sequence`` per ``producer``.

    Producers are named after the source and must hand out increasing sequences, e.g.
    ``"outbox/3"`` with the outbox sequence number of partition 3, or
    ``"sub/{subscription id}/{topic}/{partition}"`` with the source offset.
    """

    producer: str
    sequence: int


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Invoke:
    """A new invocation, from ingress, a subscription, or another invocation's outbox.

    ``execute_at_ms`` (ms since the Unix epoch) delays the start (``/send?delay=``).
    ``idempotency_key`` makes the processor answer retries with the same invocation.

    ``completion_retention_ms`` is how long the completed invocation (its result, and
    the idempotency key or workflow id it holds) is kept, resolved from the target's
    metadata by whoever wrote the record; ``journal_retention_ms`` is how long its
    journal is kept after completion (``None`` or 0: dropped at completion). Both are
    schema v3; ``None`` (older records, writers without metadata) means the engine
    defaults of :class:`~engine.partition.state_machine.context.StateMachineOptions`.

    ``ordering_key`` (schema v4) serialises invocations of a handler that takes no lock
    of its own (a plain service): invocations with the same target service and ordering
    key run one at a time, in the order their ``Invoke`` records were applied, through
    the same lock and inbox as a virtual object's key. Whoever sets it must derive the
    invocation id's partition key from it, so they all land in one WAL partition.

    ``speculation`` (schema v12) marks the ``Invoke`` of a virtual object's call whose
    first attempt the partition leader ran before the ``Invoke`` was applied
    (``engine/partition/leader/speculation.py``): it is the version
    (:func:`engine.storage.state.state_version`) of the object's state that attempt
    ran with. It travels in one ``RecordBatch`` with every record of that attempt;
    applying it accepts them only if the key is free and its state still has that
    version, i.e. only if starting the invocation now would have given the attempt
    exactly what it saw. Otherwise the ``Invoke`` is admitted as any other and the
    attempt's records in the batch are dropped.
    """

    invocation_id: InvocationId
    target: InvocationTarget
    argument: bytes
    headers: tuple[Header, ...] = ()
    source: Source = None
    response_sink: ResponseSink = None
    idempotency_key: str | None = None
    execute_at_ms: int | None = None
    completion_retention_ms: int | None = None
    journal_retention_ms: int | None = None
    ordering_key: str | None = None
    speculation: str | None = None


@dataclass(frozen=True, slots=True)
class CallTarget:
    """What the leader's metadata said the callee of a call command is (schema v2).

    Schema v3 adds the callee's retention settings (``None``: engine defaults), so the
    state machine can give the callee's ``Invoke`` its retention without reading the
    metadata: see :meth:`completion_retention_ms`.
    """

    service_kind: ServiceKind
    handler_kind: HandlerKind | None
    idempotency_retention_ms: int | None = None
    workflow_retention_ms: int | None = None
    journal_retention_ms: int | None = None

    def completion_retention_ms(self, idempotent: bool) -> int | None:
        """How long a completed invocation of this target is kept (``None``: default).

        A workflow's run keeps its workflow id for the workflow completion retention;
        any other request with an idempotency key keeps it for the idempotency
        retention (as on restate-server); other invocations use the engine default.
        """
        if self.handler_kind is HandlerKind.WORKFLOW:
            return self.workflow_retention_ms
        return self.idempotency_retention_ms if idempotent else None


@dataclass(frozen=True, slots=True)
class JournalAppend:
    """The invoker received a journal entry (a command) from the SDK; append it.

    ``message_type`` is the protocol message type id (e.g. ``0x0400`` range for
    commands) and ``message`` the raw protobuf body, stored verbatim for replay.

    Where it goes: ``command_index`` (schema v5) is the command's index among the
    invocation's commands (the InputCommand is command 0; custom entries count,
    notifications do not), as the SDK numbers them. The state machine stores the append
    at the end of the journal when exactly that many commands are journaled, and
    ignores it otherwise: lower is a duplicate (a retried emit, a stale attempt), higher
    a gap. Notifications the state machine journals on its own meanwhile (a callee's
    invocation id, a lazy state read, a result) do not matter.

    ``entry_index`` is where the invoker expects the entry in the journal (the replayed
    journal's length plus the commands it appended since). Records of older writers
    carry only this, and the state machine places them by it as it always did (see
    :mod:`engine.partition.state_machine.journal_commands`): a replayed log keeps its
    meaning.

    ``call_target`` is set on call and one-way-call commands only: the call command
    names a service but not its kind, and the state machine must not consult the
    (changing) deployment metadata, so the leader resolves the kind before appending.
    ``None`` on other commands and on records written with schema v1 (the state machine
    then treats a keyed callee as an exclusive virtual-object handler).

    ``trace_parent`` (schema v11) is set on call and one-way-call commands while tracing
    is on: the W3C ``traceparent`` of the calling attempt's span. The state machine adds
    it to the callee's ``Invoke`` headers (unless the command names one itself), so the
    callee's spans continue the caller's trace (:mod:`engine.observability.tracing`).
    """

    invocation_id: InvocationId
    entry_index: int
    message_type: int
    message: bytes
    call_target: CallTarget | None = None
    command_index: int | None = None
    trace_parent: str | None = None


@dataclass(frozen=True, slots=True)
class InvocationSuspended:
    """The SDK suspended; resume when any of ``waiting_for`` gets a notification."""

    invocation_id: InvocationId
    waiting_for: tuple[NotificationId, ...]


@dataclass(frozen=True, slots=True)
class InvocationEnded:
    """The handler returned (``Value``) or failed terminally (``Failure``)."""

    invocation_id: InvocationId
    result: OutputResult


@dataclass(frozen=True, slots=True)
class InvocationFailedAttempt:
    """An attempt failed with a retryable error; retry at ``retry_at_ms``.

    ``attempt`` counts attempts so far (1 after the first failure). ``paused`` (schema
    v3): the retry policy's attempts are used up and it says pause, so the invocation
    waits in the Paused status for an operator's ``ResumeInvocation`` instead of a
    retry (``retry_at_ms`` is then the time of the failure).

    ``related_command_index`` / ``_name`` / ``_type`` (schema v8): the command the
    attempt failed at, when the SDK's ErrorMessage (or the invoker) named it: its index
    among the invocation's commands (the InputCommand is 0), its name (a ``ctx.run``
    name), its protocol message type id.
    """

    invocation_id: InvocationId
    code: int
    message: str
    retry_at_ms: int
    attempt: int
    paused: bool = False
    related_command_index: int | None = None
    related_command_name: str | None = None
    related_command_type: int | None = None


@dataclass(frozen=True, slots=True)
class DeploymentPinned:
    """The first attempt chose a deployment and protocol version; later attempts reuse them."""

    invocation_id: InvocationId
    deployment_id: DeploymentId
    protocol_version: int


InvokerEffect: TypeAlias = (
    JournalAppend
    | InvocationSuspended
    | InvocationEnded
    | InvocationFailedAttempt
    | DeploymentPinned
)
"""Records the invoker produces on the partition leader (always epoch-stamped)."""


@dataclass(frozen=True, slots=True)
class Notify:
    """A notification for an invocation: a call's result, a run result, a signal.

    Resolving an awakeable is a ``Notify`` with the awakeable's :class:`SignalIndex`.
    """

    invocation_id: InvocationId
    notification_id: NotificationId
    result: NotificationResult


@dataclass(frozen=True, slots=True)
class TimerFired:
    """The leader's timer service found ``timer`` due."""

    timer: TimerKey

    @property
    def invocation_id(self) -> InvocationId:
        """The invocation the timer belongs to."""
        return self.timer.invocation_id


@dataclass(frozen=True, slots=True)
class OutboxTruncate:
    """Outbox entries up to and including ``sequence`` were delivered; drop them."""

    sequence: int


@dataclass(frozen=True, slots=True)
class AnnounceLeader:
    """``node_id`` leads ``partition`` from ``epoch`` on; older epochs are fenced off."""

    epoch: int
    node_id: str
    partition: int


@dataclass(frozen=True, slots=True)
class AttachInvocation:
    """Also send the invocation's result to ``sink``: an ingress request (``.../attach``)
    or, from schema v4, a calling invocation's completion (``AttachInvocationCommand``).

    Idempotent requests and workflow runs have deterministic ids (see
    :mod:`engine.ids`), so attaching by idempotency key or workflow key resolves to an
    invocation id before the record is written.
    """

    invocation_id: InvocationId
    sink: IngressSink | InvocationSink


@dataclass(frozen=True, slots=True)
class GetInvocationOutput:
    """Answer ``sink`` now with the invocation's output: its result if it completed,
    ``Void`` ("not ready") if it has not, a 404 failure if it is unknown (schema v4;
    a handler's ``GetInvocationOutputCommand``, or the ingress ``.../output`` of an
    engine process that does not lead the invocation's partition)."""

    invocation_id: InvocationId
    sink: IngressSink | InvocationSink


@dataclass(frozen=True, slots=True)
class PatchState:
    """Replace an object's whole state (admin ``POST /services/{service}/state``).

    If ``expected_version`` is set, the processor applies the patch only when the
    current state's version matches it.
    """

    service: str
    key: str
    new_state: tuple[StateEntry, ...]
    expected_version: str | None = None


LeaderRecord: TypeAlias = (
    JournalAppend
    | InvocationSuspended
    | InvocationEnded
    | InvocationFailedAttempt
    | DeploymentPinned
    | Notify
    | TimerFired
    | OutboxTruncate
)
"""What a partition's leader writes to its own partition, epoch-stamped: the invoker's
records (a run's completion is a ``Notify``), timer firings, outbox truncations."""


BatchedRecord: TypeAlias = LeaderRecord | Invoke
"""What a :class:`RecordBatch` may carry: a leader's own records and, from schema v10,
the ``Invoke`` of a call whose first attempt ran before it was appended (see
``engine/partition/leader/deferred_invokes.py``)."""


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Records a partition leader handed to the WAL together, as one Kafka record
    (schema v6; v10 lets it carry ``Invoke`` records too).

    Applying it is applying each record in order at the batch's offset, under the
    batch's epoch stamp: exactly what the records would do as consecutive WAL records
    of one leader. It exists for the cost: a no-op invocation's pin, output and end are
    one produce, one fetch, one decode and one fencing check instead of three (and with
    the call's ``Invoke`` in front, one instead of four).

    An ``Invoke`` in a batch is not the leader's record but a caller's that travels with
    it: when the batch is fenced off (a deposed leader's), its ``Invoke`` records are
    still applied, exactly as the ingress's unstamped ``Invoke`` would have been, and
    only the leader's records are dropped.
    """

    records: tuple[BatchedRecord, ...]


Record: TypeAlias = (
    Invoke
    | JournalAppend
    | InvocationSuspended
    | InvocationEnded
    | InvocationFailedAttempt
    | DeploymentPinned
    | Notify
    | TimerFired
    | OutboxTruncate
    | AnnounceLeader
    | CancelInvocation
    | KillInvocation
    | PurgeInvocation
    | AttachInvocation
    | PatchState
    | PauseInvocation
    | ResumeInvocation
    | GetInvocationOutput
    | RecordBatch
    | RestartAsNewInvocation
)
"""Every record the partition state machine applies."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded WAL record with its stamps and the schema version it was written with."""

    record: Record
    epoch: int | None = None
    dedup_id: DedupId | None = None
    schema_version: int = 1
