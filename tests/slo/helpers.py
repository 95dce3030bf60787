"""Series builders for the SLO tests: fixed instants, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.metrics.samples import Sample

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def at(hh: int, mm: int = 0, ss: int = 0) -> datetime:
    """A time on NOW's day."""
    return NOW.replace(hour=hh, minute=mm, second=ss)


def every(value: float, *, start: datetime, end: datetime, step: timedelta) -> list[Sample]:
    """``value`` at start, start + step, … up to and including end."""
    out: list[Sample] = []
    moment = start
    while moment <= end:
        out.append(Sample(value, moment))
        moment += step
    return out
