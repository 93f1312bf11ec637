"""How an attempt reacts to endpoints that break HTTP or the protocol.

The endpoint here is a real TCP server writing hand-made responses (``raw_endpoint``),
so every failure path runs through the HTTP client and the frame decoder exactly as in
production.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from engine.invoker.client import create_http_session
from restate_protocol import (
    REQUESTED_ACK,
    MessageType,
    ProtocolVersion,
    content_type,
    decode_frames,
    encode_frame,
    encode_frames,
    encode_raw_frame,
    pb,
)
from engine.invoker.request import INVOCATION_ID_HEADER, SERVICE_KEY_HEADER
from engine.invoker.retry import RetryAction, RetryPolicy, decide
from engine.invoker.session import run_attempt
from restate_protocol.messages import spec_for_message
from engine.invoker.task import (
    AttemptOutcome,
    ErrorBehavior,
    FailureKind,
    InvocationTask,
    JournalEntry,
    OutcomeKind,
)
from engine.wal.records import (
    CompletionId,
    InvocationEnded,
    InvocationSuspended,
    JournalAppend,
    Notify,
    Record,
    SignalIndex,
    SignalName,
    Value,
)
from tests.engine.invoker.driver import input_entry, new_task
from tests.engine.invoker.raw_endpoint import Reply, Seen, frames_response, http_response, raw_endpoint

OUTPUT = pb.OutputCommandMessage(value=pb.Value(content=b'"ok"'))


def attempt(reply: Reply, **task_fields: object) -> tuple[AttemptOutcome, list[Record], Seen, InvocationTask]:
    """Run one attempt of a Svc/run invocation against an endpoint answering ``reply``."""

    async def main() -> tuple[AttemptOutcome, list[Record], Seen, InvocationTask]:
        records: list[Record] = []

        async def emit(record: Record) -> None:
            records.append(record)

        async with raw_endpoint(lambda path, body: reply) as (url, seen), create_http_session() as http:
            task = new_task(url, "Svc", "run", "in", **task_fields)  # type: ignore[arg-type]
            outcome = await run_attempt(task, http, emit)
        return outcome, records, seen, task

    return asyncio.run(main())


def failure_of(outcome: AttemptOutcome) -> tuple[FailureKind, int, str]:
    assert outcome.failure is not None, outcome
    return outcome.failure.kind, outcome.failure.code, outcome.failure.message


def test_request_carries_start_message_journal_and_protocol_headers() -> None:
    outcome, _, seen, task = attempt(
        frames_response(OUTPUT, pb.EndMessage()),
        key="user/1",
        headers=(("authorization", "Bearer t"), ("content-type", "text/plain")),
    )
    assert outcome.ended
    (path, headers, body), = seen.requests
    assert path == "/invoke/Svc/run"
    assert headers["content-type"] == headers["accept"] == content_type(ProtocolVersion.V7)
    assert headers["authorization"] == "Bearer t"
    assert headers[INVOCATION_ID_HEADER] == str(task.invocation_id)
    assert headers[SERVICE_KEY_HEADER] == "user%2F1"
    assert headers["user-agent"].startswith("logstrate/")
    assert headers["content-length"] == str(len(body))


def test_wrong_content_type_is_a_transport_failure() -> None:
    outcome, records, _, _ = attempt(Reply(http_response(b"hello", ctype="text/plain")))
    kind, code, message = failure_of(outcome)
    assert (kind, code) == (FailureKind.TRANSPORT, 502)
    assert "text/plain" in message
    assert records == []


def test_other_protocol_version_in_the_answer_is_refused() -> None:
    reply = Reply(http_response(encode_frame(pb.EndMessage()), ctype=content_type(5)))
    kind, _, message = failure_of(attempt(reply)[0])
    assert kind is FailureKind.TRANSPORT
    assert "v5" in message and "v7" in message


def test_unsupported_media_type_names_the_protocol_version() -> None:
    reply = Reply(http_response(b"", status="415 Unsupported Media Type", ctype=None))
    outcome = attempt(reply)[0]
    kind, code, message = failure_of(outcome)
    assert (kind, code) == (FailureKind.TRANSPORT, 415)
    assert "service protocol v7" in message


def test_truncated_body_is_a_transport_failure_after_the_complete_frames() -> None:
    complete = encode_frame(pb.SetStateCommandMessage(key=b"k", value=pb.Value(content=b"v")))
    partial = encode_frame(OUTPUT)[:5]
    reply = Reply(http_response(complete + partial, declared_length=len(complete) + 100))
    outcome, records, _, _ = attempt(reply)
    kind, _, message = failure_of(outcome)
    assert kind is FailureKind.TRANSPORT
    assert "broke off" in message
    # The complete command was already emitted: it is durable, the retry replays it.
    assert [type(r).__name__ for r in records] == ["JournalAppend"]


def test_stream_ending_inside_a_frame_is_a_protocol_failure() -> None:
    outcome, _, _, _ = attempt(Reply(http_response(encode_frame(OUTPUT)[:-1])))
    kind, code, message = failure_of(outcome)
    assert (kind, code) == (FailureKind.PROTOCOL, 502)
    assert "stream ended inside" in message


def test_stream_without_terminal_message_is_a_protocol_failure() -> None:
    outcome, records, _, task = attempt(frames_response(OUTPUT))
    kind, _, message = failure_of(outcome)
    assert kind is FailureKind.PROTOCOL
    assert "without an End, Suspension or Error" in message
    output = OUTPUT.SerializeToString()
    assert records == [
        JournalAppend(task.invocation_id, 1, MessageType.OUTPUT_COMMAND, output, command_index=1)
    ]
    assert outcome.new_entries == 1


@pytest.mark.parametrize(
    "message",
    [
        pb.StartMessage(known_entries=1),
        pb.CommandAckMessage(command_index=1),
        pb.ProposeRunCompletionAckMessage(completion_id=1),
        pb.SleepCompletionNotificationMessage(completion_id=1, void=pb.Void()),
        pb.InputCommandMessage(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_messages_only_the_runtime_sends_are_protocol_failures(message: pb.StartMessage) -> None:
    kind, _, _ = failure_of(attempt(frames_response(message, pb.EndMessage()))[0])
    assert kind is FailureKind.PROTOCOL


def test_unknown_message_type_is_a_protocol_failure() -> None:
    kind, _, message = failure_of(attempt(Reply(http_response(encode_raw_frame(0x0999, b""))))[0])
    assert kind is FailureKind.PROTOCOL
    assert "0x0999" in message


def test_output_without_result_is_a_protocol_failure() -> None:
    outcome, records, _, _ = attempt(frames_response(pb.OutputCommandMessage(), pb.EndMessage()))
    assert failure_of(outcome)[0] is FailureKind.PROTOCOL
    assert records == []


def test_end_without_any_output_is_a_protocol_failure() -> None:
    outcome, records, _, _ = attempt(frames_response(pb.EndMessage()))
    assert failure_of(outcome)[0] is FailureKind.PROTOCOL
    assert "without an OutputCommand" in failure_of(outcome)[2]
    assert records == []


def test_empty_suspension_is_a_protocol_failure() -> None:
    outcome, records, _, _ = attempt(frames_response(pb.SuspensionMessage()))
    assert failure_of(outcome)[0] is FailureKind.PROTOCOL
    assert records == []


def test_suspension_flattens_the_awaited_future_tree() -> None:
    tree = pb.Future(
        combinator_type=pb.ALL_COMPLETED,
        waiting_completions=[3],
        nested_futures=[
            pb.Future(waiting_completions=[4, 3], waiting_signals=[17]),
            pb.Future(waiting_named_signals=["approved"]),
        ],
    )
    outcome, records, _, task = attempt(frames_response(pb.SuspensionMessage(awaiting_on=tree)))
    waiting = (CompletionId(3), CompletionId(4), SignalIndex(17), SignalName("approved"))
    assert outcome.suspended and outcome.waiting_for == waiting
    assert records == [InvocationSuspended(task.invocation_id, waiting)]


def test_suspension_without_a_tree_falls_back_to_the_last_awaiting_on() -> None:
    awaiting = pb.AwaitingOnMessage(awaiting_on=pb.Future(waiting_completions=[2]))
    outcome, _, _, _ = attempt(frames_response(awaiting, pb.SuspensionMessage()))
    assert outcome.waiting_for == (CompletionId(2),)


def test_acks_requested_on_commands_are_journaled_without_ack() -> None:
    command = pb.SetStateCommandMessage(key=b"k", value=pb.Value(content=b"1"))
    custom_body = b"\x01opaque"
    data = (
        encode_frame(command, requested_ack=True)
        + encode_raw_frame(0xFC01, custom_body)
        + encode_frames(OUTPUT, pb.EndMessage())
    )
    assert data[2:4] == REQUESTED_ACK.to_bytes(2, "big")
    outcome, records, _, task = attempt(Reply(http_response(data)))
    assert outcome.ended and outcome.new_entries == 3
    assert records[:2] == [
        JournalAppend(
            task.invocation_id, 1, MessageType.SET_STATE_COMMAND, command.SerializeToString(),
            command_index=1,
        ),
        JournalAppend(task.invocation_id, 2, 0xFC01, custom_body, command_index=2),
    ]


def test_data_after_the_terminal_message_is_ignored() -> None:
    reply = frames_response(OUTPUT, pb.EndMessage(), extra=encode_frame(OUTPUT) + b"junk")
    outcome, records, _, task = attempt(reply)
    assert outcome.ended
    assert records[-1] == InvocationEnded(task.invocation_id, Value(b'"ok"'))
    assert len(records) == 2


def test_v7_error_behavior_pause_wins_over_the_retry_policy() -> None:
    error = pb.ErrorMessage(code=500, message="stop", behavior=pb.PAUSE, next_retry_delay=5)
    outcome = attempt(frames_response(error))[0]
    assert outcome.failure is not None
    assert outcome.failure.behavior is ErrorBehavior.PAUSE
    assert decide(RetryPolicy(), 1, outcome.failure).action is RetryAction.PAUSE


def test_endpoint_that_never_answers_hits_the_inactivity_timeout() -> None:
    started = time.monotonic()
    outcome = attempt(Reply(b"", hang=True), inactivity_timeout_ms=200)[0]
    kind, code, message = failure_of(outcome)
    assert (kind, code) == (FailureKind.INACTIVITY_TIMEOUT, 504)
    assert "sending the request" in message
    assert time.monotonic() - started < 2


def test_a_failing_emit_abandons_the_attempt() -> None:
    class WalDown(Exception):
        pass

    async def main() -> None:
        async def emit(record: Record) -> None:
            raise WalDown("append not acknowledged")

        reply = frames_response(OUTPUT, pb.EndMessage())
        async with raw_endpoint(lambda path, body: reply) as (url, _), create_http_session() as http:
            with pytest.raises(WalDown):
                await run_attempt(new_task(url, "Svc", "run", "in"), http, emit)

    asyncio.run(main())


def test_records_are_handed_over_in_order_and_the_outcome_waits_until_all_are_durable() -> None:
    """Every record goes to the WAL as its message arrives (one produce for what arrives
    together); the attempt's outcome is returned only once all of them are durable."""
    commands = [pb.SetStateCommandMessage(key=str(i).encode(), value=pb.Value(content=b"x")) for i in range(5)]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handed: list[tuple[str, asyncio.Future[int]]] = []

        def emit(record: Record) -> asyncio.Future[int]:
            future: asyncio.Future[int] = loop.create_future()
            handed.append((type(record).__name__, future))
            return future

        reply = frames_response(*commands, OUTPUT, pb.EndMessage())
        async with raw_endpoint(lambda path, body: reply) as (url, _), create_http_session() as http:
            attempt_task = asyncio.create_task(run_attempt(new_task(url, "Svc", "run", "in"), http, emit))
            deadline = loop.time() + 5
            while len(handed) < 7 and loop.time() < deadline:
                await asyncio.sleep(0.01)
            # All seven were handed over before any was durable, in message order.
            assert [name for name, _ in handed] == ["JournalAppend"] * 6 + ["InvocationEnded"]
            for _, future in handed[:-1]:
                future.set_result(0)
            await asyncio.sleep(0.05)
            assert not attempt_task.done(), "the outcome came before the end record was durable"
            handed[-1][1].set_result(0)
            outcome = await asyncio.wait_for(attempt_task, 5)
        assert outcome.kind is OutcomeKind.ENDED

    asyncio.run(main())


