"""The value codec round-trips every WAL building block; keys sort and bound as promised."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.ids import DeploymentId, InvocationId
from engine.storage.codec import Reader, StorageCorruptError, Writer
from engine.storage.keys import (
    MAX_KEY_SIZE,
    bounded,
    object_component,
    ordered_i64,
    read_ordered_i64,
)
from engine.wal import records as r
from tests.engine.wal.strategies import (
    deployment_ids,
    headers,
    invocation_ids,
    notification_ids,
    notification_results,
    sources,
    targets,
)
from tests.engine.wal.strategies import sinks as maybe_sinks


@given(
    targets,
    headers,
    sources,
    invocation_ids,
    notification_ids,
    notification_results,
    deployment_ids,
)
def test_building_blocks_round_trip(
    target: r.InvocationTarget,
    hdrs: tuple[r.Header, ...],
    source: r.Source,
    iid: InvocationId,
    nid: r.NotificationId,
    result: r.NotificationResult,
    dep: DeploymentId,
) -> None:
    w = Writer(7)
    w.target(target)
    w.headers(hdrs)
    w.source(source)
    w.invocation_id(iid)
    w.notification_id(nid)
    w.result(result)
    w.deployment_id(dep)
    w.optional(None, w.int_)
    w.optional(-5, w.int_)
    rd = Reader(w.finish(), 7, "test")
    assert rd.target() == target
    assert rd.headers() == hdrs
    assert rd.source() == source
    assert rd.invocation_id() == iid
    assert rd.notification_id() == nid
    assert rd.result() == result
    assert rd.deployment_id() == dep
    assert rd.optional(rd.int_) is None
    assert rd.optional(rd.int_) == -5
    rd.done()


@given(maybe_sinks.filter(lambda s: s is not None))
def test_sinks_round_trip(sink: r.IngressSink | r.InvocationSink) -> None:
    w = Writer(1)
    w.sink(sink)
    rd = Reader(w.finish(), 1, "test")
    assert rd.sink() == sink
    rd.done()


def test_reader_rejects_wrong_version_truncation_and_leftovers() -> None:
    w = Writer(1)
    w.str_("hello")
    data = w.finish()
    with pytest.raises(StorageCorruptError, match="layout version 1"):
        Reader(data, 2, "test")
    with pytest.raises(StorageCorruptError, match="truncated"):
        Reader(data[:-1], 1, "test").str_()
    rd = Reader(data + b"x", 1, "test")
    rd.str_()
    with pytest.raises(StorageCorruptError, match="stray"):
        rd.done()


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=2, max_size=10))
def test_ordered_i64_sorts_numerically(values: list[int]) -> None:
    encoded = [ordered_i64(v) for v in values]
    assert [read_ordered_i64(e) for e in sorted(encoded)] == sorted(values)


def test_long_components_are_hashed_and_distinct() -> None:
    short = object_component("Svc", "k")
    long_a = object_component("Svc", "a" * 1000)
    long_b = object_component("Svc", "b" * 1000)
    assert short.startswith(b"\x00") and long_a.startswith(b"\x01")
    assert len(long_a) == 33 and long_a != long_b
    assert bounded(b"x" * 10, 10) != bounded(b"x" * 11, 10)
    assert len(long_a) < MAX_KEY_SIZE
