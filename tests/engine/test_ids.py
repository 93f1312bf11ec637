"""Identifiers: Restate's string and byte formats, pinned by golden values.

The golden ids below were produced by a real restate-server (they appear as examples
in Restate's OpenAPI document and tests); the values decoded from them are pinned too,
and the ULID timestamps inside them land on plausible dates, which would not happen
with a wrong byte order or alphabet.
"""

from __future__ import annotations

import base64
import os
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import EngineError
from engine.ids import (
    PARTITION_KEY_MAX,
    AwakeableId,
    AwakeableIdKind,
    DeploymentId,
    IdParseError,
    InvocationId,
    InvocationUuid,
    PartitionKey,
    SubscriptionId,
    make_partition_key,
)

partition_keys = st.integers(min_value=0, max_value=2**64 - 1).map(PartitionKey)
uuids = st.integers(min_value=1, max_value=2**128 - 1).map(InvocationUuid)
invocation_ids = st.builds(InvocationId, partition_keys, uuids)


# --- invocation ids ------------------------------------------------------------------------


RESTATE_INVOCATION_ID = "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz"


def test_parses_an_invocation_id_made_by_restate() -> None:
    iid = InvocationId.parse(RESTATE_INVOCATION_ID)
    assert iid.partition_key == 0x493C42ED1C3CF1BC
    assert iid.uuid.value == 0x018E5257B998007DB7F4F3F47E809584
    # The uuid is a ULID created on 2024-03-18, when the example was written.
    assert iid.uuid.timestamp_ms == 1710778464664
    assert str(iid) == RESTATE_INVOCATION_ID
    assert iid.to_bytes().hex() == "493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584"


def test_second_restate_invocation_id_round_trips() -> None:
    text = "inv_1fBuS9KMPNrt0zQBGdilypucn1EeT7AO5j"
    assert str(InvocationId.parse(text)) == text


def test_invocation_id_text_golden_small_values() -> None:
    # Pins the byte-reversed fixed-width base62 of both parts.
    iid = InvocationId(PartitionKey(1), InvocationUuid(1))
    assert str(iid) == "inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw"
    assert InvocationId.parse(str(iid)) == iid


@given(invocation_ids)
def test_invocation_id_text_round_trip(iid: InvocationId) -> None:
    text = str(iid)
    assert len(text) == InvocationId.TEXT_LENGTH == 38
    assert text.startswith("inv_1")
    assert InvocationId.parse(text) == iid


@given(invocation_ids)
def test_invocation_id_bytes_round_trip(iid: InvocationId) -> None:
    raw = iid.to_bytes()
    assert len(raw) == 24
    assert raw[:8] == iid.partition_key.to_bytes(8, "big")
    assert InvocationId.from_bytes(raw) == iid


@given(partition_keys, uuids)
def test_text_prefix_names_the_partition_key(pk: PartitionKey, uuid: InvocationUuid) -> None:
    # Restate relies on this: the first 16 characters select a partition key.
    a = str(InvocationId(pk, uuid))
    b = str(InvocationId(pk, InvocationUuid(1)))
    assert a[:16] == b[:16]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("mxvgUOrwIb8", "expected 'inv_1"),
        ("mxvgUOrwIb8cYrGPHkAAKSKY3O!6IEy_g", "prefix"),
        ("inv_ub23411ba", "version"),
        ("inv_1b234d1ba", "38 characters"),
        ("dp_11nGQpCRmau6ypL82KH2TnP", "prefix 'dp'"),
        ("inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hb!", "not a base62 character"),
        ("inv_1" + "Z" * 33, "does not fit in 64 bits"),
        ("inv_1" + "0" * 33, "uuid part is zero"),
        (RESTATE_INVOCATION_ID + "0", "38 characters"),
    ],
)
def test_invocation_id_parse_errors(text: str, fragment: str) -> None:
    with pytest.raises(IdParseError) as info:
        InvocationId.parse(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, EngineError)
    assert isinstance(info.value, ValueError)


