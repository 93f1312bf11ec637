"""Durations as the admin API writes and reads them.

Restate's admin API prints durations in a compact "friendly" form with days as the largest
unit (``1d``, ``1m 30s``, ``250ms``, ``0s``) and accepts that form, its long spellings
(``5 hours``, ``1 hour 30 minutes``) and ISO 8601 durations (``PT5H``, ``P1D``). Months
and years are refused because they have no fixed length.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from engine.errors import EngineError

__all__ = ["DurationParseError", "format_duration", "parse_duration"]


class DurationParseError(EngineError, ValueError):
    """A text is not a duration; the message shows the accepted spellings."""


_US_PER_UNIT: dict[str, int] = {
    "w": 7 * 86_400_000_000,
    "d": 86_400_000_000,
    "h": 3_600_000_000,
    "m": 60_000_000,
    "s": 1_000_000,
    "ms": 1_000,
    "us": 1,
}

# Every spelling the friendly format accepts, mapped to its canonical unit.
_UNIT_ALIASES: dict[str, str] = {
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), "w"),
    **dict.fromkeys(("d", "day", "days"), "d"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "m"),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "s"),
    **dict.fromkeys(("ms", "msec", "msecs", "millisecond", "milliseconds"), "ms"),
    **dict.fromkeys(("us", "µs", "usec", "usecs", "microsecond", "microseconds"), "us"),
}
_CALENDAR_UNITS = frozenset(("y", "yr", "yrs", "year", "years", "mo", "mos", "month", "months"))

_FRIENDLY_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zµ]+)\s*,?", re.IGNORECASE)
_ISO = re.compile(
    r"P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:[.,]\d+)?)S)?)?",
    re.IGNORECASE,
)
_HINT = "write a number and a unit, such as '30s', '1h 30m', '5 hours' or '1d', or an ISO 8601 duration such as 'PT5H'"


def parse_duration(text: str) -> timedelta:
    """Parse a friendly or ISO 8601 duration; raises :class:`DurationParseError`."""
    stripped = text.strip()
    if not stripped:
        raise DurationParseError(f"'{text}' is not a duration: {_HINT}")
    if stripped.startswith("-"):
        raise DurationParseError(f"'{text}' is not a valid duration: a duration cannot be negative")
    if stripped[0] in "Pp":
        return _parse_iso(text, stripped)
    return _parse_friendly(text, stripped)


def _parse_friendly(text: str, stripped: str) -> timedelta:
    total_us = 0
    position = 0
    parts = 0
    while position < len(stripped):
        match = _FRIENDLY_PART.match(stripped, position)
        if match is None:
            raise DurationParseError(f"'{text}' is not a duration: {_HINT}")
        number, unit_text = match.group(1), match.group(2).lower()
        if unit_text in _CALENDAR_UNITS:
            raise DurationParseError(
                f"'{text}' is not a valid duration: months and years have no fixed length, "
                "so write it in weeks or smaller units"
            )
        unit = _UNIT_ALIASES.get(unit_text)
        if unit is None:
            raise DurationParseError(f"'{text}' is not a duration: unknown unit '{match.group(2)}'; {_HINT}")
        total_us += _scaled(number, _US_PER_UNIT[unit], text)
        position = match.end()
        parts += 1
    if parts == 0:
        raise DurationParseError(f"'{text}' is not a duration: {_HINT}")
    return timedelta(microseconds=total_us)


def _parse_iso(text: str, stripped: str) -> timedelta:
    match = _ISO.fullmatch(stripped)
    if match is None or not any(match.groupdict().values()) or stripped.upper().endswith("T"):
        if re.search(r"\d+[YM]", stripped.upper().split("T")[0]):
            raise DurationParseError(
                f"'{text}' is not a valid duration: months and years have no fixed length, "
                "so write it in weeks or smaller units"
            )
        raise DurationParseError(f"'{text}' is not a duration: {_HINT}")
    total_us = 0
    for unit, value in match.groupdict().items():
        if value is not None:
            total_us += _scaled(value.replace(",", "."), _US_PER_UNIT[unit], text)
    return timedelta(microseconds=total_us)


def _scaled(number: str, unit_us: int, text: str) -> int:
    try:
        value = Decimal(number) * unit_us
    except InvalidOperation:
        raise DurationParseError(f"'{text}' is not a duration: {_HINT}") from None
    if value > Decimal(timedelta.max.days) * _US_PER_UNIT["d"]:
        raise DurationParseError(f"'{text}' is not a valid duration: it is too large")
    return int(value)


def format_duration(value: timedelta) -> str:
    """The compact friendly form Restate prints: ``1d``, ``1m 30s``, ``250ms``, ``0s``.

    Days are the largest unit (a week prints as ``7d``), units are separated by a space,
    and zero parts are left out.
    """
    total_us = value // timedelta(microseconds=1)
    if total_us < 0:
        raise ValueError(f"negative duration {value}")
    if total_us == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms", "us"):
        count, total_us = divmod(total_us, _US_PER_UNIT[unit])
        if count:
            parts.append(f"{count}{'µs' if unit == 'us' else unit}")
    return " ".join(parts)
