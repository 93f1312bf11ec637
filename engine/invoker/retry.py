"""What happens after a failed attempt: retry after a back-off, pause, or kill.

The policy follows Restate's invocation retry policy (``default-retry-policy`` in the
server configuration, overridable per service and handler since discovery manifest v4):
exponential back-off from ``initial_interval`` multiplied by ``factor`` per attempt, capped
at ``max_interval``, for at most ``max_attempts`` attempts (the first call included), then
``pause`` (the invocation waits for an operator to resume it) or ``kill`` (it fails and
its caller gets the error). The defaults are Restate's current ones: 500 ms, x2, 60 s,
70 attempts, pause. (Restate before 1.6 defaulted to 50 ms, 10 s cap and unlimited
attempts; pass those explicitly to reproduce it.)

The SDK may steer the next retry through its ErrorMessage: ``next_retry_delay`` replaces
the computed delay for that one retry (the attempt still counts towards
``max_attempts``, so an SDK that always asks for a delay cannot retry forever), and a v7
``behavior`` of PAUSE or FAIL wins over the policy altogether.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Literal

from engine.ids import InvocationId
from engine.invoker.task import AttemptFailure, ErrorBehavior
from engine.journal.limits import MAX_TIME_MS
from engine.wal.records import InvocationFailedAttempt

__all__ = [
    "RetryAction",
    "RetryDecision",
    "RetryPolicy",
    "decide",
    "failed_attempt_record",
    "next_delay",
]

OnMaxAttempts = Literal["pause", "kill"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off with an attempt limit.

    Attributes:
        initial_interval_ms: Delay before the first retry.
        factor: Multiplier applied to the delay for each further retry (>= 1).
        max_interval_ms: Upper bound of any computed delay.
        max_attempts: Attempts allowed in total, the first one included; ``None`` means
            unlimited.
        on_max_attempts: ``"pause"`` or ``"kill"`` once the attempts are used up.
    """

    initial_interval_ms: int = 500
    factor: float = 2.0
    max_interval_ms: int = 60_000
    max_attempts: int | None = 70
    on_max_attempts: OnMaxAttempts = "pause"

    def __post_init__(self) -> None:
        if self.initial_interval_ms <= 0:
            raise ValueError("initial_interval_ms must be positive")
        if not math.isfinite(self.factor) or self.factor < 1.0:
            raise ValueError("factor must be a finite number >= 1.0")
        if self.max_interval_ms < self.initial_interval_ms:
            raise ValueError("max_interval_ms must not be below initial_interval_ms")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None for unlimited)")
        if self.on_max_attempts not in ("pause", "kill"):
            raise ValueError(
                f"on_max_attempts must be 'pause' or 'kill', not {self.on_max_attempts!r}"
            )


class RetryAction(enum.Enum):
    """What to do with an invocation after a failed attempt."""

    RETRY = "retry"
    """Invoke again after ``delay_ms``."""
    PAUSE = "pause"
    """Stop retrying until an operator resumes the invocation."""
    KILL = "kill"
    """Fail the invocation with the attempt's error; its caller gets a failure."""


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """The verdict of :func:`decide`; ``delay_ms`` is set for RETRY only."""

    action: RetryAction
    delay_ms: int | None = None
    reason: str = ""


def next_delay(policy: RetryPolicy, attempt: int, hint_ms: int | None = None) -> int | None:
    """Milliseconds to wait before the next attempt, or ``None`` when none is allowed.

    Args:
        policy: The retry policy in force.
        attempt: Attempts made so far, the failed one included (1 after the first failure).
        hint_ms: The SDK's ``next_retry_delay``; used instead of the computed delay.

    Raises:
        ValueError: ``attempt`` is below 1.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts start at 1, got {attempt}")
    if policy.max_attempts is not None and attempt >= policy.max_attempts:
        return None
    if hint_ms is not None:
        return max(0, hint_ms)
    try:
        delay = policy.initial_interval_ms * policy.factor ** (attempt - 1)
    except OverflowError:  # float ** int raises rather than giving inf
        return policy.max_interval_ms
    return min(policy.max_interval_ms, round(delay))


def decide(policy: RetryPolicy, attempt: int, failure: AttemptFailure) -> RetryDecision:
    """What to do after ``failure`` ended attempt number ``attempt``.

    The SDK's requested behaviour (v7) wins; otherwise the policy decides, with the SDK's
    delay hint, if any, in place of the computed delay.
    """
    if failure.behavior is ErrorBehavior.PAUSE:
        return RetryDecision(RetryAction.PAUSE, reason="the service asked to pause the invocation")
    if failure.behavior is ErrorBehavior.FAIL:
        return RetryDecision(RetryAction.KILL, reason="the service asked to fail the invocation")
    delay = next_delay(policy, attempt, failure.next_retry_delay_ms)
    if delay is None:
        action = RetryAction.PAUSE if policy.on_max_attempts == "pause" else RetryAction.KILL
        return RetryDecision(action, reason=f"gave up after {attempt} attempts")
    return RetryDecision(RetryAction.RETRY, delay_ms=delay)


def failed_attempt_record(
    invocation_id: InvocationId,
    failure: AttemptFailure,
    attempt: int,
    now_ms: int,
    delay_ms: int,
) -> InvocationFailedAttempt:
    """The WAL record for a failed attempt that will be retried after ``delay_ms``.

    ``now_ms`` is the leader's clock when the attempt ended (ms since the Unix epoch);
    the record carries the absolute retry time so applying it needs no clock, and the
    command the attempt failed at, if the failure names one (an empty name is none).
    """
    if delay_ms < 0:
        raise ValueError("delay_ms must not be negative")
    return InvocationFailedAttempt(
        invocation_id=invocation_id,
        code=failure.code,
        message=failure.message,
        # An SDK's next_retry_delay may be any u64: no later than the engine can store
        # (engine.journal.limits), or the record would not encode.
        retry_at_ms=min(now_ms + delay_ms, MAX_TIME_MS),
        attempt=attempt,
        related_command_index=failure.related_command_index,
        related_command_name=failure.related_command_name or None,
        related_command_type=failure.related_command_type,
    )