def test_invocation_id_validates_its_parts() -> None:
    with pytest.raises(IdParseError):
        InvocationId(PartitionKey(2**64), InvocationUuid(1))
    with pytest.raises(IdParseError):
        InvocationUuid(0)
    with pytest.raises(IdParseError):
        InvocationUuid(2**128)
    with pytest.raises(IdParseError):
        InvocationId.from_bytes(b"\x00" * 23)
    with pytest.raises(IdParseError):
        make_partition_key(-1)
    assert make_partition_key(PARTITION_KEY_MAX) == 2**64 - 1


def test_ids_are_values() -> None:
    a = InvocationId.parse(RESTATE_INVOCATION_ID)
    b = InvocationId.parse(RESTATE_INVOCATION_ID)
    assert a == b and hash(a) == hash(b)
    assert InvocationId(PartitionKey(1), InvocationUuid(5)) < InvocationId(
        PartitionKey(2), InvocationUuid(1)
    )


# --- invocation uuids ----------------------------------------------------------------------


def test_generated_uuids_are_ulids_and_unique() -> None:
    before = time.time_ns() // 1_000_000
    generated = {InvocationUuid.generate() for _ in range(1000)}
    after = time.time_ns() // 1_000_000
    assert len(generated) == 1000
    assert all(before <= u.timestamp_ms <= after for u in generated)
    assert all(len(str(u)) == 22 for u in generated)


def test_derived_uuids_golden() -> None:
    # NEVER CHANGE these values: idempotent retries and re-ingested Kafka events find
    # their invocation through them.
    assert InvocationUuid.for_idempotent_request("Greeter", "k", "greet", "abc").value == (
        257970289739520435756029772519370982132
    )
    assert InvocationUuid.for_idempotent_request("Greeter", None, "greet", "abc").value == (
        220684325992777556347451694701236666364
    )
    assert InvocationUuid.for_workflow_run("Signup", "alice").value == (
        86048984738239722402649958867429155867
    )
    sub = SubscriptionId.parse("sub_11nGQpCRmau6ypL82KH2TnP")
    assert InvocationUuid.for_subscription_event(sub, "orders", 3, 42).value == (
        301439777055220830437836548471589097231
    )


def test_derivation_is_unambiguous() -> None:
    # Length prefixes: moving a boundary between parts changes the uuid.
    assert InvocationUuid.derive("d", "ab", "c") != InvocationUuid.derive("d", "a", "bc")
    assert InvocationUuid.derive("d", "x") != InvocationUuid.derive("e", "x")
    # No key and an empty key are different objects.
    assert InvocationUuid.for_idempotent_request(
        "S", None, "h", "i"
    ) != InvocationUuid.for_idempotent_request("S", "", "h", "i")
    assert InvocationUuid.derive("d", "x") == InvocationUuid.derive("d", b"x")


@given(uuids)
def test_uuid_bytes_round_trip(uuid: InvocationUuid) -> None:
    assert InvocationUuid.from_bytes(uuid.to_bytes()) == uuid


# --- deployment and subscription ids ---------------------------------------------------------


def test_parses_a_deployment_id_made_by_restate() -> None:
    text = "dp_11nGQpCRmau6ypL82KH2TnP"
    dp = DeploymentId.parse(text)
    assert dp.value == 0x019441F1BE4F151534E91B9A2173692D
    assert dp.timestamp_ms == 1736273149519  # 2025-01-07
    assert str(dp) == text
    assert DeploymentId.from_bytes(dp.to_bytes()) == dp


def test_resource_id_errors() -> None:
    with pytest.raises(IdParseError, match="22 base62"):
        DeploymentId.parse("dp_11nGQpCRmau6ypL82KH2TnP123456")
    with pytest.raises(IdParseError, match="prefix 'sub'"):
        DeploymentId.parse("sub_11nGQpCRmau6ypL82KH2TnP")
    with pytest.raises(IdParseError, match="prefix 'dp'"):
        SubscriptionId.parse("dp_11nGQpCRmau6ypL82KH2TnP")
    with pytest.raises(IdParseError):
        DeploymentId.from_bytes(b"short")


