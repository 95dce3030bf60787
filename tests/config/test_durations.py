"""Durations as users write them in rules/ (``30s``, ``5m``, ``1h30m``, ``7d``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config.durations import DURATION_HINT, format_duration, parse_duration


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
        (timedelta(0), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=59.9), "59s"),
        (timedelta(minutes=1), "1m"),
        (timedelta(minutes=23, seconds=40), "23m"),
        (timedelta(hours=1, minutes=5), "1h 5m"),
        (timedelta(hours=2), "2h"),
        (timedelta(days=1), "1d"),
        (timedelta(days=2, hours=3, minutes=4), "2d 3h 4m"),
        (timedelta(seconds=-5), "0s"),
    ],
)
def test_format_for_people(delta: timedelta, shown: str) -> None:
    assert format_duration(delta) == shown


@pytest.mark.parametrize("text", ["30s", "5m", "1h", "1h5m", "7d"])
def test_formatting_a_parsed_duration_reads_like_what_was_written(text: str) -> None:
    assert format_duration(parse_duration(text)).replace(" ", "") == text
