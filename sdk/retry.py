"""Retry policy of ``ctx.run`` steps.

A failed step (any exception but :class:`~sdk.errors.TerminalError`) ends the attempt
with an ``ErrorMessage``; the runtime re-invokes the handler, which replays to the step
and runs it again. The runtime tells the SDK how many attempts were made since the
journal last grew (``StartMessage.retry_count_since_last_stored_entry``), which is how
the SDK counts a step's attempts across invocations of the endpoint. When the policy
is exhausted, the step's result becomes a terminal failure, journaled like a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from sdk.serde import Serde

__all__ = ["RunOptions", "RunRetryPolicy", "RetryDecision"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryDecision:
    """What to do after a failed step: retry (after ``delay_ms``, ``None`` = the
    runtime's policy) or give up (``terminal``)."""

    terminal: bool
    delay_ms: int | None = None


@dataclass(frozen=True)
class RunRetryPolicy:
    """Bounds of a step's retries; all ``None`` means retry forever (the default).

    Attributes:
        max_attempts: Total attempts including the first; at this count the step fails
            terminally.
        max_duration: Time spent retrying after which the step fails terminally.
        initial_interval: Delay before the first retry (then multiplied by ``factor``).
        factor: Growth of the delay per retry.
        max_interval: Cap of the delay.
    """

    max_attempts: int | None = None
    max_duration: timedelta | None = None
    initial_interval: timedelta | None = None
    factor: float = 2.0
    max_interval: timedelta | None = None

    def decide(self, attempts: int, elapsed_ms: int) -> RetryDecision:
        """Decide after ``attempts`` failed attempts spanning ``elapsed_ms``."""
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return RetryDecision(terminal=True)
        if self.max_duration is not None and elapsed_ms >= self.max_duration / timedelta(
            milliseconds=1
        ):
            return RetryDecision(terminal=True)
        if self.initial_interval is None:
            return RetryDecision(terminal=False)
        delay = self.initial_interval * (self.factor ** max(attempts - 1, 0))
        if self.max_interval is not None:
            delay = min(delay, self.max_interval)
        return RetryDecision(terminal=False, delay_ms=int(delay / timedelta(milliseconds=1)))


@dataclass(frozen=True)
class RunOptions(Generic[T]):
    """Options of ``ctx.run_typed``, with the official Restate Python SDK's field names.

    Attributes:
        serde: How the step's result is stored; ``None`` picks one from ``type_hint``
            or the action's return annotation (JSON by default).
        type_hint: The result's type, when the action's annotation does not say it.
        max_attempts: Attempts (including the first) before the step fails terminally.
        max_duration: Time spent retrying before the step fails terminally.
        initial_retry_interval: Delay before the first retry; ``None`` leaves retries
            to the runtime's invocation retry policy.
        max_retry_interval: Cap of the delay between retries.
        retry_interval_factor: Growth of the delay per retry (2 when ``None``).
        max_retry_duration: Deprecated spelling of ``max_duration`` (kept for porting).
    """

    serde: Serde[T] | None = None
    type_hint: Any = None
    max_attempts: int | None = None
    max_duration: timedelta | None = None
    initial_retry_interval: timedelta | None = None
    max_retry_interval: timedelta | None = None
    retry_interval_factor: float | None = None
    max_retry_duration: timedelta | None = None

    def retry_policy(self) -> RunRetryPolicy:
        """The step's :class:`RunRetryPolicy`."""
        return RunRetryPolicy(
            max_attempts=self.max_attempts,
            max_duration=self.max_duration if self.max_duration is not None else self.max_retry_duration,
            initial_interval=self.initial_retry_interval,
            factor=self.retry_interval_factor if self.retry_interval_factor is not None else 2.0,
            max_interval=self.max_retry_interval,
        )
