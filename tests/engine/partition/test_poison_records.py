"""A WAL record whose apply raises fails its invocation; the partition goes on.

Batches are applied as the processor applies them (``BatchApplier``: encoded WAL bytes,
one LMDB transaction, write-back status rows) against real LMDB files. On the code
before poison containment every one of these raised out of the apply, which stopped
the WAL consumer and with it the engine process, on every process in turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from engine.partition import state_machine
from engine.partition.actions import Action, RegisterTimer, RespondToIngress, SendOutbox
from engine.partition.batch import BatchApplier, BatchOutcome
from engine.partition.consumer import WalMessage
from engine.partition.halt import HaltReason
from engine.partition.state_machine import DEFAULT_OPTIONS
from engine.partition.state_machine.context import ApplyContext
from engine.storage.invocation_status import StatusKind
from engine.wal import codec
from engine.wal import records as r
from engine.wal.schema import CURRENT_VERSION
from tests.engine.partition.harness import T0, Partition, command, invoke, object_target, pb, service_target

BIG = 2**63  # a u64 the SDK may send (sleep(Long.MAX_VALUE) bugs) that no i64 layout holds


class Wal:
    """Partition 0 of 1, fed encoded WAL records in batches through the processor's applier."""

    def __init__(self, data_dir: Path) -> None:
        self.part = Partition(data_dir)
        self.applier = BatchApplier(
            self.part.env.env, self.part.handles, partition_count=1, options=DEFAULT_OPTIONS,
            growth=self.part.env.growth,
        )
        self.offset = 0

    def message(self, record: r.Record, *, raw: bytes | None = None) -> WalMessage:
        value = codec.encode(record) if raw is None else raw
        message = WalMessage(0, self.offset, T0 + self.offset, value)
        self.offset += 1
        return message

    def apply(self, *records: r.Record, leading: bool = False) -> BatchOutcome:
        return self.applier.apply(0, [self.message(rec) for rec in records], load_task_data=leading)

    def applied(self) -> int | None:
        with self.part.read() as t:
            return t.fsm.applied_offset()


@pytest.fixture
def wal(tmp_path: Path) -> Iterator[Wal]:
    w = Wal(tmp_path / "data")
    try:
        yield w
    finally:
        w.part.close()


def _answers(actions: list[Action]) -> dict[str, r.OutputResult]:
    return {a.request_id: a.result for a in actions if isinstance(a, RespondToIngress)}


def _poison_count() -> float:
    return REGISTRY.get_sample_value("logstrate_wal_poison_records_total", {"partition": "0"}) or 0.0


def test_sleep_beyond_i64_fails_its_invocation_and_the_batch_goes_on(wal: Wal) -> None:
    sleeper, other = invoke(service_target(), 1), invoke(service_target(), 2)
    sid = sleeper.invocation_id
    sleep = command(pb.SleepCommandMessage(wake_up_time=BIG, result_completion_id=1), sid, 1)
    before = _poison_count()
    outcome = wal.apply(sleeper, sleep, other)
    assert outcome.halt is None and outcome.last_applied == 2
    assert wal.applied() == 2
    failure = _answers(outcome.actions)["req-1"]
    assert isinstance(failure, r.Failure) and failure.code == 500
    assert "JournalAppend" in failure.message and "offset 1" in failure.message and "struct.error" in failure.message
    status = wal.part.status(sid)
    assert status is not None and status.kind is StatusKind.COMPLETED and status.result == failure
    # Nothing of the failed record stays: no SLEEP timer row, no timer registered.
    with wal.part.read() as t:
        assert [tk for tk in t.timers.scan() if tk.invocation_id == sid and tk.kind is r.TimerKind.SLEEP] == []
    assert not [a for a in outcome.actions if isinstance(a, RegisterTimer) and a.timer.kind is r.TimerKind.SLEEP]
    # The record after it in the same batch was applied: the other invocation runs.
    other_status = wal.part.status(other.invocation_id)
    assert other_status is not None and other_status.kind is StatusKind.INVOKED
    assert _poison_count() == before + 1
    # The partition goes on with later batches too.
    later = wal.apply(invoke(service_target(), 3))
    assert later.halt is None and wal.applied() == 3


