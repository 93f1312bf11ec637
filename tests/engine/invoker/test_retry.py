"""Retry policy arithmetic and the decision after a failed attempt."""

from __future__ import annotations

import pytest

from engine.ids import InvocationId, InvocationUuid, make_partition_key
from engine.invoker.retry import (
    RetryAction,
    RetryDecision,
    RetryPolicy,
    decide,
    failed_attempt_record,
    next_delay,
)
from engine.invoker.task import AttemptFailure, ErrorBehavior, FailureKind
from engine.wal.records import InvocationFailedAttempt

IID = InvocationId(make_partition_key(3), InvocationUuid(99))


def sdk_failure(**fields: object) -> AttemptFailure:
    return AttemptFailure(kind=FailureKind.SDK_ERROR, code=500, message="boom", **fields)  # type: ignore[arg-type]


def test_defaults_are_restates() -> None:
    policy = RetryPolicy()
    assert (policy.initial_interval_ms, policy.factor, policy.max_interval_ms) == (500, 2.0, 60_000)
    assert (policy.max_attempts, policy.on_max_attempts) == (70, "pause")


def test_exponential_back_off_is_capped() -> None:
    policy = RetryPolicy(initial_interval_ms=50, factor=2.0, max_interval_ms=10_000, max_attempts=None)
    assert [next_delay(policy, attempt) for attempt in range(1, 11)] == [
        50, 100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000,
    ]
    # Far beyond float range: still the cap, not an overflow.
    assert next_delay(policy, 100_000) == 10_000


def test_factor_one_is_a_fixed_delay() -> None:
    policy = RetryPolicy(initial_interval_ms=250, factor=1.0, max_attempts=None)
    assert {next_delay(policy, attempt) for attempt in range(1, 50)} == {250}


def test_attempts_run_out_at_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert next_delay(policy, 1) == 500
    assert next_delay(policy, 2) == 1000
    # The third attempt was the last one allowed.
    assert next_delay(policy, 3) is None
    assert RetryPolicy(max_attempts=1).max_attempts == 1 and next_delay(RetryPolicy(max_attempts=1), 1) is None


def test_sdk_hint_replaces_the_delay_but_not_the_limit() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert next_delay(policy, 1, hint_ms=7000) == 7000
    assert next_delay(policy, 2, hint_ms=0) == 0
    assert next_delay(policy, 3, hint_ms=7000) is None


def test_decide_follows_the_policy_and_the_sdk() -> None:
    policy = RetryPolicy(max_attempts=2, on_max_attempts="kill")
    assert decide(policy, 1, sdk_failure()) == RetryDecision(RetryAction.RETRY, delay_ms=500)
    assert decide(policy, 1, sdk_failure(next_retry_delay_ms=42)).delay_ms == 42
    exhausted = decide(policy, 2, sdk_failure())
    assert exhausted.action is RetryAction.KILL and "2 attempts" in exhausted.reason
    assert decide(RetryPolicy(max_attempts=1), 1, sdk_failure()).action is RetryAction.PAUSE
    assert decide(policy, 1, sdk_failure(behavior=ErrorBehavior.PAUSE)).action is RetryAction.PAUSE
    assert decide(policy, 1, sdk_failure(behavior=ErrorBehavior.FAIL)).action is RetryAction.KILL


def test_failed_attempt_record_carries_the_absolute_retry_time() -> None:
    record = failed_attempt_record(IID, sdk_failure(), attempt=2, now_ms=1_000_000, delay_ms=1000)
    assert record == InvocationFailedAttempt(IID, 500, "boom", retry_at_ms=1_001_000, attempt=2)
    with pytest.raises(ValueError):
        failed_attempt_record(IID, sdk_failure(), attempt=2, now_ms=0, delay_ms=-1)
    at_command = sdk_failure(related_command_index=2, related_command_name="wobble", related_command_type=0x0411)
    assert failed_attempt_record(IID, at_command, attempt=1, now_ms=0, delay_ms=5) == InvocationFailedAttempt(
        IID, 500, "boom", 5, 1, related_command_index=2, related_command_name="wobble", related_command_type=0x0411
    )
    unnamed = sdk_failure(related_command_index=0, related_command_name="")
    assert failed_attempt_record(IID, unnamed, attempt=1, now_ms=0, delay_ms=5).related_command_name is None


def test_an_sdk_retry_delay_beyond_what_the_engine_stores_is_capped() -> None:
    """``next_retry_delay`` is a u64: 2^64 - 1 ms must still make a record that encodes
    and applies (it used to fail to encode, leaving the attempt's failure unrecorded)."""
    from engine.journal.limits import MAX_TIME_MS
    from engine.wal import codec

    failure = sdk_failure(next_retry_delay_ms=2**64 - 1)
    decision = decide(RetryPolicy(), 1, failure)
    assert decision.delay_ms is not None
    record = failed_attempt_record(IID, failure, attempt=1, now_ms=1_700_000_000_000, delay_ms=decision.delay_ms)
    assert record.retry_at_ms == MAX_TIME_MS
    assert codec.decode(codec.encode(record)).record == record


@pytest.mark.parametrize(
    "fields",
    [
        {"initial_interval_ms": 0},
        {"factor": 0.5},
        {"factor": float("inf")},
        {"max_interval_ms": 10},
        {"max_attempts": 0},
        {"on_max_attempts": "retry"},
    ],
)
def test_invalid_policies_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**fields)  # type: ignore[arg-type]


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError):
        next_delay(RetryPolicy(), 0)
