"""Partition processors: apply WAL batches to LMDB and run leaders for what we lead.

The consumer thread (:mod:`engine.partition.consumer`) calls :meth:`apply` with one
partition's batch; it is applied in ONE LMDB write transaction that also stores the
last applied offset, so LMDB is always exactly the fold of the log up to that offset.
The resulting actions are handed to the event loop, which gives them to the partition's
leader if this process leads the partition, and drops them otherwise. A record whose apply
raises fails its invocation instead (:mod:`engine.partition.batch`); one this engine
cannot apply at all (a newer WAL schema, a full disk) halts the partition
(:mod:`engine.partition.halt`): this process stops leading it until it goes on.

Leadership: when the consumer group assigns a partition, the processor catches up to
the partition's end as of the assignment, then appends ``AnnounceLeader(epoch + 1)``.
Leading starts when that record is applied, so every process agrees on who leads which
epoch, and records a deposed leader writes later carry an old epoch and are ignored.

**Every assigned partition ends up led.** An announcement that fails (Kafka outage) is
retried with backoff for as long as the partition stays assigned; a revoke cancels the
announcement task. A produce already handed to Kafka cannot be taken back, though, so a
process that just lost a partition may still get a late ``AnnounceLeader`` into the
log, after the announcement of the process that holds the partition now. The state
machine cannot tell (it knows nothing of group assignments), so the late one is
applied and names a process that will not lead (it only leads what it is assigned).
The assigned process sees a ``BecameLeader`` for someone else, at an epoch its own
announcement cannot beat, and announces again with the next epoch: the late
announcement holds the partition for about a second, never for good.

**Egress is fenced before announcing, but never blocks leading.** ``before_announce``
(the Kafka egress producer's ``init_transactions``) runs first, bounded; when it fails
(no TransactionalId permission, a broker hiccup) the partition is announced and led
anyway, without egress in that epoch; ``before_announce`` is retried with backoff while
leading, and once it succeeds a new epoch is announced, whose leader has the egress
producer (:mod:`engine.partition.leader.egress`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import lmdb

from engine.logs import get_logger
from engine.partition import metrics
from engine.partition.actions import Action, BecameLeader, LostLeadership, RespondToIngress
from engine.partition.batch import BatchApplier
from engine.partition.consumer import WalMessage
from engine.partition.halt import PartitionHalt, clear_halt, report_halt
from engine.partition.leader.leader import PartitionLeader
from engine.partition.state_machine import StateMachineOptions
from engine.storage.growth import MapGrowth
from engine.storage.reader import TableReader
from engine.storage.tables import TableHandles
from engine.wal.appender import WalAppender
from engine.wal.records import AnnounceLeader

log = get_logger(__name__)

LeaderFactory = Callable[[int, int], PartitionLeader]
"""(partition, epoch) -> a leader, not yet started."""

BeforeAnnounce = Callable[[int], Awaitable[None]]
"""Awaited before announcing leadership of a partition (the Kafka egress fences older
producers of the partition here); raising does not stop the announcement."""

_RETRY_FIRST_S = 0.2
_RETRY_MAX_S = 5.0
# Announcing again after a BecameLeader for someone else waits a heartbeat interval
# first: a process that was frozen (a zombie) reads the new leader's announcement
# before its consumer learns the partition is no longer assigned to it.
_REANNOUNCE_FIRST_S = 1.0
_BEFORE_ANNOUNCE_TIMEOUT_S = 15.0
_PREPARE_MAX_S = 30.0


class PartitionProcessors:
    """Every WAL partition this process consumes; implements ``WalListener``."""

    def __init__(
        self,
        *,
        env: lmdb.Environment,
        handles: TableHandles,
        partition_count: int,
        node_name: str,
        appender: WalAppender,
        loop: asyncio.AbstractEventLoop,
        leader_factory: LeaderFactory,
        options: StateMachineOptions | None = None,
        before_announce: BeforeAnnounce | None = None,
        respond: Callable[[RespondToIngress], None] | None = None,
        on_leading_changed: Callable[[dict[int, int]], None] | None = None,
        growth: MapGrowth | None = None,
    ) -> None:
        self._env = env
        # Answers to ingress requests are sent from here, leader or not: one applied while
        # this process has no leader for the partition yet (catching up, or fencing egress
        # before announcing) is kept nowhere a later leader could send it from.
        self._respond = respond
        self._before_announce = before_announce
        # Told {partition: epoch} of what this process leads whenever that changes (the
        # node advertises it so other processes can forward admin lookups here).
        self._on_leading_changed = on_leading_changed
        self._leading_epochs: dict[int, int] = {}
        self._handles = handles
        self._partition_count = partition_count
        self._node_name = node_name
        self._appender = appender
        self._loop = loop
        self._leader_factory = leader_factory
        self._options = options or StateMachineOptions()
        self.reader = TableReader(env, handles, growth)
        self._batches = BatchApplier(
            env, handles, partition_count=partition_count, options=self._options, growth=growth
        )
        # Consumer-thread side: partitions halted here (their gauge is set).
        self._halted: set[int] = set()
        # Event-loop side state.
        self._assigned: set[int] = set()
        # The epoch this process announced for each partition in its current assignment:
        # only that announcement makes it the leader (replaying an older one of its own,
        # from before a revoke and re-assign, must not).
        self._announced: dict[int, int] = {}
        self._leaders: dict[int, PartitionLeader] = {}
        # The running announcement of each assigned partition not led yet (cancelled on
        # revoke), and the next retry delay of each (reset once leading).
        self._announcing: dict[int, asyncio.Task[None]] = {}
        self._announce_delay: dict[int, float] = {}
        # Partitions whose last before_announce failed, and the task retrying it.
        self._unprepared: set[int] = set()
        self._preparing: dict[int, asyncio.Task[None]] = {}
        self._applied: dict[int, int] = {}
        self._applied_waiters: dict[int, list[tuple[int, asyncio.Future[None]]]] = {}
        # Consumer-thread side: partition -> offset to reach before announcing.
        self._catch_up_to: dict[int, int] = {}
        # Kafka timestamp of the last record applied per partition (apply lag in seconds,
        # read by engine.observability.partitions at scrape time).
        self._last_applied_ms: dict[int, int] = {}

    # -- consumer thread --------------------------------------------------------------

    def applied_offset(self, partition: int) -> int | None:
        return self.reader.read(partition, lambda t: t.fsm.applied_offset())

    def apply(self, partition: int, messages: Sequence[WalMessage]) -> PartitionHalt | None:
        outcome = self._batches.apply(partition, messages, load_task_data=partition in self._leaders)
        halt = outcome.halt
        if halt is not None:
            self._halted.add(partition)
            self._catch_up_to.pop(partition, None)
            report_halt(halt)
        elif partition in self._halted:
            self._halted.discard(partition)
            clear_halt(partition)
            log.warning("WAL partition goes on after a halt", partition=partition)
        last = outcome.last_applied
        if last is not None:
            self._last_applied_ms[partition] = next(
                message.timestamp_ms for message in reversed(messages) if message.offset == last
            )
            announce = False
            target = self._catch_up_to.get(partition)
            if target is not None and last + 1 >= target:
                del self._catch_up_to[partition]
                announce = True
            self._loop.call_soon_threadsafe(self._after_batch, partition, outcome.actions, announce, last)
        if halt is not None:
            self._loop.call_soon_threadsafe(self._on_halted, partition)
        return halt

    def assigned(self, partition: int, high_watermark: int) -> None:
        applied = self.applied_offset(partition)
        caught_up = high_watermark == 0 or (applied is not None and applied + 1 >= high_watermark)
        if not caught_up:
            self._catch_up_to[partition] = high_watermark
        self._loop.call_soon_threadsafe(self._on_assigned, partition, caught_up)

    def reached_end(self, partition: int) -> None:
        # The consumer read everything committed (read_committed stops at the last
        # stable offset). Transaction markers take offsets but are never delivered, so
        # "last record + 1 >= high watermark" alone may never hold after a transaction.
        if self._catch_up_to.pop(partition, None) is not None:
            self._loop.call_soon_threadsafe(self._caught_up, partition)

    def revoked(self, partition: int) -> None:
        self._catch_up_to.pop(partition, None)
        if partition in self._halted:
            self._halted.discard(partition)
            clear_halt(partition)
        self._loop.call_soon_threadsafe(self._on_revoked, partition)

    # -- any thread (metrics scrapes) ----------------------------------------------------

    def assigned_partitions(self) -> set[int]:
        """The partitions this process applies now (a copy; safe from any thread)."""
        return self._assigned.copy()

    def last_applied_ms(self, partition: int) -> int | None:
        """The Kafka timestamp of the last record applied to ``partition`` by this process."""
        return self._last_applied_ms.get(partition)

    # -- event loop -------------------------------------------------------------------

    def leader_of(self, partition: int) -> PartitionLeader | None:
        return self._leaders.get(partition)

    @property
    def leading(self) -> list[int]:
        return sorted(self._leaders)

    def leading_epochs(self) -> dict[int, int]:
        """{partition: epoch} of every partition this process leads."""
        return dict(self._leading_epochs)

    def _on_assigned(self, partition: int, caught_up: bool) -> None:
        self._assigned.add(partition)
        if caught_up:
            self._announce(partition)

    def _caught_up(self, partition: int) -> None:
        if partition in self._assigned:
            self._announce(partition)

    def _on_halted(self, partition: int) -> None:
        # Nothing after the halt is applied: leading on that state would act on a past
        # the log has moved beyond. The consumer calls ``assigned`` again on a resume.
        self._give_up(partition)

    def _on_revoked(self, partition: int) -> None:
        self._give_up(partition)

    def _give_up(self, partition: int) -> None:
        """No longer ours to lead (revoked, or halted): stop leading and announcing it."""
        self._assigned.discard(partition)
        self._announced.pop(partition, None)
        self._announce_delay.pop(partition, None)
        for tasks in (self._announcing, self._preparing):
            task = tasks.pop(partition, None)
            if task is not None:
                task.cancel()
        self._unprepared.discard(partition)
        self._stop_leader(partition)

    async def wait_applied(self, partition: int, offset: int, timeout: float) -> bool:
        """Wait until this process applied ``offset`` of ``partition``; False on timeout
        (the partition may be consumed by another engine process)."""
        if self._applied.get(partition, -1) >= offset:
            return True
        future: asyncio.Future[None] = self._loop.create_future()
        waiters = self._applied_waiters.setdefault(partition, [])
        entry = (offset, future)
        waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            if entry in waiters:
                waiters.remove(entry)

    def _wake_applied(self, partition: int, last: int) -> None:
        self._applied[partition] = max(last, self._applied.get(partition, -1))
        for offset, future in self._applied_waiters.get(partition, ()):
            if offset <= last and not future.done():
                future.set_result(None)

    def _after_batch(self, partition: int, actions: list[Action], announce: bool, last: int) -> None:
        self._wake_applied(partition, last)
        for action in actions:
            if isinstance(action, BecameLeader):
                self._on_became_leader(action)
            elif isinstance(action, LostLeadership):
                if action.node_id == self._node_name:
                    self._stop_leader(action.partition)
            elif isinstance(action, RespondToIngress):
                if self._respond is not None:
                    self._respond(action)
            else:
                leader = self._leaders.get(partition)
                if leader is not None:
                    leader.handle(action)
        if announce and partition in self._assigned:
            self._announce(partition)

    def _on_became_leader(self, action: BecameLeader) -> None:
        partition = action.partition
        self._stop_leader(partition)
        if partition not in self._assigned:
            return
        announced = self._announced.get(partition)
        if action.node_id != self._node_name or announced != action.epoch:
            if announced is not None and action.epoch >= announced:
                # Someone else's (a late announcement of a process that lost the partition)
                # or an old one of ours holds the epoch ours would get: ours cannot win.
                # (No announcement yet: catching up, replaying history; nothing to do.)
                log.info("partition announced by a process that is not assigned it; announcing again",
                         partition=partition, epoch=action.epoch, announced_by=action.node_id)
                self._announce(partition, backoff=True)
            return
        task = self._announcing.pop(partition, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._announce_delay.pop(partition, None)
        leader = self._leader_factory(action.partition, action.epoch)
        self._leaders[action.partition] = leader
        self._leading_epochs[action.partition] = action.epoch
        metrics.LEADER.labels(str(action.partition)).set(1)
        leader.start()
        self._leading_changed()
        if partition in self._unprepared and partition not in self._preparing:
            self._preparing[partition] = self._loop.create_task(
                self._prepare_then_announce(partition), name=f"prepare-{partition}"
            )

    def _stop_leader(self, partition: int) -> None:
        leader = self._leaders.pop(partition, None)
        if leader is not None:
            self._leading_epochs.pop(partition, None)
            metrics.LEADER.labels(str(partition)).set(0)
            self._loop.create_task(leader.stop())
            self._leading_changed()

    def _leading_changed(self) -> None:
        if self._on_leading_changed is not None:
            self._on_leading_changed(dict(self._leading_epochs))

    async def _prepare_then_announce(self, partition: int) -> None:
        """Retry ``before_announce`` while leading without it, then announce a new epoch
        (whose leader has what it prepared: the egress producer fenced in before it)."""
        assert self._before_announce is not None
        delay = _REANNOUNCE_FIRST_S
        try:
            while partition in self._leaders:
                await asyncio.sleep(delay)
                try:
                    await asyncio.wait_for(self._before_announce(partition), _BEFORE_ANNOUNCE_TIMEOUT_S)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - retried while leading
                    delay = min(delay * 2, _PREPARE_MAX_S)
                    log.warning("preparing leadership failed again; retrying", partition=partition,
                                error=str(exc) or type(exc).__name__, retry_in_s=delay)
                    continue
                self._unprepared.discard(partition)
                if partition in self._assigned:
                    log.info("leadership prepared; announcing a new epoch with Kafka egress", partition=partition)
                    self._announce(partition, prepared=True)
                return
        finally:
            if self._preparing.get(partition) is asyncio.current_task():
                del self._preparing[partition]

    def _announce(self, partition: int, *, backoff: bool = False, prepared: bool = False) -> None:
        """(Re)start announcing leadership of ``partition``; retried until it is applied
        or the partition is revoked (module docstring)."""
        previous = self._announcing.pop(partition, None)
        if previous is not None:
            previous.cancel()
        delay = self._announce_delay.get(partition, _REANNOUNCE_FIRST_S) if backoff else 0.0
        if backoff:
            self._announce_delay[partition] = min(max(delay * 2, _REANNOUNCE_FIRST_S), _RETRY_MAX_S)
        self._announcing[partition] = self._loop.create_task(
            self._announce_until_appended(partition, delay, prepared), name=f"announce-{partition}"
        )

    async def _announce_until_appended(self, partition: int, delay: float, prepared: bool) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self._before_announce is not None and not prepared:
            try:
                await asyncio.wait_for(self._before_announce(partition), _BEFORE_ANNOUNCE_TIMEOUT_S)
                self._unprepared.discard(partition)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - leadership goes on without egress
                self._unprepared.add(partition)
                log.error("preparing leadership failed; leading without Kafka egress in this epoch, retrying",
                          partition=partition, error=str(exc) or type(exc).__name__)
        retry = _RETRY_FIRST_S
        while partition in self._assigned:
            # Read at each try: what was applied meanwhile (another announcement) counts.
            epoch = self.reader.read(partition, lambda t: t.fsm.current_epoch()) + 1
            self._announced[partition] = epoch
            log.info("announcing leadership", partition=partition, epoch=epoch)
            try:
                await self._appender.append(partition, AnnounceLeader(epoch, self._node_name, partition))
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried while the partition is ours
                log.warning("leadership announcement failed; retrying", partition=partition, epoch=epoch,
                            error=str(exc) or type(exc).__name__, retry_in_s=retry)
            await asyncio.sleep(retry)
            retry = min(retry * 2, _RETRY_MAX_S)

    async def stop(self) -> None:
        """Stop every leader (shutdown)."""
        for tasks in (self._announcing, self._preparing):
            for task in tasks.values():
                task.cancel()
            tasks.clear()
        leaders = list(self._leaders.values())
        self._leaders.clear()
        await asyncio.gather(*(leader.stop() for leader in leaders), return_exceptions=True)