def test_one_way_call_beyond_i64_fails_the_caller_and_allocates_no_outbox_sequence(wal: Wal) -> None:
    caller = invoke(service_target(), 1)
    cid = caller.invocation_id
    send = pb.OneWayCallCommandMessage(
        service_name="Mail", handler_name="send", invocation_id_notification_idx=1, invoke_time=BIG
    )
    call = pb.CallCommandMessage(
        service_name="Hotel", handler_name="book", invocation_id_notification_idx=1, result_completion_id=2
    )
    other = invoke(service_target(), 2)
    outcome = wal.apply(caller, command(send, cid, 1), other, command(call, other.invocation_id, 1))
    assert outcome.halt is None and wal.applied() == 3
    failure = _answers(outcome.actions)["req-1"]
    assert isinstance(failure, r.Failure) and failure.code == 500 and "WalCodecError" in failure.message
    # The failed send's outbox sequence was rolled back with it: the call that follows
    # gets the first one (0), and only its Invoke is in the outbox.
    sends = [a for a in outcome.actions if isinstance(a, SendOutbox)]
    assert [(a.sequence, type(a.record).__name__) for a in sends] == [(0, "Invoke")]
    with wal.part.read() as t:
        rows = list(t.outbox.scan())
    assert len(rows) == 1 and isinstance(rows[0].record, r.Invoke) and rows[0].record.target.service == "Hotel"


def _faulty(monkeypatch: pytest.MonkeyPatch, record_type: type[Any], handler: Callable[[ApplyContext, Any], None]) -> None:
    monkeypatch.setitem(state_machine._HANDLERS, record_type, handler)


def test_missing_handler_fails_the_invocation(wal: Wal, monkeypatch: pytest.MonkeyPatch) -> None:
    target = object_target("k")
    first = invoke(target, 1)
    wal.apply(first)
    monkeypatch.delitem(state_machine._HANDLERS, r.PauseInvocation)
    outcome = wal.apply(r.PauseInvocation(first.invocation_id), invoke(target, 2))
    assert outcome.halt is None and wal.applied() == 2
    failure = _answers(outcome.actions)["req-1"]
    assert isinstance(failure, r.Failure) and "KeyError" in failure.message and "PauseInvocation" in failure.message
    # The key's lock passed to the next invocation, which was queued behind it.
    second = wal.part.status(invoke(target, 2).invocation_id)
    assert second is not None and second.kind is StatusKind.INVOKED