def test_generated_resource_ids() -> None:
    dp = DeploymentId.generate()
    sub = SubscriptionId.generate()
    assert str(dp).startswith("dp_1") and len(str(dp)) == 26
    assert str(sub).startswith("sub_1") and len(str(sub)) == 27
    assert DeploymentId.parse(str(dp)) == dp
    assert SubscriptionId.parse(str(sub)) == sub
    assert abs(dp.timestamp_ms - time.time() * 1000) < 60_000
    # Same value, different kinds of id: not equal.
    assert DeploymentId(5) != SubscriptionId(5)  # type: ignore[comparison-overlap]


# --- awakeable ids -------------------------------------------------------------------------


def test_parses_the_protocol_documentation_awakeable_example() -> None:
    text = "prom_1NMyOAvDK2CcBjUH4Rmb7eGBp0DNNDnmsAAAAAQ"
    awk = AwakeableId.parse(text)
    assert awk.kind is AwakeableIdKind.ENTRY
    assert awk.index == 1
    assert str(awk) == text


def test_signal_awakeable_id_matches_sdk_construction() -> None:
    # What an SDK does with StartMessage.id and the signal index: "sign_1" followed by
    # unpadded base64url of (id bytes, u32 big-endian index).
    iid = InvocationId.parse(RESTATE_INVOCATION_ID)
    expected = "sign_1" + base64.urlsafe_b64encode(
        iid.to_bytes() + (17).to_bytes(4, "big")
    ).decode().rstrip("=")
    awk = AwakeableId(iid, 17)
    assert str(awk) == expected
    assert AwakeableId.parse(expected) == awk
    assert AwakeableId.parse(expected + "==") == awk  # padding is tolerated


@given(invocation_ids, st.integers(0, 2**32 - 1), st.sampled_from(AwakeableIdKind))
def test_awakeable_id_round_trip(iid: InvocationId, index: int, kind: AwakeableIdKind) -> None:
    awk = AwakeableId(iid, index, kind)
    text = str(awk)
    assert text.startswith(f"{kind.value}_1")
    assert "=" not in text
    assert AwakeableId.parse(text) == awk


@pytest.mark.parametrize(
    "text",
    [
        "",
        "awk_1NMyOAvDK2CcBjUH4Rmb7eGBp0DNNDnmsAAAAAQ",
        "prom_2NMyOAvDK2CcBjUH4Rmb7eGBp0DNNDnmsAAAAAQ",
        "prom_1NMyOAvDK2CcBjUH4Rmb7eGBp0DNNDnmsAAAA",
        "prom_1NMyOAvDK2CcBjUH4Rmb7eGBp0DNNDnmsAAAA*Q",
        "sign_1" + "A" * 38,  # zero uuid inside
        RESTATE_INVOCATION_ID,
    ],
)
def test_awakeable_id_parse_errors(text: str) -> None:
    with pytest.raises(IdParseError):
        AwakeableId.parse(text)


def test_awakeable_index_is_u32() -> None:
    with pytest.raises(IdParseError):
        AwakeableId(InvocationId.parse(RESTATE_INVOCATION_ID), 2**32)


def test_random_ids_are_distinct_across_a_fork() -> None:
    """Ids draw from a pool of OS random bytes; a forked child must not hand out the
    bytes the parent hands out next."""
    InvocationUuid.generate()  # the pool holds unused bytes now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write_end, InvocationUuid.generate().to_bytes())
        os._exit(0)
    os.close(write_end)
    ours = InvocationUuid.generate().to_bytes()
    theirs = os.read(read_end, 64)
    os.waitpid(pid, 0)
    assert len(theirs) == len(ours)
    assert theirs[6:] != ours[6:]  # the random part (after the 48-bit timestamp)


def test_random_ids_do_not_repeat() -> None:
    ids = {InvocationUuid.generate() for _ in range(20_000)}
    assert len(ids) == 20_000
