"""Time as a dependency.

Everything that decides on time (pending ``for:`` windows, cooldowns, escalation deadlines)
takes ``now`` from a :class:`Clock`, so tests can run an hour of alert life in milliseconds.
All times are aware UTC: naive datetimes are a bug waiting for a DST change.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when a test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = ensure_utc(start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = ensure_utc(moment)


def ensure_utc(moment: datetime) -> datetime:
    """Return ``moment`` as aware UTC; naive values are taken to be UTC already.

    SQLite hands back naive datetimes even for values stored aware, so every read from the
    database passes through here.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def maybe_utc(moment: datetime | None) -> datetime | None:
    """:func:`ensure_utc` of a column that may be empty."""
    return ensure_utc(moment) if moment is not None else None
