"""Pure ingestion rules: the frozen id and dedup formulas, headers, and the Invoke shape."""

from __future__ import annotations

import pytest

from engine.ids import SubscriptionId
from engine.wal.records import DedupId, HandlerKind, Header, ServiceKind, SubscriptionSource
from subscriptions.ingest import (
    DEAD_LETTER_HEADER,
    SinkTarget,
    SourceIdentity,
    SourceRecord,
    build_invoke,
    dedup_id,
    dedup_producer,
    dedup_producer_v2,
    invocation_headers,
    ordering_key,
)

GOLDEN_OBJECT_ID = "inv_12q15azPv94v03V73h0bqxu76tx4hHki6f"
GOLDEN_ORDERED_ID = "inv_19sMdT9UNL7r03V73h0bqxu76tx4hHki6f"
SUB = SubscriptionId.parse("sub_1" + "0" * 21 + "1")
OBJECT = SinkTarget("SeqLog", "append", ServiceKind.VIRTUAL_OBJECT, HandlerKind.EXCLUSIVE)
SERVICE = SinkTarget("Tally", "count", ServiceKind.SERVICE, None)
WORKFLOW_RUN = SinkTarget("Payment", "run", ServiceKind.WORKFLOW, HandlerKind.WORKFLOW)


def record(offset: int = 7, key: bytes | None = b"alice") -> SourceRecord:
    return SourceRecord("orders", 2, offset, key, b'{"n":1}', 1_700_000_000_000, (("trace", b"abc"), ("bin", b"\xff")))


def test_dedup_formula_is_frozen() -> None:
    # Golden values: WAL partitions store these producer names. NEVER CHANGE.
    assert dedup_producer("my-group", "orders", 2) == "kafka/my-group/orders/2"
    assert dedup_id("my-group", record(41)) == DedupId("kafka/my-group/orders/2", 41)


SOURCE = SourceIdentity("local", "ZMWvHbNCT4C52u7NXoEukA")
GOLDEN_OBJECT_ID_V2 = "inv_12q15azPv94v5SY5hA9jPvSBmSUvFgbhHo"


def test_dedup_formula_v2_is_frozen_and_names_the_cluster_and_the_topic_incarnation() -> None:
    # Golden values: WAL partitions store these producer names. NEVER CHANGE.
    assert (dedup_producer_v2("local", SOURCE.topic_id, "my-group", "orders", 2)
            == "kafka2/local/ZMWvHbNCT4C52u7NXoEukA/my-group/orders/2")
    assert dedup_id("my-group", record(41), SOURCE) == DedupId(
        "kafka2/local/ZMWvHbNCT4C52u7NXoEukA/my-group/orders/2", 41)
    # Version 1 is what subscriptions created before version 2 keep.
    assert dedup_id("my-group", record(41)) == DedupId("kafka/my-group/orders/2", 41)
    recreated = SourceIdentity("local", "AAAAAAAAAAAAAAAAAAAAAA")
    other_cluster = SourceIdentity("other", SOURCE.topic_id)
    assert len({dedup_id("g", record(0), s).producer for s in (SOURCE, recreated, other_cluster)}) == 3


def test_invocation_id_v2_is_frozen_and_differs_per_topic_incarnation() -> None:
    first = build_invoke(SUB, OBJECT, record(), argument=b"{}", object_key="alice", source=SOURCE)
    # Golden value: derived ids are in the WAL and in clients' hands. NEVER CHANGE.
    assert str(first.invocation_id) == GOLDEN_OBJECT_ID_V2
    recreated = build_invoke(SUB, OBJECT, record(), argument=b"{}", object_key="alice",
                             source=SourceIdentity("local", "AAAAAAAAAAAAAAAAAAAAAA"))
    v1 = build_invoke(SUB, OBJECT, record(), argument=b"{}", object_key="alice")
    assert len({first.invocation_id, recreated.invocation_id, v1.invocation_id}) == 3
    assert str(v1.invocation_id) == GOLDEN_OBJECT_ID


def test_invocation_id_is_deterministic_and_frozen() -> None:
    first = build_invoke(SUB, OBJECT, record(), argument=b"{}", object_key="alice")
    again = build_invoke(SUB, OBJECT, record(), argument=b"other", object_key="alice")
    other_offset = build_invoke(SUB, OBJECT, record(8), argument=b"{}", object_key="alice")
    assert first.invocation_id == again.invocation_id != other_offset.invocation_id
    # Golden value: derived ids are in the WAL and in clients' hands. NEVER CHANGE.
    assert str(first.invocation_id) == GOLDEN_OBJECT_ID


def test_workflow_run_sink_uses_the_workflow_id() -> None:
    a = build_invoke(SUB, WORKFLOW_RUN, record(1), argument=b"{}", object_key="order-9")
    b = build_invoke(SUB, WORKFLOW_RUN, record(2), argument=b"{}", object_key="order-9")
    assert a.invocation_id == b.invocation_id  # one run per workflow key, as from the ingress


def test_invoke_shape_and_headers() -> None:
    invoke = build_invoke(SUB, OBJECT, record(), argument=b'{"n":1}', object_key="alice", dead_letter_topic="dlq")
    assert invoke.target.key == "alice" and invoke.target.handler_kind is HandlerKind.EXCLUSIVE
    assert invoke.source == SubscriptionSource(SUB, "orders", 2, 7)
    assert invoke.argument == b'{"n":1}' and invoke.response_sink is None
    headers = {h.name: h.value for h in invoke.headers}
    assert headers == {
        "trace": "abc",  # the non-UTF-8 header "bin" is left out
        "kafka.topic": "orders", "kafka.partition": "2", "kafka.offset": "7",
        "kafka.timestamp": "1700000000000", "kafka.key": "alice",
        "restate.subscription.id": str(SUB), DEAD_LETTER_HEADER: "dlq",
    }


def test_binary_keys_are_exposed_as_base64_and_services_take_no_key() -> None:
    headers = invocation_headers(SUB, record(key=b"\x00\xff"))
    assert Header("kafka.key-base64", "AP8=") in headers
    invoke = build_invoke(SUB, SERVICE, record(key=b"\x00\xff"), argument=b"", object_key=None)
    assert invoke.target.key is None
    with pytest.raises(ValueError):
        build_invoke(SUB, SERVICE, record(), argument=b"", object_key="alice")
    with pytest.raises(ValueError):
        build_invoke(SUB, OBJECT, record(), argument=b"", object_key=None)


def test_partition_ordering_places_a_partitions_invocations_together_and_is_frozen() -> None:
    key = ordering_key("my-group", record(7))
    # Golden values: the key places invocations in the WAL. NEVER CHANGE.
    assert key == "kafka/my-group/orders/2"
    a = build_invoke(SUB, SERVICE, record(7), argument=b"", object_key=None, ordering=key)
    b = build_invoke(SUB, SERVICE, record(8), argument=b"", object_key=None, ordering=ordering_key("my-group", record(8)))
    assert str(a.invocation_id) == GOLDEN_ORDERED_ID
    assert a.ordering_key == b.ordering_key == key and a.target.key is None
    assert a.invocation_id != b.invocation_id
    assert a.invocation_id.partition_key == b.invocation_id.partition_key  # one WAL partition
    unordered = build_invoke(SUB, SERVICE, record(7), argument=b"", object_key=None)
    assert unordered.ordering_key is None and unordered.invocation_id.uuid == a.invocation_id.uuid
    with pytest.raises(ValueError):
        build_invoke(SUB, OBJECT, record(), argument=b"", object_key="alice", ordering=key)
