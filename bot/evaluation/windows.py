"""Window functions over stored samples (pure): what ``avg_over_time(m, "1h")`` is at ``now``.

The caller hands in each metric's numeric samples in time order (:class:`Points`, times in
seconds since the epoch) and the pass's nominal ``now``; nothing here reads a clock or a table.
Semantics follow Prometheus, where its functions exist:

- a range function sees the samples in ``(now - window, now]``; with none, it has no value (no
  data), ``count_over_time`` included;
- ``quantile_over_time`` interpolates linearly between the two nearest ranks, as Prometheus does;
- ``rate`` is Prometheus' ``rate``: the increase per second, a drop counted as a counter reset
  (the counter restarted from 0), extrapolated to the window's edges; it needs two samples;
- ``delta`` is the last sample minus the first in the window, *not* extrapolated (Prometheus'
  ``delta`` is); it needs two samples;
- ``ago(m, d)`` is the newest sample at or before ``now - d``, unless it is older than
  ``stale_after`` there (the same lookup as the current value, moved back by ``d``).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config.windows import AGO, QUANTILE, WindowTerm
from bot.metrics.samples import Points

WindowSeries = Mapping[str, Mapping[str, Points]]
"""model → :func:`series_key` → samples: what a pass needs for its windowed terms."""


def series_key(term: WindowTerm) -> str:
    """Under which key a term's samples are handed in: the metric for a range (terms over one
    metric share its samples), the term's own name for ``ago`` (only a short span long ago)."""
    return term.name if term.function == AGO else term.metric


@dataclass(frozen=True)
class WindowNeeds:
    """Which samples a pass must have for every windowed term of the rules."""

    ranges: Mapping[str, timedelta]
    """metric → the longest range over it: samples in ``(now - range, now]``."""
    ago: Mapping[str, tuple[str, timedelta]]
    """series key of each ``ago`` term → (metric, how long ago)."""
    stale_after: timedelta

    def ago_span(self, key: str, now: datetime) -> tuple[datetime, datetime]:
        """The samples an ``ago`` term may read: ``[now - d - stale_after, now - d]``."""
        _, back = self.ago[key]
        return now - back - self.stale_after, now - back

    @property
    def longest(self) -> timedelta:
        """How far back any term reads: what stored samples must be kept for."""
        spans = [*self.ranges.values(), *(back + self.stale_after for _, back in self.ago.values())]
        return max(spans, default=timedelta(0))

    def __bool__(self) -> bool:
        return bool(self.ranges or self.ago)


def needs_of(terms: Iterable[WindowTerm], *, stale_after: timedelta) -> WindowNeeds:
    ranges: dict[str, timedelta] = {}
    ago: dict[str, tuple[str, timedelta]] = {}
    for term in terms:
        if term.function == AGO:
            ago[series_key(term)] = (term.metric, term.window)
        else:
            ranges[term.metric] = max(ranges.get(term.metric, timedelta(0)), term.window)
    return WindowNeeds(ranges, ago, stale_after)


def window_values(
    terms: Iterable[WindowTerm], series: Mapping[str, Points], *, now: datetime, stale_after: timedelta
) -> dict[str, float]:
    """Each term's value by its name; a term without a value (no samples) is left out: no data."""
    at, stale = now.timestamp(), stale_after.total_seconds()
    out: dict[str, float] = {}
    for term in terms:
        points = series.get(series_key(term))
        if points is None:
            continue
        value = term_value(term, points, now=at, stale_after=stale)
        if value is not None:
            out[term.name] = value
    return out


def term_value(term: WindowTerm, points: Points, *, now: float, stale_after: float) -> float | None:
    """The value of ``term`` at ``now`` (epoch seconds) from ``points``, or ``None``: no data."""
    times, values = points.times, points.values
    width = term.window.total_seconds()
    if term.function == AGO:
        i = bisect_right(times, now - width) - 1
        return values[i] if i >= 0 and times[i] >= now - width - stale_after else None
    lo, hi = bisect_right(times, now - width), bisect_right(times, now)
    if lo >= hi:
        return None
    window = values[lo:hi]
    match term.function:
        case "avg_over_time":
            return math.fsum(window) / len(window)
        case "sum_over_time":
            return math.fsum(window)
        case "min_over_time":
            return min(window)
        case "max_over_time":
            return max(window)
        case "count_over_time":
            return float(len(window))
        case "delta":
            return window[-1] - window[0] if len(window) > 1 else None
        case "rate":
            return rate(times[lo:hi], window, start=now - width, end=now)
        case _:
            assert term.function == QUANTILE and term.phi is not None, term
            return quantile(term.phi, window)


def quantile(phi: float, values: Sequence[float]) -> float:
    """Prometheus' quantile: linear interpolation between the nearest ranks of the sorted values."""
    ordered = sorted(values)
    rank = phi * (len(ordered) - 1)
    lower = max(0, math.floor(rank))
    upper = min(len(ordered) - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def rate(times: Sequence[float], values: Sequence[float], *, start: float, end: float) -> float | None:
    """Prometheus' ``rate`` (``extrapolatedRate`` with a counter): the increase over the window,
    each drop counted as a reset to 0, extrapolated towards the window's edges (by at most half
    a sample interval where the series does not reach them, and never below a counter's zero),
    per second of the window."""
    if len(values) < 2:
        return None
    increase = values[-1] - values[0]
    previous = values[0]
    for value in values[1:]:
        if value < previous:  # a reset: the counter restarted, what it had counted is kept
            increase += previous
        previous = value
    sampled = times[-1] - times[0]
    if sampled <= 0:
        return None
    to_start, to_end = times[0] - start, end - times[-1]
    average_gap = sampled / (len(values) - 1)
    if increase > 0 and values[0] >= 0:
        to_start = min(to_start, sampled * (values[0] / increase))  # the counter cannot go below 0
    threshold = average_gap * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average_gap / 2
    interval += to_end if to_end < threshold else average_gap / 2
    return increase * (interval / sampled) / (end - start)