def test_a_record_that_fails_once_handed_over_abandons_the_attempt() -> None:
    class WalDown(Exception):
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def emit(record: Record) -> asyncio.Future[int]:
            future: asyncio.Future[int] = loop.create_future()
            if isinstance(record, JournalAppend):
                future.set_exception(WalDown("append not acknowledged"))
            else:
                future.set_result(1)
            return future

        reply = frames_response(OUTPUT, pb.EndMessage())
        async with raw_endpoint(lambda path, body: reply) as (url, _), create_http_session() as http:
            with pytest.raises(WalDown):
                await run_attempt(new_task(url, "Svc", "run", "in"), http, emit)

    asyncio.run(main())


def test_start_message_fields_reach_the_endpoint() -> None:
    outcome, _, seen, task = attempt(
        frames_response(OUTPUT, pb.EndMessage()),
        key="k",
        eager_state=((b"a", b"1"),),
        partial_state=True,
        retry_count_since_last_stored_entry=4,
        duration_since_last_stored_entry_ms=1234,
        random_seed=99,
    )
    body = seen.requests[0][2]
    frames = decode_frames(body)
    start = frames[0].message
    assert isinstance(start, pb.StartMessage)
    assert start.id == task.invocation_id.to_bytes() and start.debug_id == str(task.invocation_id)
    assert start.known_entries == 1 and start.key == "k" and start.partial_state
    assert [(e.key, e.value) for e in start.state_map] == [(b"a", b"1")]
    assert (start.retry_count_since_last_stored_entry, start.duration_since_last_stored_entry) == (4, 1234)
    assert start.random_seed == 99
    assert [f.type_id for f in frames[1:]] == [MessageType.INPUT_COMMAND]
    assert json.loads(pb.InputCommandMessage.FromString(frames[1].body).value.content) == "in"


