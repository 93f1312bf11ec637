"""Table ``invocation_status``: every field round-trips; scans filter by kind and partition."""

from __future__ import annotations

import dataclasses
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.ids import DeploymentId
from engine.storage import invocation_status as status_module
from engine.storage.codec import Writer
from engine.storage.environment import StorageEnvironment
from engine.storage.invocation_status import (
    InvocationStatus,
    LastFailure,
    StatusKind,
    decode_status,
    encode_status,
)
from engine.storage.tables import StorageTables, TableHandles
from engine.wal import records as r
from tests.engine.storage.helpers import iid, read, write
from tests.engine.wal import strategies as ws

Storage = tuple[StorageEnvironment, TableHandles]

TARGET = r.InvocationTarget(
    "Counter", "add", "k1", r.ServiceKind.VIRTUAL_OBJECT, r.HandlerKind.EXCLUSIVE
)

statuses = st.builds(
    InvocationStatus,
    kind=st.sampled_from(StatusKind),
    target=ws.targets,
    argument=ws.blobs,
    headers=ws.headers,
    source=ws.sources,
    response_sinks=st.lists(ws.sinks.filter(lambda s: s is not None), max_size=3).map(tuple),
    idempotency_key=st.none() | ws.text,
    execute_at_ms=st.none() | ws.i64,
    created_at_ms=ws.i64,
    modified_at_ms=ws.i64,
    journal_length=ws.u64,
    commands=ws.u64,
    attempt=ws.u64,
    retries_since_last_entry=ws.u64,
    last_failure=st.none()
    | st.builds(LastFailure, ws.u64, ws.text, ws.i64, st.none() | ws.u64, st.none() | ws.text, st.none() | ws.u64),
    deployment_id=st.none() | ws.deployment_ids,
    protocol_version=st.none() | st.integers(5, 7),
    waiting_for=st.lists(ws.notification_ids, max_size=3).map(tuple),
    inbox_sequence=st.none() | ws.u64,
    result=st.none() | ws.values | ws.failures,
    cleanup_at_ms=st.none() | ws.i64,
    completion_retention_ms=st.none() | ws.u64,
    journal_retention_ms=st.none() | ws.u64,
    ordering_key=st.none() | ws.text,
    restarted_from=st.none() | ws.invocation_ids,
    random_seed_from=st.none() | ws.invocation_ids,
)


@given(statuses)
def test_encoding_round_trips(status: InvocationStatus) -> None:
    assert decode_status(encode_status(status)) == status


def _ordering_key_tail(status: InvocationStatus) -> int:
    key = status.ordering_key
    return 1 if key is None else 1 + 4 + len(key.encode())


def _restart_tail(status: InvocationStatus) -> int:
    return sum(1 if v is None else 25 for v in (status.restarted_from, status.random_seed_from))


def _v4_bytes(status: InvocationStatus) -> bytes:
    """The value a version 4 engine wrote: no restart fields at the end."""
    v5 = encode_status(status)
    return b"\x04" + v5[1 : len(v5) - _restart_tail(status)]


def _without_restart(status: InvocationStatus) -> InvocationStatus:
    return dataclasses.replace(status, restarted_from=None, random_seed_from=None)


def _v3_bytes(status: InvocationStatus) -> bytes:
    """The value a version 3 engine wrote: a last failure without its related command."""

    def v3_last_failure(writer: Writer, value: LastFailure) -> None:
        writer.int_(value.code)
        writer.str_(value.message)
        writer.int_(value.retry_at_ms)

    with mock.patch.object(status_module, "_VERSION", 3), mock.patch.object(
        status_module, "_write_last_failure", v3_last_failure
    ):
        v3 = encode_status(_without_restart(status))
    return v3[: len(v3) - _restart_tail(_without_restart(status))]


def _without_related_command(status: InvocationStatus) -> InvocationStatus:
    failure = status.last_failure
    if failure is None:
        return status
    return dataclasses.replace(status, last_failure=LastFailure(failure.code, failure.message, failure.retry_at_ms))


@given(statuses)
def test_version_3_and_4_values_still_decode(status: InvocationStatus) -> None:
    assert decode_status(_v4_bytes(status)) == _without_restart(status)
    assert _v3_bytes(status)[0] == 3
    assert decode_status(_v3_bytes(status)) == _without_restart(_without_related_command(status))


