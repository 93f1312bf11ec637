"""Durations as the admin API prints and reads them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.metadata.durations import DurationParseError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("5 hours", timedelta(hours=5)),
        ("1 hour, 30 minutes", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("250ms", timedelta(milliseconds=250)),
        ("1.5s", timedelta(milliseconds=1500)),
        ("10 µs", timedelta(microseconds=10)),
        ("PT5H", timedelta(hours=5)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H3M4.5S", timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
        ("pt30s", timedelta(seconds=30)),
        ("P2W", timedelta(weeks=2)),
    ],
)
def test_parse_accepts_friendly_and_iso_spellings(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "is not a duration"),
        ("bogus", "is not a duration"),
        ("5", "is not a duration"),
        ("5 fortnights", "unknown unit 'fortnights'"),
        ("1 month", "months and years have no fixed length"),
        ("P1Y", "months and years have no fixed length"),
        ("-5s", "cannot be negative"),
        ("PT", "is not a duration"),
    ],
)
def test_parse_refuses_with_a_message_saying_why(text: str, complaint: str) -> None:
    with pytest.raises(DurationParseError, match=complaint):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(days=1), "1d"),
        (timedelta(weeks=1), "7d"),
        (timedelta(minutes=1, seconds=30), "1m 30s"),
        (timedelta(hours=5), "5h"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(days=2, milliseconds=1), "2d 1ms"),
    ],
)
def test_format_is_compact_with_days_as_largest_unit(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value
