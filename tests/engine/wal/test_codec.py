"""WAL codec: round trips of every record type, pinned bytes and schema, evolution, errors."""

from __future__ import annotations

import copy
import dataclasses
import io
import typing
from typing import Any

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import EngineError
from engine.ids import DeploymentId, InvocationId
from engine.wal import codec
from engine.wal import records as r
from engine.wal.schema import CURRENT_VERSION, NAMESPACE, WRITER_SCHEMAS
from tests.engine.wal.strategies import RECORD_STRATEGIES, dedup_ids, epochs, records

IID = InvocationId.parse("inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz")


# --- round trips -----------------------------------------------------------------------------


def test_strategies_cover_every_record_type() -> None:
    assert set(RECORD_STRATEGIES) == set(typing.get_args(r.Record))


@pytest.mark.parametrize("record_type", list(RECORD_STRATEGIES), ids=lambda t: t.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip_each_record_type(record_type: type, data: st.DataObject) -> None:
    record = data.draw(RECORD_STRATEGIES[record_type])
    epoch = data.draw(epochs)
    dedup = data.draw(dedup_ids)
    envelope = codec.decode(codec.encode(record, epoch=epoch, dedup_id=dedup))
    assert envelope == r.Envelope(record, epoch, dedup, CURRENT_VERSION)
    assert type(envelope.record) is record_type


@settings(max_examples=200, deadline=None)
@given(records, epochs, dedup_ids)
def test_round_trip_envelope(
    record: r.Record, epoch: int | None, dedup: r.DedupId | None
) -> None:
    envelope = r.Envelope(record, epoch, dedup, CURRENT_VERSION)
    assert codec.decode(codec.encode_envelope(envelope)) == envelope


def test_same_shaped_records_stay_distinct() -> None:
    # Cancel, Kill and Purge have identical fields; the union branch must be explicit.
    same_shape = (r.CancelInvocation, r.KillInvocation, r.PurgeInvocation, r.PauseInvocation, r.ResumeInvocation)
    for record in (cls(IID) for cls in same_shape):
        assert codec.decode(codec.encode(record)).record == record


# --- pinned format ---------------------------------------------------------------------------


GOLDEN_INVOKE = r.Invoke(
    invocation_id=IID,
    target=r.InvocationTarget(
        "Counter", "add", "user-42", r.ServiceKind.VIRTUAL_OBJECT, r.HandlerKind.EXCLUSIVE
    ),
    argument=b'{"n":1}',
    headers=(r.Header("x-trace", "abc"),),
    source=r.IngressSource("node-1", "req-7"),
    response_sink=r.IngressSink("node-1", "req-7"),
    idempotency_key="k1",
    execute_at_ms=1700000000000,
)
GOLDEN_INVOKE_BYTES = bytes.fromhex(
    "4c0100020a7375622f785400493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584"
    "0e436f756e74657206616464020e757365722d34320202000e7b226e223a317d020e782d"
    "74726163650661626300020c6e6f64652d310a7265712d37020c6e6f64652d310a726571"
    "2d3702046b310280a0abfef962"
)
GOLDEN_NOTIFY = r.Notify(
    IID, r.CompletionId(3), r.Failure(500, "boom", (r.FailureMetadata("a", "b"),))
)
GOLDEN_NOTIFY_BYTES = bytes.fromhex(
    "4c01020e000c493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584000602e80708626f6f6d020261026200"
)


GOLDEN_CALL = r.JournalAppend(
    IID,
    4,
    0x0408,
    b"\x0a\x07Counter",
    r.CallTarget(r.ServiceKind.VIRTUAL_OBJECT, r.HandlerKind.SHARED),
)
GOLDEN_CALL_BYTES_V2 = bytes.fromhex(
    "4c02000002493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584"
    "089010120a07436f756e74657202020202"
)


def _as_version(version: int, v1_bytes: bytes) -> bytes:
    # Notify kept its v1 layout in v2 and v3 (and Invoke in v2): only the version byte differs.
    return bytes((codec.MAGIC, version)) + v1_bytes[2:]


# Schema v3: Invoke and CallTarget carry retention, a failed attempt can pause, and
# PauseInvocation / ResumeInvocation are new record types.
GOLDEN_INVOKE_BYTES_V3 = _as_version(3, GOLDEN_INVOKE_BYTES) + b"\x00\x00"  # two null retentions
GOLDEN_CALL_BYTES_V3 = GOLDEN_CALL_BYTES_V2[:1] + b"\x03" + GOLDEN_CALL_BYTES_V2[2:] + b"\x00\x00\x00"
GOLDEN_RETAINED_INVOKE = r.Invoke(
    IID, GOLDEN_INVOKE.target, b"", completion_retention_ms=2000, journal_retention_ms=0
)
GOLDEN_RETAINED_INVOKE_BYTES = bytes.fromhex(
    "4c03000000493c42ed1c3cf1bc018e5257b998007db7f4f3f47e8095840e436f756e7465720661646402"
    "0e757365722d343202020000000000000002a01f0200"
)
GOLDEN_WORKFLOW_CALL = r.JournalAppend(
    IID,
    4,
    0x0408,
    b"\x0a\x07Counter",
    r.CallTarget(r.ServiceKind.WORKFLOW, r.HandlerKind.WORKFLOW, 86_400_000, 2000, None),
)
GOLDEN_WORKFLOW_CALL_BYTES = bytes.fromhex(
    "4c03000002493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584089010120a07436f756e746572"
    "020402040280f0b25202a01f00"
)
GOLDEN_PAUSED = r.InvocationFailedAttempt(IID, 570, "mismatch", 1700000000000, 3, True)
GOLDEN_PAUSED_BYTES = bytes.fromhex(
    "4c0302040008493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584f408106d69736d617463688"
    "0a0abfef9620601"
)
GOLDEN_RESUME_BYTES = bytes.fromhex("4c03000020493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584")


def _v4(v3_bytes: bytes, *, invoke: bool = False) -> bytes:
    # v4 kept every v3 layout except Invoke (one more optional field, null here) and
    # AttachInvocation (the sink became a union).
    return _as_version(4, v3_bytes) + (b"\x00" if invoke else b"")


# Schema v4: Invoke.ordering_key, AttachInvocation from handlers, GetInvocationOutput.
GOLDEN_ORDERED_INVOKE = r.Invoke(IID, GOLDEN_INVOKE.target, b"", ordering_key="orders/3")
GOLDEN_ORDERED_INVOKE_BYTES = bytes.fromhex(
    "4c04000000493c42ed1c3cf1bc018e5257b998007db7f4f3f47e8095840e436f756e7465720661646402"
    "0e757365722d3432020200000000000000000002106f72646572732f33"
)
GOLDEN_HANDLER_ATTACH = r.AttachInvocation(IID, r.InvocationSink(IID, 5))
GOLDEN_HANDLER_ATTACH_BYTES = bytes.fromhex(
    "4c0400001a493c42ed1c3cf1bc018e5257b998007db7f4f3f47e80958402"
    "493c42ed1c3cf1bc018e5257b998007db7f4f3f47e8095840a"
)
GOLDEN_GET_OUTPUT = r.GetInvocationOutput(IID, r.InvocationSink(IID, 5))
GOLDEN_GET_OUTPUT_BYTES = bytes.fromhex(
    "4c04000022493c42ed1c3cf1bc018e5257b998007db7f4f3f47e80958402"
    "493c42ed1c3cf1bc018e5257b998007db7f4f3f47e8095840a"
)


def _v5(v4_bytes: bytes, *, journal_append: bool = False) -> bytes:
    # v5 kept every v4 layout except JournalAppend (one more optional field, null here).
    return _as_version(5, v4_bytes) + (b"\x00" if journal_append else b"")


# Schema v5: JournalAppend.command_index.
GOLDEN_NUMBERED_CALL = dataclasses.replace(GOLDEN_CALL, entry_index=6, command_index=4)
GOLDEN_NUMBERED_CALL_BYTES = bytes.fromhex(
    "4c05000002493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584"
    "0c9010120a07436f756e7465720202020200000002" "08"
)


def _v6(v5_bytes: bytes) -> bytes:
    # v6 kept every v5 layout; it only added RecordBatch at the end of the body union.
    return _as_version(6, v5_bytes)


# Schema v6: RecordBatch, a leader's records handed over together.
GOLDEN_BATCH = r.RecordBatch((
    r.JournalAppend(IID, 1, 0x0403, b"\x0a\x02ok", command_index=1),
    r.InvocationEnded(IID, r.Value(b'"ok"')),
    r.OutboxTruncate(9),
))
GOLDEN_BATCH_BYTES = bytes.fromhex(
    "4c06020800240600493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584028610080a026f6b0002"
    "0204493c42ed1c3cf1bc018e5257b998007db7f4f3f47e8095840008226f6b220e1200"
)


def _v7(v6_bytes: bytes, *, resume: bool = False) -> bytes:
    # v7 kept every v6 layout except ResumeInvocation (one more optional field, null here).
    return _as_version(7, v6_bytes) + (b"\x00" if resume else b"")


# Schema v7: ResumeInvocation.deployment_id (resume on another deployment).
GOLDEN_RESUME_ON = r.ResumeInvocation(IID, DeploymentId.parse("dp_11vCWoi33PK4Zojq55ujBTP"))
GOLDEN_RESUME_ON_BYTES = bytes.fromhex(
    "4c07000020493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584" "0201a23cdf8cdbe3de27c2a4e9803e9e31"
)


def _v8(v7_bytes: bytes, *, failed_attempt: bool = False) -> bytes:
    # v8 kept every v7 layout except InvocationFailedAttempt (three more optional fields,
    # null here), also inside a RecordBatch.
    return _as_version(8, v7_bytes) + (b"\x00\x00\x00" if failed_attempt else b"")


# Schema v8: the command a failed attempt was at.
GOLDEN_FAILED_AT_COMMAND = r.InvocationFailedAttempt(
    IID, 500, "wobbles", 1700000000000, 1, related_command_index=2, related_command_name="wobble",
    related_command_type=0x0411,
)
GOLDEN_FAILED_AT_COMMAND_BYTES = bytes.fromhex(
    "4c0802040008493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584e8070e776f62626c657380a0abfef962020002"
    "04020c776f62626c6502a210"
)
GOLDEN_BATCH_FAILED_AT_COMMAND_BYTES = bytes.fromhex(
    "4c08020400240206493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584e8070e776f62626c657380a0abfef96202"
    "000204020c776f62626c6502a21000"
)


def _v9(v8_bytes: bytes) -> bytes:
    # v9 kept every v8 layout; it only added RestartAsNewInvocation at the end of the body union.
    return _as_version(9, v8_bytes)


# Schema v9: RestartAsNewInvocation.
GOLDEN_RESTART = r.RestartAsNewInvocation(
    IID, InvocationId.parse("inv_1gdJBtdVEcM95d6EfLYmoyFa5oPqVmDNlv"), 4, DeploymentId.parse("dp_11vCWoi33PK4Zojq55ujBTP")
)
GOLDEN_RESTART_BYTES = bytes.fromhex(
    "4c09000026493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584493c42ed1c3cf1bc01a23cdf054a38d1b0161e9508ff3aab08"
    "0201a23cdf8cdbe3de27c2a4e9803e9e31"
)


def _v10(v9_bytes: bytes) -> bytes:
    # v10 kept every v9 layout; it only added Invoke as the last branch of RecordBatch.records.
    return _as_version(10, v9_bytes)


# Schema v10: a call's Invoke in its first attempt's batch (the Invoke's branch index is 8).
GOLDEN_CALL_BATCH = r.RecordBatch((GOLDEN_INVOKE, r.InvocationEnded(IID, r.Value(b"ok"))))
GOLDEN_CALL_BATCH_BYTES = bytes.fromhex(
    "4c0a020600240410493c42ed1c3cf1bc018e5257b998007db7f4f3f47e8095840e436f756e74657206616464020e757365722d34320202"
    "000e7b226e223a317d020e782d74726163650661626300020c6e6f64652d310a7265712d37020c6e6f64652d310a7265712d3702046b310280a0abfef96200000004493c42ed1c3cf1bc018e5257b998007db7f4f3f47e80958400046f6b00"
)


def _v11(v10_bytes: bytes, *, journal_append: bool = False) -> bytes:
    # v11 kept every v10 layout except JournalAppend (one more optional field, null here).
    return _as_version(11, v10_bytes) + (b"\x00" if journal_append else b"")


def _v11_batch(v10_bytes: bytes) -> bytes:
    # GOLDEN_BATCH: its JournalAppend (the first item) gains a null trace_parent.
    marker = bytes.fromhex("0a026f6b0002")
    at = v10_bytes.index(marker) + len(marker)
    return _as_version(11, v10_bytes[: at + 1]) + b"\x00" + v10_bytes[at + 1 :]


GOLDEN_BATCH_BYTES_V11 = bytes.fromhex(
    "4c0b020800240600493c42ed1c3cf1bc018e5257b998007db7f4f3f47e809584028610080a026f6b0002020004493c42ed1c3c"
    "f1bc018e5257b998007db7f4f3f47e8095840008226f6b220e1200"
)

# Schema v11: JournalAppend.trace_parent.
GOLDEN_TRACED_CALL = dataclasses.replace(
    GOLDEN_CALL, entry_index=6, command_index=4,
    trace_parent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
)



def _v12(v11_bytes: bytes, *, invoke: bool = False) -> bytes:
    # v12 kept every v11 layout except Invoke (one more optional field, null here).
    return _as_version(12, v11_bytes) + (b"\x00" if invoke else b"")


# Schema v12: Invoke.speculation (the call batch's Invoke gains a null one).
GOLDEN_CALL_BATCH_BYTES_V12 = bytes.fromhex("4c0c020600240410493c42ed1c3cf1bc018e5257b998007db7f4f3f47e8095840e436f756e74657206616464020e757365722d34320202000e7b226e223a317d020e782d74726163650661626300020c6e6f64652d310a7265712d37020c6e6f64652d310a7265712d3702046b310280a0abfef9620000000004493c42ed1c3cf1bc018e5257b998007db7f4f3f47e80958400046f6b00")
GOLDEN_SPECULATIVE_BATCH = r.RecordBatch(
    (dataclasses.replace(GOLDEN_INVOKE, speculation="47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"),
     r.InvocationEnded(IID, r.Value(b"ok")))
)
GOLDEN_SPECULATIVE_BATCH_BYTES = bytes.fromhex("4c0c020600240410493c42ed1c3cf1bc018e5257b998007db7f4f3f47e8095840e436f756e74657206616464020e757365722d34320202000e7b226e223a317d020e782d74726163650661626300020c6e6f64652d310a7265712d37020c6e6f64652d310a7265712d3702046b310280a0abfef96200000002563437444551706a38484253612d5f54496d572d354a4365755165526b6d354e4d704a575a4733685375465504493c42ed1c3cf1bc018e5257b998007db7f4f3f47e80958400046f6b00")


def test_golden_bytes() -> None:
    # If this fails, the on-disk format changed: make a new schema version instead.
    assert codec.encode(GOLDEN_INVOKE, dedup_id=r.DedupId("sub/x", 42)) == _v12(_v11(_v10(_v9(_v8(_v7(_v6(_v5(_v4(GOLDEN_INVOKE_BYTES_V3, invoke=True)))))))), invoke=True)
    assert codec.encode(GOLDEN_NOTIFY, epoch=7) == _v12(_v11(_v10(_v9(_v8(_v7(_as_version(6, GOLDEN_NOTIFY_BYTES)))))))
    assert codec.encode(GOLDEN_CALL) == _v12(_v11(_v10(_v9(_v8(_v7(_v6(_v5(_v4(GOLDEN_CALL_BYTES_V3), journal_append=True)))))), journal_append=True))
    assert codec.encode(GOLDEN_RETAINED_INVOKE) == _v12(_v11(_v10(_v9(_v8(_v7(_v6(_v5(_v4(GOLDEN_RETAINED_INVOKE_BYTES, invoke=True)))))))), invoke=True)
    assert codec.encode(GOLDEN_WORKFLOW_CALL) == _v12(_v11(_v10(_v9(_v8(_v7(_v6(_v5(_v4(GOLDEN_WORKFLOW_CALL_BYTES), journal_append=True)))))), journal_append=True))
    assert codec.encode(GOLDEN_PAUSED, epoch=2) == _v12(_v11(_v10(_v9(_v8(_v7(_v6(_v5(_v4(GOLDEN_PAUSED_BYTES)))), failed_attempt=True)))))
    assert codec.encode(r.ResumeInvocation(IID)) == _v12(_v11(_v10(_v9(_v8(_v7(_v6(_v5(_v4(GOLDEN_RESUME_BYTES))), resume=True))))))
    assert codec.encode(GOLDEN_ORDERED_INVOKE) == _v12(_v11(_v10(_v9(_v8(_v7(_v6(_v5(GOLDEN_ORDERED_INVOKE_BYTES))))))), invoke=True)
    assert codec.encode(GOLDEN_HANDLER_ATTACH) == _v12(_v11(_v10(_v9(_v8(_v7(_v6(_v5(GOLDEN_HANDLER_ATTACH_BYTES))))))))
    assert codec.encode(GOLDEN_GET_OUTPUT) == _v12(_v11(_v10(_v9(_v8(_v7(_v6(_v5(GOLDEN_GET_OUTPUT_BYTES))))))))
    assert codec.encode(GOLDEN_NUMBERED_CALL) == _v12(_v11(_v10(_v9(_v8(_v7(_v6(GOLDEN_NUMBERED_CALL_BYTES))))), journal_append=True))
    assert codec.encode(GOLDEN_BATCH, epoch=4) == _v12(GOLDEN_BATCH_BYTES_V11)
    assert GOLDEN_BATCH_BYTES_V11 == _v11_batch(_v10(_v9(_v8(_v7(GOLDEN_BATCH_BYTES)))))
    assert codec.encode(GOLDEN_RESUME_ON) == _v12(_v11(_v10(_v9(_v8(GOLDEN_RESUME_ON_BYTES)))))
    assert codec.encode(GOLDEN_FAILED_AT_COMMAND, epoch=2) == _v12(_v11(_v10(_v9(GOLDEN_FAILED_AT_COMMAND_BYTES))))
    assert codec.encode(r.RecordBatch((GOLDEN_FAILED_AT_COMMAND,)), epoch=2) == _v12(_v11(_v10(_v9(GOLDEN_BATCH_FAILED_AT_COMMAND_BYTES))))
    assert codec.encode(GOLDEN_RESTART) == _v12(_v11(_v10(GOLDEN_RESTART_BYTES)))
    assert codec.encode(GOLDEN_CALL_BATCH, epoch=3) == GOLDEN_CALL_BATCH_BYTES_V12
    assert codec.decode(_v11(GOLDEN_CALL_BATCH_BYTES)) == r.Envelope(GOLDEN_CALL_BATCH, 3, None, 11)
    assert codec.encode(GOLDEN_SPECULATIVE_BATCH, epoch=3) == GOLDEN_SPECULATIVE_BATCH_BYTES
    assert codec.decode(GOLDEN_SPECULATIVE_BATCH_BYTES) == r.Envelope(GOLDEN_SPECULATIVE_BATCH, 3, None, 12)
    traced = codec.encode(GOLDEN_TRACED_CALL)
    assert traced[1] == 12 and codec.decode(traced).record == GOLDEN_TRACED_CALL
    # v5 to v10 journal appends carry no trace context.
    assert codec.decode(_v10(_v9(_v8(_v7(_v6(GOLDEN_NUMBERED_CALL_BYTES)))))).record == GOLDEN_NUMBERED_CALL
    assert codec.decode(GOLDEN_CALL_BATCH_BYTES) == r.Envelope(GOLDEN_CALL_BATCH, 3, None, 10)
    assert codec.decode(GOLDEN_RESTART_BYTES) == r.Envelope(GOLDEN_RESTART, None, None, 9)
    assert codec.decode(GOLDEN_FAILED_AT_COMMAND_BYTES) == r.Envelope(GOLDEN_FAILED_AT_COMMAND, 2, None, 8)
    # Failed attempts of v3 to v7 writers name no command.
    assert codec.decode(_v7(_v6(_v5(_v4(GOLDEN_PAUSED_BYTES))))) == r.Envelope(GOLDEN_PAUSED, 2, None, 7)
    assert codec.decode(GOLDEN_BATCH_BYTES) == r.Envelope(GOLDEN_BATCH, 4, None, 6)
    # v3 to v6 resumes keep the pinned deployment.
    assert codec.decode(_v6(_v5(_v4(GOLDEN_RESUME_BYTES)))) == r.Envelope(r.ResumeInvocation(IID), None, None, 6)
    assert codec.decode(GOLDEN_NUMBERED_CALL_BYTES) == r.Envelope(GOLDEN_NUMBERED_CALL, None, None, 5)
    # Bytes written by v1 to v4 engines stay readable forever; their journal appends
    # have no command index.
    assert codec.decode(_v4(GOLDEN_CALL_BYTES_V3)) == r.Envelope(GOLDEN_CALL, None, None, 4)
    assert codec.decode(GOLDEN_ORDERED_INVOKE_BYTES) == r.Envelope(
        GOLDEN_ORDERED_INVOKE, None, None, 4
    )
    assert codec.decode(GOLDEN_GET_OUTPUT_BYTES) == r.Envelope(GOLDEN_GET_OUTPUT, None, None, 4)
    assert codec.decode(_as_version(4, GOLDEN_NOTIFY_BYTES)) == r.Envelope(
        GOLDEN_NOTIFY, 7, None, 4
    )
    assert codec.decode(GOLDEN_CALL_BYTES_V2) == r.Envelope(GOLDEN_CALL, None, None, 2)
    assert codec.decode(_as_version(2, GOLDEN_INVOKE_BYTES)) == r.Envelope(
        GOLDEN_INVOKE, None, r.DedupId("sub/x", 42), 2
    )
    assert codec.decode(GOLDEN_INVOKE_BYTES) == r.Envelope(
        GOLDEN_INVOKE, None, r.DedupId("sub/x", 42), 1
    )
    assert codec.decode(GOLDEN_NOTIFY_BYTES) == r.Envelope(GOLDEN_NOTIFY, 7, None, 1)
    assert codec.decode(GOLDEN_PAUSED_BYTES) == r.Envelope(GOLDEN_PAUSED, 2, None, 3)
    assert codec.decode(GOLDEN_INVOKE_BYTES_V3) == r.Envelope(
        GOLDEN_INVOKE, None, r.DedupId("sub/x", 42), 3
    )
    assert codec.decode(GOLDEN_RETAINED_INVOKE_BYTES) == r.Envelope(
        GOLDEN_RETAINED_INVOKE, None, None, 3
    )


def test_v3_ingress_attach_decodes_into_the_v4_sink_union() -> None:
    attach = r.AttachInvocation(IID, r.IngressSink("node-1", "req-7"))
    v3 = io.BytesIO()
    v3.write(bytes((codec.MAGIC, 3)))
    body = (f"{NAMESPACE}.AttachInvocation", {
        "invocation_id": IID.to_bytes(),
        "sink": {"node_id": "node-1", "request_id": "req-7"},
    })
    fastavro.schemaless_writer(
        v3, codec._PARSED[3], {"epoch": None, "dedup_id": None, "body": body}
    )
    assert codec.decode(v3.getvalue()) == r.Envelope(attach, None, None, 3)
    assert codec.decode(codec.encode(attach)) == r.Envelope(attach, None, None, CURRENT_VERSION)


def test_v1_journal_append_decodes_without_a_call_target() -> None:
    append = r.JournalAppend(IID, 4, 0x0408, b"\x0a\x07Counter")
    v1 = io.BytesIO()
    v1.write(bytes((codec.MAGIC, 1)))
    body = (f"{NAMESPACE}.JournalAppend", {
        "invocation_id": IID.to_bytes(), "entry_index": 4, "message_type": 0x0408,
        "message": b"\x0a\x07Counter",
    })
    fastavro.schemaless_writer(
        v1, codec._PARSED[1], {"epoch": None, "dedup_id": None, "body": body}
    )
    assert codec.decode(v1.getvalue()) == r.Envelope(append, None, None, 1)


def test_wire_prefix() -> None:
    data = codec.encode(r.OutboxTruncate(5))
    assert data[0] == codec.MAGIC == 0x4C
    assert data[1] == CURRENT_VERSION


def test_released_schemas_are_frozen() -> None:
    # The Avro fingerprint of every released schema version, forever.
    pinned = {
        1: "7508bef4d8c9b5b8", 2: "f8efbdea8c1f429e", 3: "60811003d682036c", 4: "cd8e6e01c2c42d4a",
        5: "dddd68aaa0e2c97c", 6: "d681f73a34da28a4", 7: "936ede283a071885",
        8: "3935e642783be182", 9: "d2780a4884bc15a2", 10: "dffbd7b0029e63a3", 11: "56403ee2b6edc7c3",
        12: "4b36f7c0b9934507",
    }
    for version, schema in WRITER_SCHEMAS.items():
        canonical = to_parsing_canonical_form(fastavro.parse_schema(schema))
        assert fingerprint(canonical, "CRC-64-AVRO") == pinned[version], f"schema v{version}"


def _schema_records(schema: Any, out: dict[str, list[str]]) -> dict[str, list[str]]:
    if isinstance(schema, list):
        for item in schema:
            _schema_records(item, out)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            out[schema["name"]] = [f["name"] for f in schema["fields"]]
            for f in schema["fields"]:
                _schema_records(f["type"], out)
        elif schema.get("type") == "array":
            _schema_records(schema["items"], out)
    return out


def test_dataclasses_match_the_current_schema() -> None:
    named = _schema_records(WRITER_SCHEMAS[CURRENT_VERSION], {})
    classes = {cls.__name__: cls for cls in codec._DATACLASSES}
    assert set(named) - {"Envelope"} == set(classes)
    for name, fields in named.items():
        if name != "Envelope":
            assert fields == [f.name for f in dataclasses.fields(classes[name])], name
    body = WRITER_SCHEMAS[CURRENT_VERSION]["fields"][2]["type"]
    assert [b["name"] for b in body] == [t.__name__ for t in typing.get_args(r.Record)]


# --- schema evolution --------------------------------------------------------------------------


def test_v1_reader_decodes_current_writer_bytes() -> None:
    data = codec.encode(GOLDEN_INVOKE, epoch=3, dedup_id=r.DedupId("p", 1))
    assert codec.decode(data, reader_version=1) == r.Envelope(
        GOLDEN_INVOKE, 3, r.DedupId("p", 1), CURRENT_VERSION
    )


def _hypothetical_next() -> dict[str, Any]:
    """The current schema plus an optional field on Invoke and a new record type."""
    v2 = copy.deepcopy(WRITER_SCHEMAS[CURRENT_VERSION])
    body = v2["fields"][2]["type"]
    invoke = next(b for b in body if b["name"] == "Invoke")
    invoke["fields"].append({"name": "priority", "type": ["null", "long"], "default": None})
    ping = {"name": "n", "type": "long"}
    body.append({"type": "record", "name": "Ping", "namespace": NAMESPACE, "fields": [ping]})
    return v2


def test_resolution_across_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    cur = CURRENT_VERSION
    nxt = cur + 1
    next_schema = fastavro.parse_schema(_hypothetical_next())
    monkeypatch.setitem(codec._PARSED, nxt, next_schema)

    # New reader, old bytes: the added field takes its default; the record decodes.
    old = codec.encode(GOLDEN_INVOKE)
    assert codec.decode(old, reader_version=nxt).record == GOLDEN_INVOKE

    # Old reader, new bytes (a newer writer setting the new field): the field is dropped.
    datum = typing.cast(
        dict[str, Any],
        fastavro.schemaless_reader(
            io.BytesIO(old[2:]), codec._PARSED[cur], next_schema, return_record_name=True
        ),
    )
    name, payload = datum["body"]
    datum["body"] = (name, {**payload, "priority": 9})
    out = io.BytesIO()
    out.write(bytes((codec.MAGIC, nxt)))
    fastavro.schemaless_writer(out, next_schema, datum)
    envelope = codec.decode(out.getvalue(), reader_version=cur)
    assert envelope.record == GOLDEN_INVOKE
    assert envelope.schema_version == nxt

    # Old reader, new record type: a clear error, not a wrong record.
    out = io.BytesIO()
    out.write(bytes((codec.MAGIC, nxt)))
    ping_record = (f"{NAMESPACE}.Ping", {"n": 1})
    fastavro.schemaless_writer(
        out, next_schema, {"epoch": None, "dedup_id": None, "body": ping_record}
    )
    with pytest.raises(codec.WalCodecError):
        codec.decode(out.getvalue(), reader_version=cur)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "too short"),
        (b"\x4c", "too short"),
        (b"\x00\x01\x02", "first byte is 0x00"),
        (b"\x4c\x63\x00", "schema version 99"),
        (b"\x4c\x01", "corrupt"),
        (b"\x4c\x01\x00\x00\x7f", "corrupt"),
        (GOLDEN_NOTIFY_BYTES + b"\x00", "unexpected bytes"),
        (GOLDEN_NOTIFY_BYTES[:-3], "corrupt"),
    ],
)
def test_decode_errors(data: bytes, fragment: str) -> None:
    with pytest.raises(codec.WalCodecError) as info:
        codec.decode(data)
    assert fragment in str(info.value)
    assert isinstance(info.value, EngineError)


