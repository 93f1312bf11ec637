"""A partition leader superseded inside its own process: its attempts must not write as the successor.

The invoker's records reach the WAL through the process's shared ``emit``
(``engine/node.py``), which asks for the partition's leader *when it writes*. A leader
stopped after its successor was installed (``PartitionProcessors._on_became_leader``
stops the old one in a task and starts the new one at once) may still have an attempt
running; that attempt must not get the successor's epoch stamped on its records, or
the fencing lets them through and they interleave with the successor's own attempt of
the same invocation (seen in the two-engine takeover test as "journal append beyond
the end of the journal" and duplicate-index appends).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from engine.errors import LeadershipLost
from engine.ids import InvocationId, InvocationUuid, PartitionKey
from restate_protocol import MessageType, pb
from engine.invoker.task import AttemptOutcome, InvocationTask, OutcomeKind
from engine.partition.leader.leader import PartitionLeader
from engine.partition.state_reader import InvocationTaskData
from restate_protocol import JournalEntry
from engine.wal import codec
from engine.wal import records as r

INVOCATION = InvocationId(PartitionKey(7), InvocationUuid.derive("handover-test", "x"))
INPUT = JournalEntry(MessageType.INPUT_COMMAND, pb.InputCommandMessage().SerializeToString())
TARGET = r.InvocationTarget("SeqLog", "append", "k", r.ServiceKind.VIRTUAL_OBJECT, r.HandlerKind.EXCLUSIVE)


class _Appender:
    topic = "test.wal"
    partition_count = 1

    def __init__(self) -> None:
        self.records: list[tuple[r.Record, int | None]] = []

    def submit(self, partition: int, record: r.Record, *, epoch: int | None = None,
               dedup_id: r.DedupId | None = None) -> asyncio.Future[int]:
        self.records.append((record, epoch))
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_result(len(self.records) - 1)
        return future

    def submit_payload(self, partition: int, payload: bytes, *, records: int = 1) -> asyncio.Future[int]:
        envelope = codec.decode(payload)
        inner = envelope.record.records if isinstance(envelope.record, r.RecordBatch) else (envelope.record,)
        futures = [self.submit(partition, record, epoch=envelope.epoch) for record in inner]
        return futures[-1]

    async def append(self, partition: int, record: r.Record, *, epoch: int | None = None,
                     dedup_id: r.DedupId | None = None) -> int:
        return await self.submit(partition, record, epoch=epoch, dedup_id=dedup_id)


def _append(index: int) -> r.JournalAppend:
    return r.JournalAppend(INVOCATION, index, 0x0400 + index, b"")


class _Invoker:
    """One attempt: an append, a wait (the leadership changes here), an append, the end."""

    def __init__(self, emit: Any) -> None:
        self.emit = emit
        self.between = asyncio.Event()
        self.resume = asyncio.Event()
        self.cancelled = 0

    async def invoke(self, task: InvocationTask) -> AttemptOutcome:
        try:
            await self.emit(_append(1))
            self.between.set()
            await self.resume.wait()
            await self.emit(_append(2))
            await self.emit(r.InvocationEnded(INVOCATION, r.Value(b"done")))
        except (asyncio.CancelledError, LeadershipLost):
            self.cancelled += 1
            raise
        return AttemptOutcome(OutcomeKind.ENDED, result=r.Value(b"done"), new_entries=2)


def _leader(epoch: int, appender: _Appender, invoker: _Invoker) -> PartitionLeader:
    leader = PartitionLeader(
        partition=0, epoch=epoch, node_name="test", appender=appender, invoker=invoker,  # type: ignore[arg-type]
        metadata=None, reader=None,  # type: ignore[arg-type]
    )
    data = InvocationTaskData(
        invocation_id=INVOCATION, target=TARGET, headers=(), idempotency_key=None, deployment_id=None,
        protocol_version=None, journal=(INPUT,), commands=1, state=(), partial_state=False, attempt=0,
        retries_since_last_entry=0, last_failure=None, modified_at_ms=0,
    )
    deployment = SimpleNamespace(uri="http://endpoint.invalid", additional_headers={}, protocol_type=None)
    settings = SimpleNamespace(inactivity_timeout=timedelta(minutes=1), abort_timeout=timedelta(minutes=1),
                               enable_lazy_state=False)

    def choose(_: InvocationTaskData) -> tuple[Any, Any, int, None]:
        return deployment, settings, 5, None

    executor: Any = leader._executor
    executor._load_task = lambda invocation_id: data
    executor._choose_deployment = choose
    return leader


def _run(scenario: Any) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 10))


def test_an_attempt_of_a_superseded_leader_cannot_write_with_the_successor_epoch() -> None:
    async def scenario() -> tuple[_Appender, _Invoker]:
        appender = _Appender()
        leaders: dict[int, PartitionLeader] = {}

        async def emit(record: r.Record) -> None:  # what engine/node.py's emit does
            leader = leaders.get(0)
            if leader is None:
                raise LeadershipLost("partition leadership lost during the attempt")
            await leader.append_own(record)

        invoker = _Invoker(emit)
        old = leaders[0] = _leader(1, appender, invoker)
        old._executor.start(INVOCATION)
        await invoker.between.wait()
        # The successor is installed while the old leader's attempt still runs (its
        # stop() has not been scheduled or has not got to the executor yet).
        leaders[0] = _leader(2, appender, invoker)
        invoker.resume.set()
        for _ in range(100):
            if not len(old._executor):
                break
            await asyncio.sleep(0.01)
        return appender, invoker

    appender, invoker = _run(scenario)
    assert [(type(rec).__name__, epoch) for rec, epoch in appender.records] == [("JournalAppend", 1)], (
        "the stale attempt's later records must not be stamped with the successor's epoch"
    )
    assert invoker.cancelled == 1


def test_the_own_leaders_attempt_writes_and_stop_cancels_attempts_first() -> None:
    async def scenario() -> tuple[_Appender, _Invoker, _Invoker]:
        appender = _Appender()
        leaders: dict[int, PartitionLeader] = {}

        async def emit(record: r.Record) -> None:
            await leaders[0].append_own(record)

        finishing = _Invoker(emit)
        leader = leaders[0] = _leader(3, appender, finishing)
        leader._executor.start(INVOCATION)
        await finishing.between.wait()
        finishing.resume.set()
        for _ in range(100):
            if not len(leader._executor):
                break
            await asyncio.sleep(0.01)

        stopped = _Invoker(emit)
        leader = leaders[0] = _leader(4, appender, stopped)

        async def slow_to_stop() -> None:  # like a timer service busy appending
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.sleep(0.05)

        leader._tasks.append(asyncio.create_task(slow_to_stop()))
        leader._executor.start(INVOCATION)
        await stopped.between.wait()
        stopping = asyncio.create_task(leader.stop())
        stopped.resume.set()  # the attempt could go on right now: stop() must get there first
        await stopping
        return appender, finishing, stopped

    appender, finishing, stopped = _run(scenario)
    assert [(type(rec).__name__, epoch) for rec, epoch in appender.records] == [
        ("JournalAppend", 3), ("JournalAppend", 3), ("InvocationEnded", 3), ("JournalAppend", 4),
    ]
    assert (finishing.cancelled, stopped.cancelled) == (0, 1)