def test_a_failed_record_leaves_no_writes_cached_rows_or_actions(wal: Wal, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failing record wrote a status row (kept by the write-back cache, not yet in
    LMDB), a state row and an outbox sequence, and emitted an action, before it raised:
    none of it may survive, for it or for the records after it in the batch."""
    target = object_target("k")
    first = invoke(target, 1)
    iid = first.invocation_id
    wal.apply(first)

    def half_applied(ctx: ApplyContext, record: r.PauseInvocation) -> None:
        status = ctx.tables.status.get(record.invocation_id)
        assert status is not None
        ctx.tables.status.put(record.invocation_id, status.touched(ctx.now_ms, attempt=99))
        ctx.tables.state.put("Counter", "k", b"leaked", b"1")
        ctx.tables.fsm.allocate_outbox_sequence()
        ctx.emit(RegisterTimer(r.TimerKey(1, record.invocation_id, r.TimerKind.RETRY)))
        raise RuntimeError("half way through")

    _faulty(monkeypatch, r.PauseInvocation, half_applied)
    seen: list[int] = []

    def reads_status(ctx: ApplyContext, record: r.ResumeInvocation) -> None:
        # Runs after the failed record in the same batch: reads through the same cache.
        status = ctx.tables.status.get(record.invocation_id)
        assert status is not None
        seen.append(status.attempt)

    _faulty(monkeypatch, r.ResumeInvocation, reads_status)
    call = pb.CallCommandMessage(service_name="Hotel", handler_name="b", invocation_id_notification_idx=1,
                                 result_completion_id=2)
    other = invoke(service_target(), 2)
    outcome = wal.apply(r.PauseInvocation(iid), r.ResumeInvocation(iid), other, command(call, other.invocation_id, 1))
    assert seen == [0]  # the cached attempt=99 row was dropped with the transaction
    status = wal.part.status(iid)
    assert status is not None and status.kind is StatusKind.COMPLETED and status.attempt == 0
    assert isinstance(status.result, r.Failure) and "RuntimeError: half way through" in status.result.message
    with wal.part.read() as t:
        assert t.state.get("Counter", "k", b"leaked") is None
    assert not [a for a in outcome.actions if isinstance(a, RegisterTimer) and a.timer.kind is r.TimerKind.RETRY]
    assert [a.sequence for a in outcome.actions if isinstance(a, SendOutbox)] == [0]


def test_when_failing_the_invocation_raises_too_the_record_is_skipped(wal: Wal, monkeypatch: pytest.MonkeyPatch) -> None:
    first = invoke(service_target(), 1)
    wal.apply(first)

    def broken(ctx: ApplyContext, record: r.KillInvocation) -> None:
        raise RuntimeError("broken")

    _faulty(monkeypatch, r.KillInvocation, broken)
    monkeypatch.setattr(state_machine, "fail_poisoned", lambda ctx, record, description: broken(ctx, record))
    outcome = wal.apply(r.KillInvocation(first.invocation_id), invoke(service_target(), 2))
    assert outcome.halt is None and wal.applied() == 2
    status = wal.part.status(first.invocation_id)
    assert status is not None and status.kind is StatusKind.INVOKED  # skipped: unchanged
    assert wal.part.status(invoke(service_target(), 2).invocation_id) is not None


def test_a_poison_record_inside_a_record_batch_fails_only_its_invocation(wal: Wal) -> None:
    a, b = invoke(service_target(), 1), invoke(service_target(), 2)
    wal.apply(a, b)
    sleep = command(pb.SleepCommandMessage(wake_up_time=BIG, result_completion_id=1), a.invocation_id, 1)
    end_b = r.InvocationEnded(b.invocation_id, r.Value(b'"ok"'))
    outcome = wal.apply(r.RecordBatch((sleep, end_b)))
    answers = _answers(outcome.actions)
    assert isinstance(answers["req-1"], r.Failure) and answers["req-2"] == r.Value(b'"ok"')


def test_outcome_is_the_same_on_every_replica(tmp_path: Path) -> None:
    """Two replicas, one applying the log in one batch and one record by record, end
    with the same bytes in every table."""
    sleeper, other = invoke(service_target(), 1), invoke(object_target("k"), 2)
    records: list[r.Record] = [
        sleeper,
        command(pb.SleepCommandMessage(wake_up_time=BIG, result_completion_id=1), sleeper.invocation_id, 1),
        other,
        command(pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1")), other.invocation_id, 1),
        r.InvocationEnded(other.invocation_id, r.Value(b"1")),
    ]
    one, two = Wal(tmp_path / "one"), Wal(tmp_path / "two")
    try:
        one.apply(*records)
        for record in records:
            two.apply(record)
        assert one.part.dump() == two.part.dump()
    finally:
        one.part.close()
        two.part.close()


def test_a_newer_schema_version_halts_at_the_record_without_marking_it_applied(wal: Wal) -> None:
    first, later = invoke(service_target(), 1), invoke(service_target(), 2)
    newer = bytearray(codec.encode(later))
    newer[1] = CURRENT_VERSION + 1
    messages = [wal.message(first), wal.message(later, raw=bytes(newer)), wal.message(invoke(service_target(), 3))]
    outcome = wal.applier.apply(0, messages, load_task_data=False)
    assert outcome.halt is not None and outcome.halt.reason is HaltReason.WAL_SCHEMA_TOO_NEW
    assert outcome.halt.offset == 1 and "upgrade the engine" in outcome.halt.message
    assert outcome.last_applied == 0 and wal.applied() == 0
    assert wal.part.status(first.invocation_id) is not None
    assert wal.part.status(invoke(service_target(), 3).invocation_id) is None


def test_a_corrupt_record_is_still_skipped(wal: Wal) -> None:
    messages = [wal.message(invoke(service_target(), 1), raw=b"\x00garbage"), wal.message(invoke(service_target(), 2))]
    outcome = wal.applier.apply(0, messages, load_task_data=False)
    assert outcome.halt is None and wal.applied() == 1


def test_a_record_that_raises_even_when_skipped_halts_the_partition(
    wal: Wal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing the offset itself fails (a corrupt row, say): nothing is left to try."""
    from engine.storage.codec import StorageCorruptError
    from engine.storage.fsm import FsmTable

    original = FsmTable.set_applied_offset

    def corrupt_at_1(self: FsmTable, offset: int) -> None:
        if offset == 1:
            raise StorageCorruptError("fsm row unreadable")
        original(self, offset)

    monkeypatch.setattr(FsmTable, "set_applied_offset", corrupt_at_1)
    outcome = wal.apply(invoke(service_target(), 1), invoke(service_target(), 2))
    assert outcome.halt is not None and outcome.halt.reason is HaltReason.STORAGE_ERROR and outcome.halt.offset == 1
    assert "neither be applied nor skipped" in outcome.halt.message and "data dir aside" in outcome.halt.message
    assert outcome.last_applied is None and wal.applied() is None
