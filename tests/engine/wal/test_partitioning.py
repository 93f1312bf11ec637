"""Partition keys and key-to-partition mapping: golden values that must never change."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.ids import InvocationId, InvocationUuid, PartitionKey
from engine.wal.partitioning import (
    invocation_id_for,
    partition_for,
    partition_key_for_key,
    partition_key_for_service_invocation,
    partition_key_range,
)

keys = st.integers(min_value=0, max_value=2**64 - 1)
counts = st.integers(min_value=1, max_value=4096)


# Golden values: ids handed to clients, LMDB contents and Kafka records depend on them.
@pytest.mark.parametrize(
    ("service", "key", "expected"),
    [
        ("Counter", "user-42", 9759529227614398503),
        ("Greeter", "", 10177345444712248425),
        ("Obj", "ключ", 3586011602203207554),
    ],
)
def test_object_partition_key_golden(service: str, key: str, expected: int) -> None:
    assert partition_key_for_key(service, key) == expected


def test_object_partition_key_ignores_the_service() -> None:
    # Restate's choice: one key, one partition key, whichever service.
    assert partition_key_for_key("A", "k") == partition_key_for_key("B", "k")
    assert partition_key_for_key("A", "k") != partition_key_for_key("A", "k2")


def test_service_invocation_partition_key_golden() -> None:
    assert partition_key_for_service_invocation(InvocationUuid(1)) == 4470410278138402568
    uuid = InvocationUuid.for_idempotent_request("Greeter", None, "greet", "abc")
    assert partition_key_for_service_invocation(uuid) == 4941026075975903965


def test_invocation_id_for() -> None:
    uuid = InvocationUuid(12345)
    keyed = invocation_id_for("Counter", "user-42", uuid)
    assert keyed == InvocationId(PartitionKey(9759529227614398503), uuid)
    unkeyed = invocation_id_for("Greeter", None, uuid)
    assert unkeyed.partition_key == partition_key_for_service_invocation(uuid)


@pytest.mark.parametrize(
    ("key", "count", "expected"),
    [
        (0, 1, 0),
        (2**64 - 1, 1, 0),
        (2**63 - 1, 2, 0),
        (2**63, 2, 1),
        (2**64 - 1, 24, 23),
        (12345678901234567890, 24, 16),
        (9759529227614398503, 16, 8),
        (6148914691236517205, 3, 0),
        (6148914691236517206, 3, 1),
        (12297829382473034410, 3, 1),
        (12297829382473034411, 3, 2),
    ],
)
def test_partition_for_golden(key: int, count: int, expected: int) -> None:
    assert partition_for(key, count) == expected


def test_partition_key_range_golden() -> None:
    assert [partition_key_range(p, 3) for p in range(3)] == [
        (0, 6148914691236517205),
        (6148914691236517206, 12297829382473034410),
        (12297829382473034411, 2**64 - 1),
    ]
    assert partition_key_range(0, 1) == (0, 2**64 - 1)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 10, 24, 64, 1000, 65535])
def test_ranges_tile_the_key_space_like_restate(count: int) -> None:
    # Restate's equally sized partitions: contiguous, starting at 0, ending at u64::MAX,
    # lengths differing by at most one.
    previous_end = -1
    lengths = set()
    for p in range(count):
        start, end = partition_key_range(p, count)
        assert start == previous_end + 1
        assert partition_for(start, count) == p
        assert partition_for(end, count) == p
        lengths.add(end - start)
        previous_end = end
    assert previous_end == 2**64 - 1
    assert max(lengths) - min(lengths) <= 1


@given(keys, keys, counts)
def test_partition_for_is_monotone(a: int, b: int, count: int) -> None:
    lo, hi = sorted((a, b))
    assert partition_for(lo, count) <= partition_for(hi, count)


@given(keys, counts)
def test_key_lies_in_its_partition_range(key: int, count: int) -> None:
    p = partition_for(key, count)
    assert 0 <= p < count
    start, end = partition_key_range(p, count)
    assert start <= key <= end


def test_argument_errors() -> None:
    with pytest.raises(ValueError):
        partition_for(0, 0)
    with pytest.raises(ValueError):
        partition_for(-1, 4)
    with pytest.raises(ValueError):
        partition_for(2**64, 4)
    with pytest.raises(ValueError):
        partition_key_range(4, 4)
    with pytest.raises(ValueError):
        partition_key_range(0, 0)
