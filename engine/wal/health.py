"""Whether Kafka is taking the WAL producer's records right now, as far as this process knows.

The ingress asks :meth:`WalHealth.admit` before it hands a call's ``Invoke`` to the
producer: while the brokers are known to be down it answers 503 at once (the record was
never handed over, so the caller knows the call was not accepted) instead of queueing a
record that waits out the delivery timeout.

What it knows comes from the producer itself, at no cost per record:

* a delivery report that succeeded: up (any writer's: ingress, leaders, subscriptions);
* a delivery report that failed (timed out, broker gone), librdkafka's
  ``_ALL_BROKERS_DOWN`` client error, or an ingress append that Kafka did not acknowledge
  within the ingress bound: down.

While down, one caller per :data:`PROBE_INTERVAL_S` is let through as a probe (the
half-open state of a circuit breaker), so recovery is noticed even when nothing else is
writing; its success (or any other writer's) marks the WAL up again.

Plain attribute writes from the producer's poll thread and the event loop; a stale read
costs at most one probe more or less.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from engine.logs import get_logger

__all__ = ["PROBE_INTERVAL_S", "WalHealth"]

PROBE_INTERVAL_S: Final = 1.0

log = get_logger(__name__)


class WalHealth:
    """Up/down state of the WAL producer's brokers (module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, probe_interval_s: float = PROBE_INTERVAL_S) -> None:
        self._clock = clock
        self._probe_interval_s = probe_interval_s
        self._down_since: float | None = None
        self._reason = ""
        self._next_probe = 0.0

    @property
    def up(self) -> bool:
        return self._down_since is None

    @property
    def reason(self) -> str:
        """Why the WAL is considered down ("" while up)."""
        return self._reason

    def down_for_s(self) -> float:
        """Seconds since the WAL was first seen down (0 while up)."""
        return 0.0 if self._down_since is None else self._clock() - self._down_since

    def succeeded(self) -> None:
        """Kafka acknowledged a record."""
        if self._down_since is not None:
            log.info("Kafka acknowledges WAL records again", down_for_s=round(self.down_for_s(), 1))
            self._down_since = None
            self._reason = ""

    def failed(self, reason: str) -> None:
        """Kafka did not take a record (or the client lost every broker)."""
        if self._down_since is None:
            now = self._clock()
            self._down_since = now
            self._reason = reason
            self._next_probe = now + self._probe_interval_s
            log.warning("Kafka is not acknowledging WAL records; the ingress answers 503 until it does",
                        reason=reason)

    def admit(self) -> bool:
        """True when a new record may be handed to the producer: the WAL is up, or this
        caller is the probe of this interval."""
        if self._down_since is None:
            return True
        now = self._clock()
        if now >= self._next_probe:
            self._next_probe = now + self._probe_interval_s
            return True
        return False