def test_unknown_reader_version() -> None:
    with pytest.raises(codec.WalCodecError, match="reader schema version"):
        codec.decode(GOLDEN_NOTIFY_BYTES, reader_version=42)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_garbage_never_escapes_as_another_error(tail: bytes) -> None:
    try:
        envelope = codec.decode(bytes((codec.MAGIC, CURRENT_VERSION)) + tail)
    except codec.WalCodecError:
        return
    assert isinstance(envelope, r.Envelope)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=2, max_value=len(GOLDEN_INVOKE_BYTES) - 1), st.integers(0, 255))
def test_corrupted_bytes_never_escape_as_another_error(position: int, value: int) -> None:
    data = bytearray(GOLDEN_INVOKE_BYTES)
    data[position] = value
    try:
        codec.decode(bytes(data))
    except codec.WalCodecError:
        pass


@pytest.mark.parametrize(
    "record",
    [
        r.OutboxTruncate(2**63),
        r.OutboxTruncate("x"),  # type: ignore[arg-type]
        r.JournalAppend(IID, 0, 0x0400, "not bytes"),  # type: ignore[arg-type]
        r.Invoke(IID, r.InvocationTarget("S", "h", None, "SERVICE"), b""),  # type: ignore[arg-type]
        r.Invoke(
            IID,
            r.InvocationTarget("S", "h", None, r.ServiceKind.SERVICE),
            b"",
            source=r.Value(b""),  # type: ignore[arg-type]
        ),
    ],
)
def test_encode_errors(record: r.Record) -> None:
    with pytest.raises(codec.WalCodecError):
        codec.encode(record)


def test_encode_rejects_non_records() -> None:
    with pytest.raises(codec.WalCodecError, match="not a WAL record type"):
        codec.encode(r.Value(b"x"))  # type: ignore[arg-type]
    with pytest.raises(codec.WalCodecError):
        codec.encode(r.OutboxTruncate(1), epoch=2**64)
