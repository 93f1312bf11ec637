"""Pure rendering of invocation status rows, journals and payloads for the admin API."""

from __future__ import annotations

from engine.admin.invocation_render import (
    bytes_json,
    invocation_json,
    journal_entry_json,
    state_key_text,
    timestamp_ms,
)
from engine.ids import DeploymentId, InvocationId, InvocationUuid, PartitionKey
from restate_protocol import service_protocol_pb2 as pb
from restate_protocol.messages import MessageType
from engine.storage.invocation_status import InvocationStatus, LastFailure, StatusKind
from restate_protocol import JournalEntry
from engine.wal import records as r

INVOCATION = InvocationId(PartitionKey(7), InvocationUuid(42))
CALLER = InvocationId(PartitionKey(8), InvocationUuid(43))
TARGET = r.InvocationTarget("Account", "hold", "alice", r.ServiceKind.VIRTUAL_OBJECT, r.HandlerKind.EXCLUSIVE)


def test_payloads_are_utf8_text_or_base64_and_can_be_cut() -> None:
    assert bytes_json(b'{"a": 1}') == {"utf8": '{"a": 1}'}
    assert bytes_json(b"\xff\x00") == {"base64": "/wA="}
    assert bytes_json(b"abcdef", limit=3) == {"utf8": "abc", "truncated": True}
    assert bytes_json(b"") == {"utf8": ""}
    assert state_key_text(b"balance") == "balance"
    assert state_key_text(b"\xff") == "base64:/w=="


def test_timestamps_are_rfc3339_utc_with_milliseconds() -> None:
    assert timestamp_ms(None) is None
    assert timestamp_ms(0) == "1970-01-01T00:00:00.000Z"
    assert timestamp_ms(1_714_564_800_123) == "2024-05-01T12:00:00.123Z"


def test_a_completed_killed_invocation_shows_its_failure_and_retention() -> None:
    status = InvocationStatus(
        StatusKind.COMPLETED,
        TARGET,
        b"60000",
        source=r.InvocationSource(CALLER, 3),
        idempotency_key="idem-1",
        created_at_ms=1000,
        modified_at_ms=2500,
        journal_length=3,
        commands=2,
        attempt=1,
        last_failure=LastFailure(500, "boom", 2000),
        deployment_id=DeploymentId(9),
        protocol_version=6,
        result=r.Failure(409, "killed"),
        cleanup_at_ms=86_402_500,
    )
    body = invocation_json(INVOCATION, status)
    assert body["id"] == str(INVOCATION)
    assert body["status"] == "completed"
    assert body["target"] == "Account/alice/hold"
    assert (body["target_service_name"], body["target_service_key"], body["target_handler_name"]) == (
        "Account", "alice", "hold",
    )
    assert (body["target_service_ty"], body["target_handler_ty"]) == ("virtual_object", "exclusive")
    assert (body["invoked_by"], body["invoked_by_id"]) == ("service", str(CALLER))
    assert body["idempotency_key"] == "idem-1"
    assert (body["created_at"], body["modified_at"]) == ("1970-01-01T00:00:01.000Z", "1970-01-01T00:00:02.500Z")
    assert (body["retry_count"], body["last_failure"]) == (1, {"code": 500, "message": "boom"})
    assert "next_retry_at" not in body  # only while a retry is pending
    assert (body["pinned_deployment_id"], body["pinned_service_protocol_version"]) == (str(DeploymentId(9)), 6)
    assert (body["journal_size"], body["journal_commands_size"]) == (3, 2)
    assert body["completion_result"] == "failure"
    assert body["completion_failure"] == {"code": 409, "message": "killed"}
    assert body["completion_retention_until"] == "1970-01-02T00:00:02.500Z"


def test_running_suspended_and_successful_invocations() -> None:
    retrying = InvocationStatus(
        StatusKind.INVOKED, TARGET, b"", source=r.IngressSource("n", "q"), attempt=2,
        last_failure=LastFailure(503, "down", 5000),
    )
    body = invocation_json(INVOCATION, retrying)
    assert (body["status"], body["invoked_by"], body["next_retry_at"]) == (
        "invoked", "ingress", "1970-01-01T00:00:05.000Z",
    )
    assert "completion_result" not in body
    assert not any(k.startswith("last_failure_related") for k in body)  # the failure named no command
    at_command = InvocationStatus(
        StatusKind.INVOKED, TARGET, b"", attempt=1,
        last_failure=LastFailure(500, "wobbles", 5000, 2, "wobble", MessageType.RUN_COMMAND),
    )
    body = invocation_json(INVOCATION, at_command)
    assert (
        body["last_failure_related_command_index"],
        body["last_failure_related_command_name"],
        body["last_failure_related_command_type"],
    ) == (2, "wobble", "Run")
    suspended = InvocationStatus(
        StatusKind.SUSPENDED, TARGET, b"", waiting_for=(r.CompletionId(1), r.SignalIndex(1), r.SignalName("go"))
    )
    assert invocation_json(INVOCATION, suspended)["waiting_for"] == [
        {"completion_id": 1}, {"signal_index": 1}, {"signal_name": "go"},
    ]
    service = InvocationStatus(
        StatusKind.COMPLETED, r.InvocationTarget("Proxy", "nap", None, r.ServiceKind.SERVICE), b"",
        result=r.Value(b'"awake"'),
    )
    body = invocation_json(INVOCATION, service)
    assert (body["target"], body["target_service_key"], body["target_handler_ty"]) == ("Proxy/nap", None, None)
    assert (body["completion_result"], body["completion_value"]) == ("success", {"utf8": '"awake"'})
    assert body["invoked_by"] == "unknown"


def test_journal_entries_are_decoded_compactly_with_their_names() -> None:
    sleep = pb.SleepCommandMessage(wake_up_time=1234, result_completion_id=1, name="nap")
    entry = journal_entry_json(1, JournalEntry(MessageType.SLEEP_COMMAND, sleep.SerializeToString()))
    assert entry == {
        "index": 1, "kind": "command", "type": "SleepCommand", "name": "nap",
        "entry": {"wake_up_time": 1234, "result_completion_id": 1},
    }
    set_state = pb.SetStateCommandMessage(key=b"balance", value=pb.Value(content=b"42"))
    assert journal_entry_json(2, JournalEntry(MessageType.SET_STATE_COMMAND, set_state.SerializeToString())) == {
        "index": 2, "kind": "command", "type": "SetStateCommand",
        "entry": {"key": {"utf8": "balance"}, "value": {"content": {"utf8": "42"}}},
    }
    signal = pb.SignalNotificationMessage(idx=1, void=pb.Void())
    assert journal_entry_json(3, JournalEntry(MessageType.SIGNAL_NOTIFICATION, signal.SerializeToString())) == {
        "index": 3, "kind": "notification", "type": "SignalNotification", "entry": {"idx": 1, "void": {}},
    }
    custom = journal_entry_json(4, JournalEntry(0xFC01, b"\x00\x01"))
    assert custom == {"index": 4, "kind": "custom", "type": "Custom(0xfc01)", "entry": {"base64": "AAE="}}
    broken = journal_entry_json(5, JournalEntry(MessageType.SLEEP_COMMAND, b"\xff\xff\xff"))
    assert broken["type"] == "SleepCommand" and "decode_error" in broken
