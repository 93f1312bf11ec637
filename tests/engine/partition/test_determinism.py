"""Applying one record sequence to two fresh environments gives identical bytes and actions."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.partition.actions import Action
from engine.storage.invocation_status import StatusKind
from engine.wal import records as r
from tests.engine.partition.harness import (
    T0,
    Partition,
    command,
    invoke,
    new_id,
    object_target,
    pb,
    service_target,
)

TARGETS = [
    service_target(),
    object_target("a"),
    object_target("a"),
    object_target("a", handler="get", kind=r.HandlerKind.SHARED),
    object_target("b"),
]
INVOKES = [invoke(target, n) for n, target in enumerate(TARGETS)]
IDS = [record.invocation_id for record in INVOKES]

ids = st.sampled_from(IDS)
small = st.integers(min_value=0, max_value=6)
notification_ids = st.one_of(
    st.builds(r.CompletionId, small), st.just(r.SignalIndex(1)), st.just(r.SignalIndex(17))
)


def _journal_appends(iid_index: tuple[int, int]) -> st.SearchStrategy[r.Record]:
    inv, index = IDS[iid_index[0]], iid_index[1]
    messages = [
        pb.SetStateCommandMessage(key=b"k", value=pb.Value(content=b"v")),
        pb.ClearAllStateCommandMessage(),
        pb.GetLazyStateCommandMessage(key=b"k", result_completion_id=index),
        pb.RunCommandMessage(result_completion_id=index),
        pb.SleepCommandMessage(wake_up_time=T0 + 50, result_completion_id=index),
        pb.CallCommandMessage(
            service_name="Counter",
            handler_name="add",
            key="a",
            invocation_id_notification_idx=index,
            result_completion_id=index + 10,
        ),
        pb.OneWayCallCommandMessage(
            service_name="Greeter",
            handler_name="greet",
            invoke_time=T0 + 20,
            invocation_id_notification_idx=index,
        ),
        pb.OutputCommandMessage(value=pb.Value(content=b"out")),
    ]
    return st.sampled_from([command(m, inv, index) for m in messages])


records: st.SearchStrategy[r.Record] = st.one_of(
    st.sampled_from(INVOKES),
    st.tuples(st.integers(0, len(IDS) - 1), small).flatmap(_journal_appends),
    st.builds(
        r.InvocationSuspended, ids, st.lists(notification_ids, min_size=1, max_size=2).map(tuple)
    ),
    st.builds(
        r.Notify,
        ids,
        notification_ids,
        st.sampled_from([r.Value(b"n"), r.Void(), r.Failure(1, "f")]),
    ),
    st.builds(r.InvocationEnded, ids, st.sampled_from([r.Value(b"e"), r.Failure(500, "x")])),
    st.builds(r.InvocationFailedAttempt, ids, st.just(500), st.just("f"), st.just(T0 + 30), small),
    st.builds(
        r.TimerFired,
        st.builds(
            r.TimerKey,
            st.sampled_from([T0 + 20, T0 + 30, T0 + 50]),
            ids,
            st.sampled_from(r.TimerKind),
            st.none() | small,
        ),
    ),
    st.builds(r.KillInvocation, ids),
    st.builds(r.CancelInvocation, ids),
    st.builds(r.OutboxTruncate, small),
    st.builds(r.AnnounceLeader, small, st.just("n"), st.just(0)),
)
envelopes = st.tuples(
    records, st.none() | small, st.none() | st.builds(r.DedupId, st.just("p"), small)
)


def _run(
    data_dir: Path, sequence: list[tuple[r.Record, int | None, r.DedupId | None]]
) -> tuple[object, list[Action]]:
    part = Partition(data_dir)
    try:
        actions: list[Action] = []
        for record, epoch, dedup_id in sequence:
            actions.extend(part.apply(record, epoch=epoch, dedup_id=dedup_id))
        _check_invariants(part)
        return part.dump(), actions
    finally:
        part.close()


def _check_invariants(part: Partition) -> None:
    """What must hold after any log: journals match their lengths, locks and inboxes agree."""
    with part.read() as t:
        for inv, status in t.status.scan():
            assert len(list(t.journal.entries(inv))) == status.journal_length
            if status.kind is StatusKind.INBOXED:
                assert status.target.key is not None
                holder = t.locks.holder(status.target.service, status.target.key)
                assert holder is not None and holder != inv
            if (
                status.kind is StatusKind.INVOKED
                and status.target.handler_kind is r.HandlerKind.EXCLUSIVE
            ):
                assert status.target.key is not None
                assert t.locks.holder(status.target.service, status.target.key) == inv
        for key in ("a", "b"):
            if t.inbox.entries("Counter", key):
                assert t.locks.holder("Counter", key) is not None


@settings(max_examples=40, deadline=None)
@given(st.lists(envelopes, min_size=1, max_size=25))
def test_same_log_same_state_and_actions(
    sequence: list[tuple[r.Record, int | None, r.DedupId | None]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first = _run(Path(tmp) / "one", sequence)
        second = _run(Path(tmp) / "two", sequence)
    assert first == second


def test_ids_in_the_vocabulary_are_distinct() -> None:
    assert len(set(IDS)) == len(IDS)
    assert new_id(TARGETS[1], 1) != new_id(TARGETS[2], 2)