@given(statuses)
def test_version_1_and_2_values_still_decode(status: InvocationStatus) -> None:
    # Version 2 had no ordering key and version 1 no retention fields either: the same
    # bytes without them, under their own version byte.
    status = _without_restart(_without_related_command(status))
    v3 = _v3_bytes(status)
    v2 = b"\x02" + v3[1 : len(v3) - _ordering_key_tail(status)]
    without_key = dataclasses.replace(status, ordering_key=None)
    assert decode_status(v2) == without_key
    tail = sum(1 if v is None else 9 for v in (status.completion_retention_ms, status.journal_retention_ms))
    v1 = b"\x01" + v2[1 : len(v2) - tail]
    expected = dataclasses.replace(without_key, completion_retention_ms=None, journal_retention_ms=None)
    assert decode_status(v1) == expected


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=20)
@given(statuses)
def test_put_get_delete(storage: Storage, status: InvocationStatus) -> None:
    with write(storage) as t:
        t.status.put(iid(1), status)
    with read(storage) as t:
        assert t.status.get(iid(1)) == status
    with write(storage) as t:
        assert t.status.delete(iid(1))
        assert not t.status.delete(iid(1))
        assert t.status.get(iid(1)) is None


def test_scan_by_kind_stays_in_partition(storage: Storage) -> None:
    invoked = InvocationStatus(StatusKind.INVOKED, TARGET, b"1", deployment_id=DeploymentId(9))
    inboxed = InvocationStatus(StatusKind.INBOXED, TARGET, b"2", inbox_sequence=0)
    with write(storage, 0) as t:
        t.status.put(iid(1), invoked)
        t.status.put(iid(2), inboxed)
        t.status.put(iid(3), invoked)
    with write(storage, 1) as t:
        t.status.put(iid(4), invoked)
    with read(storage, 0) as t:
        assert [i for i, _ in t.status.scan(StatusKind.INVOKED)] == [iid(1), iid(3)]
        assert len(list(t.status.scan())) == 3
    with read(storage, 1) as t:
        assert [i for i, _ in t.status.scan()] == [iid(4)]


def test_touched_sets_modification_time() -> None:
    status = InvocationStatus(StatusKind.INVOKED, TARGET, b"", created_at_ms=5, modified_at_ms=5)
    changed = status.touched(9, attempt=2)
    assert (changed.modified_at_ms, changed.attempt, changed.created_at_ms) == (9, 2, 5)
    assert status.in_flight and not InvocationStatus(StatusKind.COMPLETED, TARGET, b"").in_flight


def test_write_back_writes_the_row_once_at_flush(storage: Storage) -> None:
    env, handles = storage
    first = InvocationStatus(StatusKind.INVOKED, TARGET, b"1", deployment_id=DeploymentId(9))
    last = first.touched(12, attempt=3)
    with env.env.begin(write=True) as txn:
        tables = StorageTables(txn, handles, write_back=True)
        t = tables.partition(0)
        with mock.patch.object(status_module, "encode_status", wraps=status_module.encode_status) as encode:
            t.status.put(iid(1), first)
            t.status.put(iid(1), last)
            t.status.put(iid(2), first)
            assert t.status.get(iid(1)) == last  # the transaction sees its own puts
            assert txn.get(t.status._key(iid(1)), db=handles.invocation_status) is None
            assert t.status.delete(iid(2))  # only pending, still "existed"
            tables.flush()
            assert encode.call_count == 1  # iid(1) once, iid(2) never
    with read(storage) as t:
        assert t.status.get(iid(1)) == last
        assert t.status.get(iid(2)) is None


def test_write_back_scan_sees_pending_puts(storage: Storage) -> None:
    env, handles = storage
    invoked = InvocationStatus(StatusKind.INVOKED, TARGET, b"1", deployment_id=DeploymentId(9))
    with env.env.begin(write=True) as txn:
        t = StorageTables(txn, handles, write_back=True).partition(0)
        t.status.put(iid(1), invoked)
        assert [i for i, _ in t.status.scan(StatusKind.INVOKED)] == [iid(1)]
