"""The responses topic's record format and partition choice (pure)."""

from __future__ import annotations

import pytest

from engine.ids import InvocationId, InvocationUuid
from engine.ingress.response_channel import RESPONSE_PARTITIONS, decode_answer, encode_answer, partition_of
from engine.partition.actions import Submitted
from engine.wal.partitioning import invocation_id_for
from engine.wal.records import Failure, FailureMetadata, Value, Void

IID: InvocationId = invocation_id_for("Greeter", None, InvocationUuid.derive("test", "1"))


@pytest.mark.parametrize(
    "result",
    [Value(b"\x00\xff binary"), Failure(409, "cancelled", (FailureMetadata("k", "v"),)), Void(),
     Submitted(True), Submitted(False)],
    ids=["value", "failure", "void", "previously-accepted", "accepted"],
)
def test_answers_round_trip(result: Value | Failure | Void | Submitted) -> None:
    data = encode_answer("host.1a2b3c4d", "req-9", IID, result)
    assert decode_answer(data) == ("host.1a2b3c4d", "req-9", IID, result)


def test_bad_records_are_rejected_with_a_reason() -> None:
    for data, reason in [
        (b"not json", "malformed"),
        (b'{"v": 2}', "version"),
        (b'{"v": 1, "node": "n", "request_id": "r", "invocation_id": "inv_1abc", "void": true}', "malformed"),
        (encode_answer("n", "r", IID, Void()).replace(b'"void":true', b'"other":1'), "no result"),
    ]:
        with pytest.raises(ValueError, match=reason):
            decode_answer(data)


def test_partition_choice_is_stable_and_spread() -> None:
    assert partition_of("host.1a2b3c4d") == partition_of("host.1a2b3c4d")
    used = {partition_of(f"host.{i:08x}") for i in range(200)}
    assert used == set(range(RESPONSE_PARTITIONS))
