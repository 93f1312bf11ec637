"""``entry_json`` of commands in the shape restate-server 1.7.12 gives them (the strings
below are what its ``sys_journal`` answered for the same entries), which the restate CLI
parses to show ``Sleep until ...`` and ``GetPromise key ...``."""

from __future__ import annotations

import json

from engine.query.journal_json import entry_json
from restate_protocol import JournalEntry
from restate_protocol import service_protocol_pb2 as pb
from restate_protocol.messages import MessageType


def _entry(message_type: MessageType, message: object) -> JournalEntry:
    return JournalEntry(int(message_type), message.SerializeToString())  # type: ignore[attr-defined]


def test_sleep_and_get_promise_as_restate_server_shows_them() -> None:
    sleep = _entry(MessageType.SLEEP_COMMAND, pb.SleepCommandMessage(wake_up_time=1796411780433, result_completion_id=1))
    assert entry_json(sleep) == (
        '{"Command":{"Sleep":{"wake_up_time":1796411780433,"completion_id":1,"name":""}}}',
        '{"Command":{"Sleep":{"wake_up_time":1796411780433,"completion_id":1}}}',
    )
    promise = _entry(MessageType.GET_PROMISE_COMMAND, pb.GetPromiseCommandMessage(key="approval", result_completion_id=1))
    assert entry_json(promise) == (
        '{"Command":{"GetPromise":{"key":"approval","completion_id":1,"name":""}}}',
        '{"Command":{"GetPromise":{"key":"approval","completion_id":1}}}',
    )


def test_input_headers_and_payload() -> None:
    message = pb.InputCommandMessage(headers=[pb.Header(key="content-type", value="application/json")],
                                     value=pb.Value(content=b'"x"'))
    full, lite = entry_json(_entry(MessageType.INPUT_COMMAND, message))
    assert full is not None and json.loads(full) == {"Command": {"Input": {
        "headers": [{"name": "content-type", "value": "application/json"}], "payload": [34, 120, 34], "name": ""}}}
    assert lite == '{"Command":{"Input":{}}}'


def test_a_call_keeps_both_completion_ids() -> None:
    message = pb.CallCommandMessage(service_name="S", handler_name="h", invocation_id_notification_idx=1,
                                    result_completion_id=2, name="c")
    full, _ = entry_json(_entry(MessageType.CALL_COMMAND, message))
    assert full is not None
    body = json.loads(full)["Command"]["Call"]
    assert (body["invocation_id_completion_id"], body["result_completion_id"], body["name"]) == (1, 2, "c")


def test_a_call_names_its_callee_and_target_as_restate_does() -> None:
    from engine.ids import InvocationUuid
    from engine.partition.state_machine.journal_commands import callee_invocation_id
    from engine.wal.partitioning import invocation_id_for

    caller = invocation_id_for("C", None, InvocationUuid.generate())
    message = pb.CallCommandMessage(service_name="S", handler_name="h", key="k", parameter=b"1",
                                    invocation_id_notification_idx=1, result_completion_id=2)
    full, lite = entry_json(_entry(MessageType.CALL_COMMAND, message), caller, 3)
    assert full is not None and lite is not None
    body = json.loads(full)["Command"]["Call"]
    callee = str(callee_invocation_id(caller, 3, "S", "k", "h", None))
    # Not registered (no metadata): keyed, so an object, with no handler kind.
    assert body["request"]["invocation_id"] == callee
    assert body["request"]["invocation_target"] == {"VirtualObject": {"name": "S", "key": "k", "handler": "h",
                                                                      "scope": None}}
    assert body["request"]["parameter"] == [49] and body["request"]["idempotency_key"] is None
    assert body["request"]["completion_retention_duration"] == {"secs": 0, "nanos": 0}
    assert (body["invocation_id_completion_id"], body["result_completion_id"]) == (1, 2)
    assert "service_name" not in body and "parameter" not in body
    assert json.loads(lite)["Command"]["Call"]["request"] == {
        "invocation_id": callee, "invocation_target": body["request"]["invocation_target"]}


def test_completions_as_restate_server_shows_them() -> None:
    run = pb.RunCompletionNotificationMessage(completion_id=1, value=pb.Value(content=b'"label-bob"'))
    full, _ = entry_json(_entry(MessageType.RUN_COMPLETION, run))
    assert full == ('{"Notification":{"Completion":{"Run":{"completion_id":1,"result":{"Success":'
                    '[34,108,97,98,101,108,45,98,111,98,34]}}}}}')
    call_id = pb.CallInvocationIdCompletionNotificationMessage(completion_id=2, invocation_id="inv_1x")
    full, _ = entry_json(_entry(MessageType.CALL_INVOCATION_ID_COMPLETION, call_id))
    assert full == '{"Notification":{"Completion":{"CallInvocationId":{"completion_id":2,"invocation_id":"inv_1x"}}}}'