def test_notifications_do_not_advance_the_command_numbering() -> None:
    run = pb.RunCommandMessage(result_completion_id=1, name="r")
    proposal = pb.ProposeRunCompletionMessage(result_completion_id=1, value=b'"v"')
    command = pb.SetStateCommandMessage(key=b"k", value=pb.Value(content=b"1"))
    suspension = pb.SuspensionMessage(waiting_completions=[1])
    outcome, records, _, task = attempt(frames_response(run, proposal, command, suspension))
    iid = task.invocation_id
    assert records == [
        JournalAppend(iid, 1, MessageType.RUN_COMMAND, run.SerializeToString(), command_index=1),
        Notify(iid, CompletionId(1), Value(b'"v"')),
        # Command 2, though the run completion lands in the journal first: the state
        # machine places appends by their command index.
        JournalAppend(
            iid, 2, MessageType.SET_STATE_COMMAND, command.SerializeToString(), command_index=2
        ),
        InvocationSuspended(iid, (CompletionId(1),)),
    ]
    assert outcome.new_entries == 3


def test_command_indexes_count_the_replayed_commands_only() -> None:
    """Issue 13: after ``[send, send]`` (each followed by the callee's invocation id in the
    journal) and a custom entry, the next command is command 4, at journal position 6."""
    send = pb.OneWayCallCommandMessage(service_name="Tally", handler_name="add", key="t")
    invocation_id = pb.CallInvocationIdCompletionNotificationMessage(
        completion_id=1, invocation_id="inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz"
    )
    replayed = tuple(
        JournalEntry(spec_for_message(m).type_id, m.SerializeToString())
        for m in (send, invocation_id, send, invocation_id)
    )
    call = pb.CallCommandMessage(service_name="Tally", handler_name="add", key="t")
    custom = b"\x01"
    reply = frames_response(call, pb.SuspensionMessage(waiting_completions=[4]))
    journal = (input_entry("in"), *replayed, JournalEntry(0xFC02, custom))
    outcome, records, _, task = attempt(reply, journal=journal)
    assert outcome.suspended
    assert records[0] == JournalAppend(
        task.invocation_id, 6, MessageType.CALL_COMMAND, call.SerializeToString(), command_index=4
    )
