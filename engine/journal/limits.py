"""The ranges of values the engine stores, checked where the values enter.

A time the SDK sends as a u64 (a sleep's wake-up time, a delayed send's invoke time) is
stored as a signed 64-bit millisecond count (timer keys, status rows, WAL records) and
shown as an RFC 3339 timestamp (admin API, SQL). A value past what those hold must be
refused where it comes in (the invoker turns it into a failed attempt with this message,
the ingress into a 400), never written to the WAL, where applying it would fail on
every replica (:mod:`engine.partition.state_machine.poison` contains it if it gets
there anyway).
"""

from __future__ import annotations

from typing import Final

from google.protobuf.message import Message

from restate_protocol import pb

__all__ = ["MAX_TIME_MS", "out_of_range", "time_out_of_range"]

MAX_TIME_MS: Final = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the latest time the engine stores (RFC 3339 ends there)."""


def time_out_of_range(what: str, ms: int) -> str | None:
    """Why the epoch-millisecond time ``ms`` cannot be stored, or ``None`` if it can."""
    if 0 <= ms <= MAX_TIME_MS:
        return None
    return (
        f"{what} {ms} ms since the epoch is outside the range the engine stores "
        f"(0 to {MAX_TIME_MS}, 9999-12-31T23:59:59.999Z); use a shorter duration"
    )


def out_of_range(message: Message | None) -> str | None:
    """Why the command ``message`` holds a value the engine cannot store, or ``None``."""
    if isinstance(message, pb.SleepCommandMessage):
        return time_out_of_range("SleepCommand wake_up_time", message.wake_up_time)
    if isinstance(message, pb.OneWayCallCommandMessage):
        # 0 means "now".
        return time_out_of_range("OneWayCallCommand invoke_time", message.invoke_time)
    return None
