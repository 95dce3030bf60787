"""Durations as users write them in rules/ (``30s``, ``5m``, ``1h30m``, ``7d``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config.durations import DURATION_HINT, humanize, is_duration, parse_duration, written


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("250ms", timedelta(milliseconds=250)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("1.5h", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        ("  15m  ", timedelta(minutes=15)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_a_bare_zero_means_no_duration() -> None:
    assert parse_duration(0) == timedelta(0)


def test_a_timedelta_passes_through() -> None:
    assert parse_duration(timedelta(minutes=3)) == timedelta(minutes=3)


@pytest.mark.parametrize(
    "value",
    ["5", 5, 300, 1.5, "", "m", "5 minutes", "5 m", "5M", "-5m", "5m30", "soon", "1h 30m", True, False, None, [5]],
)
def test_anything_else_is_refused_with_how_to_write_one(value: object) -> None:
    with pytest.raises(ValueError) as refused:
        parse_duration(value)

    assert str(refused.value) == f"{value!r} is not a duration; {DURATION_HINT}"
    assert "e.g. 30s, 5m, 1h30m, 7d" in DURATION_HINT


@pytest.mark.parametrize(
    ("delta", "shown"),
    [
        (timedelta(0), "0 s"),
        (timedelta(seconds=20), "20 s"),
        (timedelta(minutes=1) / 3, "20 s"),  # never "0.333333 min"
        (timedelta(seconds=59.9), "59 s"),
        (timedelta(seconds=0.25), "0.25 s"),
        (timedelta(minutes=1), "1 min"),
        (timedelta(minutes=1, seconds=45), "1 min 45 s"),
        (timedelta(minutes=23, seconds=40), "23 min 40 s"),
        (timedelta(minutes=59, seconds=59), "59 min 59 s"),  # cut, not rounded up to "1 h"
        (timedelta(hours=1, seconds=30), "1 h"),
        (timedelta(hours=2, minutes=5, seconds=40), "2 h 5 min"),
        (timedelta(days=1), "1 d"),
        (timedelta(days=2, hours=3, minutes=4), "2 d 3 h"),
        (timedelta(days=7), "7 d"),
        (timedelta(seconds=-5), "0 s"),
    ],
)
def test_humanize_writes_durations_as_people_do(delta: timedelta, shown: str) -> None:
    assert humanize(delta) == shown


@pytest.mark.parametrize(
    ("delta", "days", "text"),
    [
        (timedelta(minutes=5), True, "5m"),
        (timedelta(days=1), True, "1d"),
        (timedelta(hours=25), True, "1d1h"),
        (timedelta(hours=25), False, "25h"),
        (timedelta(minutes=2, seconds=30), False, "2m30s"),
        (timedelta(seconds=-30), False, "-30s"),
        (timedelta(seconds=1.5), True, "1.5s"),
        (timedelta(0), True, "0s"),
    ],
)
def test_written_is_read_back_by_parse_duration(delta: timedelta, days: bool, text: str) -> None:
    """The review's suggestions and the rule tests' offsets are written as rules/ writes them."""
    assert written(delta, days=days) == text
    if delta >= timedelta(0):
        assert parse_duration(text) == delta


def test_is_duration_tells_a_window_from_a_name() -> None:
    assert is_duration("24h") and is_duration("1h30m")
    assert not is_duration("support-bot") and not is_duration("forever")
