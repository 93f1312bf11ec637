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

__all__ = ["RunRetryPolicy", "RetryDecision"]


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
