"""The invoker's attempt session against services built with the official ``restate-sdk``.

Every test drives an invocation the way the engine will (see ``driver.py``): run an
attempt, journal what it emitted, add the notifications the engine would deliver, run
the next attempt with the grown journal. The SDK is the real one, served by hypercorn
over HTTP/1.1, so it speaks request/response mode: each side effect, timer or call
result it does not have yet ends the request with a suspension.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import pytest

from engine.ids import InvocationId, InvocationUuid, make_partition_key
from engine.invoker.client import create_http_session
from restate_protocol import MessageType, ProtocolVersion, pb
from engine.invoker.retry import RetryAction, RetryPolicy, decide
from engine.invoker.task import AttemptOutcome, FailureKind, OutcomeKind
from engine.wal.records import (
    CallTarget,
    CompletionId,
    Failure,
    InvocationEnded,
    InvocationIdResult,
    InvocationSuspended,
    JournalAppend,
    Notify,
    Record,
    ServiceKind,
    SignalIndex,
    Value,
    Void,
)
from tests.engine.invoker.driver import Driver, new_task
from tests.fixtures.official_sdk_features import MODE_HEADER
from tests.fixtures.service_endpoint import ServiceEndpoint
from tests.fixtures.ports import free_port

T = TypeVar("T")
ALL_VERSIONS = [ProtocolVersion.V5, ProtocolVersion.V6, ProtocolVersion.V7]
CANCEL = SignalIndex(pb.BuiltInSignal.CANCEL)


def run(scenario: Callable[[Driver], Awaitable[T]], endpoint: ServiceEndpoint, *args: object, **kwargs: object) -> T:
    """Run ``scenario`` with a driver for a fresh invocation of ``args``."""

    async def main() -> T:
        async with create_http_session() as http:
            driver = Driver(http, new_task(endpoint.url, *args, **kwargs))  # type: ignore[arg-type]
            return await scenario(driver)

    return asyncio.run(main())


def json_value(value: object) -> Value:
    return Value(json.dumps(value).encode())


def types_of(records: Sequence[Record]) -> list[str]:
    """Record kinds, with the message type for journal appends: easy to compare."""
    names = []
    for record in records:
        if isinstance(record, JournalAppend):
            names.append(MessageType(record.message_type).name)
        else:
            names.append(type(record).__name__)
    return names


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{int(v)}")
def test_greeter_journals_output_and_ends(features_endpoint: ServiceEndpoint, version: ProtocolVersion) -> None:
    async def scenario(d: Driver) -> None:
        outcome, records = await d.attempt()
        assert outcome.kind is OutcomeKind.ENDED, outcome
        assert outcome.result == json_value("Hello Ada")
        assert outcome.new_entries == 1
        assert outcome.protocol_version == version
        assert outcome.sdk_server is not None and outcome.sdk_server.startswith("restate-sdk-python")
        assert records == [
            JournalAppend(
                d.task.invocation_id, 1, MessageType.OUTPUT_COMMAND, d.journal[1].message,
                command_index=1,
            ),
            InvocationEnded(d.task.invocation_id, json_value("Hello Ada")),
        ]

    run(scenario, features_endpoint, "Features", "greet", "Ada", version=version)


def test_replaying_a_finished_journal_ends_with_the_stored_output(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        await d.attempt()
        # An attempt that stored the output but broke off before End: the next one
        # replays the output and only sends End.
        outcome, records = await d.attempt()
        assert outcome.ended and outcome.new_entries == 0
        assert records == [InvocationEnded(d.task.invocation_id, json_value("Hello Ada"))]

    run(scenario, features_endpoint, "Features", "greet", "Ada")


def test_start_message_reaches_the_sdk(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        outcome, _ = await d.attempt()
        assert outcome.ended and isinstance(outcome.result, Value)
        assert json.loads(outcome.result.content) == {
            "id": str(d.task.invocation_id),
            "idempotency_key": "order-7",
            "extra": "from-deployment",
        }

    run(
        scenario,
        features_endpoint,
        "Features",
        "whoami",
        "Ada",
        headers=(("x-extra", "from-deployment"),),
        idempotency_key="order-7",
    )


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{int(v)}")
def test_each_run_proposes_suspends_and_resumes_from_the_journal(
    features_endpoint: ServiceEndpoint, version: ProtocolVersion
) -> None:
    async def scenario(d: Driver) -> None:
        iid = d.task.invocation_id
        first, records = await d.attempt()
        assert types_of(records) == ["RUN_COMMAND", "Notify", "InvocationSuspended"]
        run_command = pb.RunCommandMessage.FromString(d.journal[1].message)
        assert run_command.name == "first"
        assert records[1] == Notify(iid, CompletionId(run_command.result_completion_id), json_value("first Ada"))
        assert records[2] == InvocationSuspended(iid, (CompletionId(run_command.result_completion_id), CANCEL))
        assert first.suspended and first.waiting_for == records[2].waiting_for
        # The run command and its completion notification both took journal indexes.
        assert first.new_entries == 2

        second, records = await d.attempt()
        assert types_of(records) == ["RUN_COMMAND", "Notify", "InvocationSuspended"]
        assert isinstance(records[0], JournalAppend) and records[0].entry_index == 3
        assert second.waiting_for == (CompletionId(2), CANCEL)

        third, records = await d.attempt()
        assert types_of(records) == ["OUTPUT_COMMAND", "InvocationEnded"]
        assert third.result == json_value("first Ada, second Ada")
        assert d.journal_types == [
            MessageType.INPUT_COMMAND,
            MessageType.RUN_COMMAND,
            MessageType.RUN_COMPLETION,
            MessageType.RUN_COMMAND,
            MessageType.RUN_COMPLETION,
            MessageType.OUTPUT_COMMAND,
        ]

    run(scenario, features_endpoint, "Features", "two_runs", "Ada", version=version)


@pytest.mark.parametrize("version", [ProtocolVersion.V5, ProtocolVersion.V7], ids=lambda v: f"v{int(v)}")
def test_sleep_suspends_until_the_timer_completes(features_endpoint: ServiceEndpoint, version: ProtocolVersion) -> None:
    async def scenario(d: Driver) -> None:
        iid = d.task.invocation_id
        before_ms = int(time.time() * 1000)
        outcome, records = await d.attempt()
        assert types_of(records) == ["SLEEP_COMMAND", "InvocationSuspended"]
        sleep = pb.SleepCommandMessage.FromString(d.journal[1].message)
        assert sleep.name == "nap"
        assert sleep.wake_up_time >= before_ms + 250
        assert outcome.waiting_for == (CompletionId(sleep.result_completion_id), CANCEL)

        # The timer service fires: the state machine journals a sleep completion.
        d.notify(Notify(iid, CompletionId(sleep.result_completion_id), Void()))
        assert d.journal_types[-1] == MessageType.SLEEP_COMPLETION
        outcome, records = await d.attempt()
        assert outcome.result == json_value("Rested Ada")
        assert types_of(records) == ["OUTPUT_COMMAND", "InvocationEnded"]

    run(scenario, features_endpoint, "Features", "sleepy", "Ada", version=version)


def test_call_suspends_until_the_callee_answers(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        iid = d.task.invocation_id
        outcome, records = await d.attempt()
        assert types_of(records) == ["CALL_COMMAND", "InvocationSuspended"]
        call = pb.CallCommandMessage.FromString(d.journal[1].message)
        assert (call.service_name, call.handler_name, call.parameter) == ("Echo", "shout", b'"Ada"')
        assert outcome.waiting_for == (CompletionId(call.result_completion_id), CANCEL)

        callee = InvocationId(make_partition_key(9), InvocationUuid.generate())
        d.notify(Notify(iid, CompletionId(call.invocation_id_notification_idx), InvocationIdResult(callee)))
        d.notify(Notify(iid, CompletionId(call.result_completion_id), json_value("ADA")))
        assert d.journal_types[-2:] == [MessageType.CALL_INVOCATION_ID_COMPLETION, MessageType.CALL_COMPLETION]
        outcome, _ = await d.attempt()
        assert outcome.result == json_value("Echo said ADA")

    run(scenario, features_endpoint, "Features", "call_echo", "Ada")


def test_call_commands_carry_the_resolved_target_kind(features_endpoint: ServiceEndpoint) -> None:
    asked: list[tuple[str, str]] = []

    def resolve(service: str, handler: str) -> CallTarget:
        asked.append((service, handler))
        return CallTarget(ServiceKind.SERVICE, None)

    async def scenario(d: Driver) -> None:
        d.resolve_call = resolve
        _, records = await d.attempt()
        call = records[0]
        assert isinstance(call, JournalAppend) and call.message_type == MessageType.CALL_COMMAND
        assert call.call_target == CallTarget(ServiceKind.SERVICE, None)
        assert asked == [("Echo", "shout")]

    run(scenario, features_endpoint, "Features", "call_echo", "Ada")


def test_call_to_an_unregistered_service_fails_the_attempt_with_404(features_endpoint: ServiceEndpoint) -> None:
    def resolve(service: str, handler: str) -> CallTarget:
        raise LookupError(f"The requested service '{service}' does not exist")

    async def scenario(d: Driver) -> None:
        d.resolve_call = resolve
        outcome, records = await d.attempt()
        assert records == []  # nothing journaled: the retry starts from the same point
        assert outcome.failed and outcome.failure is not None
        assert outcome.failure.kind is FailureKind.UNKNOWN_CALL_TARGET
        assert outcome.failure.code == 404
        assert "'Echo' does not exist" in outcome.failure.message
        assert outcome.failure.related_command_index == 1

    run(scenario, features_endpoint, "Features", "call_echo", "Ada")


def test_complete_eager_state_is_read_without_a_round_trip(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        outcome, records = await d.attempt()
        assert types_of(records) == [
            "GET_EAGER_STATE_COMMAND",
            "SET_STATE_COMMAND",
            "OUTPUT_COMMAND",
            "InvocationEnded",
        ]
        get = pb.GetEagerStateCommandMessage.FromString(d.journal[1].message)
        assert (get.key, get.value.content) == (b"count", b"2")
        assert pb.SetStateCommandMessage.FromString(d.journal[2].message).value.content == b"5"
        assert outcome.result == json_value(5)

    run(scenario, features_endpoint, "Counter", "add", 3, key="k1", eager_state=((b"count", b"2"),))


def test_key_missing_from_complete_state_reads_as_absent(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        outcome, records = await d.attempt()
        get = pb.GetEagerStateCommandMessage.FromString(d.journal[1].message)
        assert get.WhichOneof("result") == "void"
        assert outcome.result == json_value(3)

    run(scenario, features_endpoint, "Counter", "add", 3, key="k1", eager_state=(), partial_state=False)


def test_partial_state_fetches_missing_keys_lazily(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        iid = d.task.invocation_id
        outcome, records = await d.attempt()
        assert types_of(records) == ["GET_LAZY_STATE_COMMAND", "InvocationSuspended"]
        get = pb.GetLazyStateCommandMessage.FromString(d.journal[1].message)
        assert get.key == b"count"
        assert outcome.waiting_for == (CompletionId(get.result_completion_id), CANCEL)

        d.notify(Notify(iid, CompletionId(get.result_completion_id), Value(b"10")))
        assert d.journal_types[-1] == MessageType.GET_LAZY_STATE_COMPLETION
        outcome, records = await d.attempt()
        assert types_of(records) == ["SET_STATE_COMMAND", "OUTPUT_COMMAND", "InvocationEnded"]
        assert outcome.result == json_value(13)

    run(
        scenario,
        features_endpoint,
        "Counter",
        "add",
        3,
        key="k1",
        eager_state=((b"other", b"1"),),
        partial_state=True,
    )


def test_state_clearing_is_journaled(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        outcome, records = await d.attempt()
        assert types_of(records) == [
            "CLEAR_STATE_COMMAND",
            "CLEAR_ALL_STATE_COMMAND",
            "OUTPUT_COMMAND",
            "InvocationEnded",
        ]
        assert outcome.result == json_value("k1")

    run(scenario, features_endpoint, "Counter", "reset", None, key="k1")


def test_terminal_error_ends_the_invocation_with_a_failure(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        outcome, records = await d.attempt()
        failure = Failure(418, "no greeting for Ada")
        assert outcome.ended and outcome.result == failure
        assert types_of(records) == ["OUTPUT_COMMAND", "InvocationEnded"]
        assert records[-1] == InvocationEnded(d.task.invocation_id, failure)

    run(scenario, features_endpoint, "Features", "fail_terminal", "Ada")


def test_plain_exception_fails_the_attempt_retryably(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        outcome, records = await d.attempt()
        assert records == []
        assert outcome.failed and outcome.failure is not None
        failure = outcome.failure
        assert failure.kind is FailureKind.SDK_ERROR
        assert failure.code == 500
        assert "transient trouble for Ada" in failure.message
        assert "ValueError" in failure.stacktrace
        assert failure.next_retry_delay_ms is None
        assert not failure.non_deterministic
        decision = decide(RetryPolicy(), attempt=1, failure=failure)
        assert (decision.action, decision.delay_ms) == (RetryAction.RETRY, 500)

    run(scenario, features_endpoint, "Features", "fail_retryable", "Ada")


def test_retryable_error_carries_the_requested_delay(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        outcome, _ = await d.attempt()
        assert outcome.failure is not None
        assert outcome.failure.next_retry_delay_ms == 7000
        decision = decide(RetryPolicy(), attempt=3, failure=outcome.failure)
        assert (decision.action, decision.delay_ms) == (RetryAction.RETRY, 7000)

    run(scenario, features_endpoint, "Features", "fail_with_delay", "Ada")


def test_failing_run_is_retried_until_the_sdk_gives_up(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        iid = d.task.invocation_id
        outcome, records = await d.attempt()
        # The run command is durable even though the attempt failed.
        assert types_of(records) == ["RUN_COMMAND"]
        failure = outcome.failure
        assert failure is not None and failure.kind is FailureKind.SDK_ERROR
        assert (failure.related_command_index, failure.related_command_name) == (1, "boom")
        assert failure.related_command_type == MessageType.RUN_COMMAND
        # The SDK's own run retry policy (50 ms, doubling) names the delay.
        assert failure.next_retry_delay_ms == 50

        # Attempts since the run command was stored reach the run's max_attempts (3):
        # the SDK turns the error into a terminal run result instead of failing again.
        outcome, records = await d.attempt(
            retry_count_since_last_stored_entry=3, duration_since_last_stored_entry_ms=150
        )
        assert types_of(records) == ["Notify", "InvocationSuspended"]
        notify = records[0]
        assert isinstance(notify, Notify) and isinstance(notify.result, Failure)
        assert "side effect failed for Ada" in notify.result.message

        outcome, records = await d.attempt(retry_count_since_last_stored_entry=0)
        assert outcome.ended and isinstance(outcome.result, Failure)
        assert "side effect failed for Ada" in outcome.result.message
        assert records[-1] == InvocationEnded(iid, outcome.result)

    run(scenario, features_endpoint, "Features", "flaky_run", "Ada")


def test_diverging_replay_is_flagged_non_deterministic(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        outcome, records = await d.attempt()
        assert types_of(records) == ["RUN_COMMAND", "Notify", "InvocationSuspended"]
        # Same journal, but this attempt's code path sleeps where the journal has a run.
        outcome, records = await d.attempt(
            endpoint=dataclasses.replace(d.task.endpoint, additional_headers=((MODE_HEADER, "sleep"),))
        )
        assert records == []
        failure = outcome.failure
        assert failure is not None
        assert failure.non_deterministic and failure.code == 570
        assert failure.related_command_index == 1
        assert failure.related_command_type == MessageType.SLEEP_COMMAND

    run(scenario, features_endpoint, "Features", "nondeterministic", "Ada")


def test_random_seed_drives_the_sdk_generator(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        first, _ = await d.attempt(random_seed=7)
        again = await run_fresh(d, random_seed=7)
        other = await run_fresh(d, random_seed=8)
        assert first.result == again.result
        assert first.result != other.result

    async def run_fresh(d: Driver, random_seed: int) -> AttemptOutcome:
        fresh = Driver(d.http, new_task(features_endpoint.url, "Features", "random_number", "x"))
        outcome, _ = await fresh.attempt(random_seed=random_seed)
        return outcome

    run(scenario, features_endpoint, "Features", "random_number", "x")


def test_silent_endpoint_hits_the_inactivity_timeout(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        started = time.monotonic()
        outcome, records = await d.attempt()
        elapsed = time.monotonic() - started
        assert outcome.failure is not None
        assert outcome.failure.kind is FailureKind.INACTIVITY_TIMEOUT
        assert outcome.failure.timed_out and outcome.failure.code == 504
        assert "300 ms" in outcome.failure.message
        # The run command arrived before the side effect started, and stays journaled.
        assert types_of(records) == ["RUN_COMMAND"]
        assert elapsed < 2.5

    run(scenario, features_endpoint, "Features", "slow_run", 3.0, inactivity_timeout_ms=300)


def test_long_attempt_hits_the_abort_timeout(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        started = time.monotonic()
        outcome, _ = await d.attempt()
        assert outcome.failure is not None
        assert outcome.failure.kind is FailureKind.ABORT_TIMEOUT
        assert time.monotonic() - started < 2.5

    run(
        scenario,
        features_endpoint,
        "Features",
        "slow_run",
        3.0,
        inactivity_timeout_ms=10_000,
        abort_timeout_ms=400,
    )


def test_unknown_handler_is_a_transport_failure(features_endpoint: ServiceEndpoint) -> None:
    async def scenario(d: Driver) -> None:
        outcome, records = await d.attempt()
        assert records == []
        assert outcome.failure is not None
        assert outcome.failure.kind is FailureKind.TRANSPORT
        assert outcome.failure.http_status == outcome.failure.code == 404

    run(scenario, features_endpoint, "Features", "nope", "Ada")


def test_endpoint_down_is_a_transport_failure() -> None:
    async def main() -> None:
        async with create_http_session() as http:
            d = Driver(http, new_task(f"http://127.0.0.1:{free_port()}", "Features", "greet", "Ada"))
            outcome, records = await d.attempt()
        assert records == []
        assert outcome.failure is not None
        assert outcome.failure.kind is FailureKind.TRANSPORT
        assert outcome.failure.code == 503
        assert "cannot reach" in outcome.failure.message

    asyncio.run(main())
