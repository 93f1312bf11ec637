"""One partition's leader: the executors that act on the state machine's decisions.

Created when this process's ``AnnounceLeader`` is applied, stopped when the partition is
revoked or someone else announces a newer epoch. On start it rebuilds its work from
LMDB (pending timers, undelivered outbox entries, invocations that were running under
the previous leader), because actions emitted before it led were dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from engine.errors import LeadershipLost
from engine.ids import InvocationId
from restate_protocol import JournalEntry
from engine.invoker.client import Invoker
from engine.logs import get_logger
from engine.metadata.model import DEFAULT_RETRY_POLICY, EffectiveRetryPolicy
from engine.metadata.store import MetadataStore
from engine.partition.actions import (
    AbortInvocation,
    InvocationStopped,
    Action,
    CancelTimer,
    ForwardNotification,
    InvokeAction,
    RegisterTimer,
    SendOutbox,
    SpeculationRejected,
)
from engine.partition import metrics
from engine.partition.leader.egress import EgressExecutor, EgressProducers
from engine.partition.leader.invocations import InvocationExecutor, attempt_executor
from engine.partition.leader.outbox import OutboxEntry, OutboxShuffle
from engine.partition.leader.deferred_invokes import HOLD_S, DeferredInvokes
from engine.partition.leader.own_writes import OwnWrites
from engine.partition.leader.speculation import (
    OwnInvokes,
    SlowHandlers,
    read_speculative_state,
    speculation_candidate,
)
from engine.partition.leader.timers import TimerService
from engine.partition.state_machine.invoke import starts_when_applied
from engine.partition.state_reader import (
    InvocationTaskData,
    first_attempt_data,
    invoked_invocations,
    load_invocation_task_data,
)
from engine.storage.reader import TableReader
from engine.storage.tables import PartitionTables
from engine.wal.appender import WalAppender
from engine.wal.partitioning import partition_for
from engine.storage.outbox import OutboxMessage
from engine.wal.records import DedupId, Invoke, Record, TimerKey

if TYPE_CHECKING:
    # Loaded by the node only when tracing is on (the OpenTelemetry SDK is not small).
    from engine.observability.tracing import Tracing

log = get_logger(__name__)

WaitApplied = Callable[[int, int, float], Awaitable[bool]]
"""``(partition, offset, timeout_s)`` -> True once this process applied that offset."""

# How long an ack may wait for its record to be applied before the attempt gives up.
_CONFIRM_TIMEOUT_S = 30.0


class PartitionLeader:
    """Timer service, outbox shuffle and invocation executor of one partition and epoch."""

    def __init__(
        self,
        *,
        partition: int,
        epoch: int,
        node_name: str,
        appender: WalAppender,
        invoker: Invoker,
        metadata: MetadataStore,
        reader: TableReader,
        egress: EgressProducers | None = None,
        wait_applied: WaitApplied | None = None,
        default_retry_policy: EffectiveRetryPolicy = DEFAULT_RETRY_POLICY,
        invoke_hold_s: float = HOLD_S,
        tracing: Tracing | None = None,
    ) -> None:
        self.partition = partition
        self.epoch = epoch
        self._node_name = node_name
        self._appender = appender
        self._reader = reader
        self._own_writes = OwnWrites(appender, partition, epoch)
        self._deferred = DeferredInvokes(
            self._own_writes, appender, partition, invoke_hold_s, abandon=self._abandon_speculation
        )
        self._own_invokes = OwnInvokes()
        self._slow = SlowHandlers()
        self._timers = TimerService(partition, self.submit_own)
        self._outbox = OutboxShuffle(partition, self._deliver, self.append_own)
        # Built-in Kafka egress: its producer was fenced in before this leader announced
        # (none if that failed: the processor fences again and announces a new epoch).
        self._egress = EgressExecutor(
            partition=partition, epoch=epoch, wal_topic=appender.topic,
            producer=egress.producer(partition) if egress is not None else None,
            snapshot=self._egress_snapshot, append_own=self.append_own,
            refence=functools.partial(egress.new_producer, partition) if egress is not None else None,
            unavailable=functools.partial(egress.last_error.get, partition) if egress is not None else None,
        )
        self._wait_applied = wait_applied
        self._executor = InvocationExecutor(
            partition, invoker, metadata, self._load_task, self.submit_own, builtin=self._egress,
            confirm=self.confirm_applied if wait_applied is not None else None, load_entry=self._load_entry,
            default_retry_policy=default_retry_policy, tracing=tracing, release=self._deferred.release,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._invoke_hold_s = invoke_hold_s
        self._log = log.bind(partition=partition, epoch=epoch)
        self._early_starts = metrics.EARLY_STARTS.labels(str(partition))
        self._speculations = {
            outcome: metrics.SPECULATIONS.labels(str(partition), outcome)
            for outcome in ("started", "rejected", "abandoned")
        }

    def submit_own(self, record: Record) -> asyncio.Future[int]:
        """Hand a record for this partition to the WAL, stamped with this leader's epoch
        (fencing) and batched with what else is handed over in this turn of the event
        loop (:mod:`.own_writes`); the future gives its offset once durable.

        Refused (:class:`engine.errors.LeadershipLost`) when the calling task is an
        attempt another leader started: a superseded leader's attempt must not write
        with this leader's epoch (:mod:`engine.partition.leader.invocations`).
        """
        owner = attempt_executor()
        if owner is not None and owner is not self._executor:
            raise LeadershipLost("the attempt belongs to a superseded partition leader")
        self._deferred.before(record)
        return self._own_writes.submit(record)

    def start_early(self, record: Invoke, now_ms: int) -> asyncio.Future[int] | None:
        """Append ``record`` (an ingress ``Invoke`` for this partition) and start its
        first attempt without waiting for it to be read back; see
        :meth:`InvocationExecutor.start_early`. The future gives the offset of the WAL
        record the ``Invoke`` left in, once durable. ``None`` (nothing appended, nothing
        started) when not applicable: the caller appends the record itself.

        A call's ``Invoke`` is held until its attempt's first record and leaves with it
        in one WAL record (:mod:`.deferred_invokes`); a send's is appended at once, as
        its caller is answered when it is durable."""
        if self._stopped:
            return None
        if speculation_candidate(record) and self._invoke_hold_s > 0:
            return self._speculate(record, now_ms)
        if not starts_when_applied(record):
            return None
        # The attempt's task only runs from the next loop iteration: the Invoke is held
        # or handed to the producer below, before anything the attempt writes.
        if not self._executor.start_early(first_attempt_data(record, now_ms)):
            return None
        self._early_starts.inc()
        if record.response_sink is not None and self._invoke_hold_s > 0:
            return self._deferred.hold(record)
        return self._appender.submit(self.partition, record)

    def _speculate(self, record: Invoke, now_ms: int) -> asyncio.Future[int]:
        """Append an object call's ``record``, starting its first attempt at once with
        the object's state when this leader's view says the key is free; see
        :mod:`.speculation`. Every such ``Invoke`` is appended here (not by the ingress),
        so that a later call for the key knows whether one is still on its way."""
        target = record.target
        assert target.key is not None
        key = (target.service, target.key)
        appended: asyncio.Future[int]
        if self._deferred.speculating(key):
            # Right behind the speculative one (order per key), not racing it.
            appended = self._deferred.follow(key, record)
        else:
            appended = self._try_speculation(record, now_ms) or self._appender.submit(self.partition, record)
        self._own_invokes.track(key, appended)
        return appended

    def _try_speculation(self, record: Invoke, now_ms: int) -> asyncio.Future[int] | None:
        target = record.target
        assert target.key is not None
        if self._slow.slow(target.service, target.handler):
            return None
        if not self._executor.may_speculate(target.service, target.handler):
            return None
        state, applied = self._reader.read(
            self.partition, lambda t: (read_speculative_state(t, record), t.fsm.applied_offset())
        )
        if state is None or self._own_invokes.pending((target.service, target.key), applied):
            return None
        # As in start_early: the attempt's task runs from the next loop iteration, after
        # the Invoke is held below.
        if not self._executor.start_early(first_attempt_data(record, now_ms, state.entries), speculative=True):
            return None
        self._speculations["started"].inc()
        return self._deferred.hold(
            dataclasses.replace(record, speculation=state.version), speculative_key=(target.service, target.key)
        )

    def _abandon_speculation(self, record: Invoke) -> None:
        """The hold of ``record`` (a speculative ``Invoke``) ran out: its attempt is
        stopped, and its handler is run the normal way for a while."""
        if self._executor.abandon_speculation(record.invocation_id):
            self._speculations["abandoned"].inc()
            self._slow.mark(record.target.service, record.target.handler)

    def abort_early(self, invocation_id: InvocationId) -> None:
        """The ``Invoke`` of an early start could not be appended: stop its attempt."""
        self._executor.abort(invocation_id)

    async def append_own(self, record: Record) -> int:
        """:meth:`submit_own`, awaited."""
        return await self.submit_own(record)

    async def confirm_applied(self, offset: int) -> bool:
        """Whether this leader's record at ``offset`` was applied, not just stored.

        A record is acknowledged to an endpoint (``CommandAck``) only after this: Kafka's
        ack says it is durable, but a record of a superseded epoch is ignored when
        applied. True once the processor applied ``offset`` while this leader still
        leads and the partition's epoch is still ours (no newer ``AnnounceLeader`` was
        applied before or after the record, so the record was not fenced off).
        """
        if self._wait_applied is None or self._stopped:
            return False
        if not await self._wait_applied(self.partition, offset, _CONFIRM_TIMEOUT_S):
            return False
        if self._stopped:
            return False
        epoch = self._reader.read(self.partition, lambda t: t.fsm.current_epoch())
        return bool(epoch == self.epoch)

    def _load_entry(self, invocation_id: InvocationId, index: int) -> JournalEntry | None:
        return self._reader.read(self.partition, lambda t: t.journal.get(invocation_id, index))

    async def _deliver(self, target_partition: int, record: Record, dedup_id: DedupId) -> int:
        return await self._appender.append(target_partition, record, dedup_id=dedup_id)

    def _load_task(self, invocation_id: InvocationId) -> InvocationTaskData | None:
        return self._reader.read(self.partition, lambda t: load_invocation_task_data(t, invocation_id))

    def _egress_snapshot(self, invocation_id: InvocationId) -> tuple[InvocationTaskData | None, int | None]:
        return self._reader.read(
            self.partition, lambda t: (load_invocation_task_data(t, invocation_id), t.fsm.applied_offset())
        )

    def start(self) -> None:
        """Reload pending work from LMDB and start the executors."""

        def pending_work(
            tables: PartitionTables,
        ) -> tuple[list[TimerKey], list[OutboxMessage], list[InvocationId]]:
            return list(tables.timers.scan()), list(tables.outbox.scan()), invoked_invocations(tables)

        timers, outbox, invoked = self._reader.read(self.partition, pending_work)
        self._timers.load(timers)
        for message in outbox:
            self._outbox.enqueue(self._outbox_entry(message.sequence, message.target_partition_key, message.record))
        self._egress.start()
        for invocation_id in invoked:
            self._executor.start(invocation_id)
        self._tasks = [
            asyncio.create_task(self._timers.run(), name=f"timers-{self.partition}"),
            asyncio.create_task(self._outbox.run(), name=f"outbox-{self.partition}"),
        ]
        self._log.info("partition leader started", timers=len(timers), outbox=len(outbox), resumed=len(invoked))

    async def stop(self) -> None:
        """Stop every executor; in-flight attempts are cancelled (the next leader redoes them)."""
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        # Attempts first, before any wait: they must not outlive the leadership.
        await self._executor.stop()
        # Calls whose attempt was just cancelled: their Invoke goes to the log alone, so
        # the next leader runs them and their callers get an answer.
        self._deferred.release_all()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._egress.stop()
        self._log.info("partition leader stopped")

    def handle(self, action: Action) -> None:
        """Carry out one action of an applied batch."""
        if isinstance(action, InvokeAction):
            self._executor.start(action.invocation_id, action.task)
        elif isinstance(action, RegisterTimer):
            self._timers.schedule(action.timer)
        elif isinstance(action, CancelTimer):
            self._timers.cancel(action.timer)
        elif isinstance(action, SendOutbox):
            self._outbox.enqueue(self._outbox_entry(action.sequence, action.target_partition_key, action.record))
        elif isinstance(action, AbortInvocation):
            self._executor.abort(action.invocation_id)
        elif isinstance(action, InvocationStopped):
            self._executor.stopped(action)
        elif isinstance(action, SpeculationRejected):
            self._speculations["rejected"].inc()
            self._executor.speculation_rejected(action.invocation_id)
        elif isinstance(action, ForwardNotification):
            # Pushed into the attempt's open stream; request/response attempts learn
            # notifications by being re-invoked.
            self._executor.forward(action.invocation_id, action.entry_index)

    def _outbox_entry(self, sequence: int, target_partition_key: int, record: Record) -> OutboxEntry:
        target = partition_for(target_partition_key, self._appender.partition_count)
        return OutboxEntry(sequence, target, record)
