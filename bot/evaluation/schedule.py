"""The evaluation schedule: every pass has a nominal time, its tick, as in Prometheus.

A pass is judged as of its tick (a multiple of ``evaluation_interval`` since the Unix epoch), not
as of the moment the scheduler happened to run it. Counting ``for:`` on wall-clock start times
made a pass that began a few milliseconds early see 1.998 intervals instead of 2, so the alert
waited another pass, by which time a breach lasting exactly as long as ``for:`` allows was over.
Ticks on the epoch grid also let replicas agree on the times they evaluate at.

Pure: the caller passes the clock's reading; this keeps which tick was last evaluated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLY_TOLERANCE = timedelta(milliseconds=250)
"""A run this much before a tick (at most a twentieth of the interval) counts as that tick's."""


@dataclass(frozen=True)
class Tick:
    at: datetime
    """The nominal time: the pass sees samples, ``for:`` and cooldowns as of this instant."""
    missed: int = 0
    """Ticks skipped entirely since the last evaluated one (the scheduler ran too late)."""


class EvaluationSchedule:
    def __init__(self, interval: timedelta) -> None:
        if interval <= timedelta(0):
            raise ValueError("the evaluation interval must be positive")
        self.interval = interval
        self._tolerance = min(EARLY_TOLERANCE, interval / 20)
        self._last: datetime | None = None

    def tick_at(self, now: datetime) -> datetime:
        """The newest tick at or before ``now`` (a run slightly early counts as the coming tick)."""
        steps = math.floor((now + self._tolerance - EPOCH) / self.interval)
        return EPOCH + self.interval * steps

    def first_tick_after(self, now: datetime) -> datetime:
        """When the scheduler should first run, so its runs fall on ticks."""
        return self.tick_at(now) + self.interval

    def next(self, now: datetime) -> Tick | None:
        """The tick a pass run at ``now`` evaluates, or ``None`` if that tick was already evaluated
        (a run that came twice in one interval). Marks it evaluated."""
        at = self.tick_at(now)
        last, self._last = self._last, at
        if last is not None and at <= last:
            self._last = last
            return None
        missed = 0 if last is None else round((at - last) / self.interval) - 1
        return Tick(at, missed)
