"""Service level indicators computed from stored samples, honest about missing data.

**Threshold SLIs are time-weighted.** Samples arrive unevenly (every 30 s, then a 4-minute pause,
then a burst), so counting samples would let a burst outvote a long quiet stretch. Instead each
sample is a step: its value holds from its timestamp until the next sample, but never longer than
``stale_after`` (default 15 min). Within the window ``[start, end]`` every instant is then

- *good* — covered by a sample that meets the objective (``value <= target`` for ``below``,
  ``value >= target`` for ``above``; the target itself meets it),
- *bad* — covered by a sample that misses it, or
- *no data* — not covered (a gap longer than ``stale_after``, before the first sample, after the
  last one went stale), or covered by a text sample that has no number.

``compliance = good / (good + bad)``: no-data time counts neither for nor against the SLO, and a
window with no data at all has compliance ``None`` — shown as "no data", never as 100% or 0%.
The sample taken *before* ``start`` still holds into the window, so fetch ``stale_after`` more
history than the window (:meth:`SloSpec.history_needed`).

Example (objective ``below 2000``, stale_after 15 min, window 12:00–13:00): 11:55 = 1500 holds to
12:05 (5 min good), 12:05 = 2500 to 12:10 (5 min bad), 12:10 = 1800 until its 15 min run out at
12:25 (15 min good; 12:25–12:40 is 15 min no data), 12:40 = 1900 to 12:43 (3 min good), 12:43 = 3000
to 12:58 (15 min bad; 2 min no data before 13:00). good 23 min, bad 20 min, no data 17 min,
compliance 23 / 43 = 53.5%.

**Ratio SLIs count events.** ``good_metric`` and ``total_metric`` are pushed as *counts per push
interval* (the requests served since the previous push), not as cumulative counters: a window's
totals are the plain sums of the samples stamped inside ``(start, end]`` — a count stamped at ``t``
describes the interval that ends at ``t``. (A cumulative counter would need differences and reset
handling; push per-interval counts instead.) Negative or text values are ignored. The compliance
is ``good / total`` (``good`` capped at ``total``), ``None`` when no event was counted. The time
covered by ``total_metric`` samples (held as above) gives the no-data time.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from operator import attrgetter

from bot.metrics.samples import Sample
from bot.slo.spec import Direction, SloSpec

Series = Mapping[str, Sequence[Sample]]
"""Metric name → samples of one model, as ``bot.metrics.store.series`` returns them."""

ZERO = timedelta(0)
_AT = attrgetter("at")


@dataclass(frozen=True, slots=True)
class TimeSli:
    """A threshold SLI over ``[start, end]``: how long the objective held, failed, or was unknown."""

    start: datetime
    end: datetime
    good_time: timedelta
    bad_time: timedelta
    no_data_time: timedelta

    @property
    def measured_time(self) -> timedelta:
        return self.good_time + self.bad_time

    @property
    def compliance(self) -> float | None:
        measured = self.measured_time
        return None if measured <= ZERO else self.good_time / measured

    @property
    def bad_fraction(self) -> float | None:
        measured = self.measured_time
        return None if measured <= ZERO else self.bad_time / measured

    @property
    def coverage(self) -> float:
        """The fraction of the window that has data."""
        length = self.end - self.start
        return 0.0 if length <= ZERO else self.measured_time / length


@dataclass(frozen=True, slots=True)
class RatioSli:
    """A ratio SLI over ``(start, end]``: events counted good and in total."""

    start: datetime
    end: datetime
    good_events: float
    total_events: float
    no_data_time: timedelta

    @property
    def bad_events(self) -> float:
        return max(self.total_events - self.good_events, 0.0)

    @property
    def compliance(self) -> float | None:
        return None if self.total_events <= 0 else min(self.good_events, self.total_events) / self.total_events

    @property
    def bad_fraction(self) -> float | None:
        return None if self.total_events <= 0 else self.bad_events / self.total_events

    @property
    def coverage(self) -> float:
        length = self.end - self.start
        return 0.0 if length <= ZERO else max(length - self.no_data_time, ZERO) / length


Sli = TimeSli | RatioSli


def meets(direction: Direction, target: float, value: float) -> bool:
    """Does ``value`` meet the objective? The target itself does."""
    return value <= target if direction == "below" else value >= target


def _number(value: float | str) -> float | None:
    if isinstance(value, str) or not math.isfinite(value):
        return None
    return float(value)


def _held(
    samples: Sequence[Sample], start: datetime, end: datetime, stale_after: timedelta
) -> Iterator[tuple[Sample, timedelta]]:
    """Each sample with the part of ``[start, end]`` it covers: from its timestamp to the next
    sample's, capped at ``stale_after``. Samples with one timestamp: the last one given wins."""
    ordered = sorted(samples, key=_AT)  # stable, and linear on the time-ordered lists the store returns
    # only the last sample at or before ``start`` can still hold into the window: skip the rest
    first = max(bisect_right(ordered, start, key=_AT) - 1, 0)
    last = bisect_right(ordered, end, key=_AT)
    for index in range(first, last):
        sample = ordered[index]
        until = sample.at + stale_after
        if index + 1 < len(ordered):
            until = min(until, ordered[index + 1].at)
        covered = min(until, end) - max(sample.at, start)
        if covered > ZERO:
            yield sample, covered


def threshold_sli(
    samples: Sequence[Sample],
    *,
    start: datetime,
    end: datetime,
    direction: Direction,
    target: float,
    stale_after: timedelta,
) -> TimeSli:
    good = bad = ZERO
    for sample, covered in _held(samples, start, end, stale_after):
        value = _number(sample.value)
        if value is None:
            continue  # a text sample is no data
        if meets(direction, target, value):
            good += covered
        else:
            bad += covered
    length = max(end - start, ZERO)
    return TimeSli(start, end, good, bad, max(length - good - bad, ZERO))


def _inside(samples: Sequence[Sample], start: datetime, end: datetime) -> list[Sample]:
    """The samples stamped inside ``(start, end]``: the intervals a window's counts describe."""
    ordered = sorted(samples, key=_AT)
    return ordered[bisect_right(ordered, start, key=_AT) : bisect_right(ordered, end, key=_AT)]


def _summed(samples: Sequence[Sample], start: datetime, end: datetime) -> float:
    values = (_number(s.value) for s in _inside(samples, start, end))
    return sum(v for v in values if v is not None and v > 0)


def ratio_sli(
    counted: Sequence[Sample],
    total: Sequence[Sample],
    *,
    start: datetime,
    end: datetime,
    stale_after: timedelta,
    bad: bool = False,
) -> RatioSli:
    """``counted`` are the good events, or with ``bad`` the failed ones (an error rate)."""
    counted_sum, total_sum = _summed(counted, start, end), _summed(total, start, end)
    good = max(total_sum - min(counted_sum, total_sum), 0.0) if bad else counted_sum
    covered = sum((c for _, c in _held(total, start, end, stale_after)), ZERO)
    length = max(end - start, ZERO)
    return RatioSli(start, end, good, total_sum, max(length - covered, ZERO))


def _pairs(numerator: Sequence[Sample], denominator: Sequence[Sample]) -> Iterator[tuple[float, float, datetime]]:
    """``(numerator, denominator, at)`` for each time both were pushed (one push stamps both
    alike), oldest first, where the denominator is positive: an interval without queries has no
    cost per query, and reads as no data rather than as free."""
    by_time = {s.at: n for s in numerator if (n := _number(s.value)) is not None}
    for sample in sorted(denominator, key=_AT):
        count = _number(sample.value)
        if count is not None and count > 0 and sample.at in by_time:
            yield by_time[sample.at], count, sample.at


def quotient_series(numerator: Sequence[Sample], denominator: Sequence[Sample]) -> list[Sample]:
    """``numerator / denominator`` per interval: the cost per query of each push."""
    return [Sample(amount / count, at) for amount, count, at in _pairs(numerator, denominator)]


def measure(spec: SloSpec, series: Series, *, start: datetime, end: datetime) -> Sli:
    """The SLI of ``spec`` over one window, from the model's series."""
    if spec.kind == "ratio" and spec.total_metric:
        counted = spec.bad_metric or spec.good_metric or ""
        return ratio_sli(
            series.get(counted, ()),
            series.get(spec.total_metric, ()),
            start=start,
            end=end,
            stale_after=spec.stale_after,
            bad=spec.bad_metric is not None,
        )
    return threshold_sli(
        _threshold_series(spec, series),
        start=start,
        end=end,
        direction=spec.direction,
        target=spec.target,
        stale_after=spec.stale_after,
    )


def _threshold_series(spec: SloSpec, series: Series) -> Sequence[Sample]:
    """The samples a time-weighted SLI holds to its objective: the metric's, or a quotient's."""
    if spec.kind == "quotient" and spec.numerator_metric and spec.denominator_metric:
        return quotient_series(series.get(spec.numerator_metric, ()), series.get(spec.denominator_metric, ()))
    return series.get(spec.metric, ())


class Status(Enum):
    """Where an SLO stands. ``rank`` sorts worst first.

    :func:`status_of` judges the current value alone; ``BUDGET_SPENT`` is the dashboard's word for a
    current value that is fine while the window's error budget is gone (:attr:`SloRow.status`), so
    a ✅ never sits beside a spent budget.
    """

    CRITICAL = (0, "🔴", "critical")
    WARNING = (1, "⚠️", "warning")
    OFF_TARGET = (2, "⚠️", "off target")
    BUDGET_SPENT = (3, "⚠️", "budget spent")
    NO_DATA = (4, "⚪", "no data")
    OK = (5, "✅", "ok")

    @property
    def rank(self) -> int:
        return int(self.value[0])

    @property
    def emoji(self) -> str:
        return str(self.value[1])

    @property
    def label(self) -> str:
        return str(self.value[2])


def status_of(spec: SloSpec, value: float | None) -> Status:
    """OK when the value meets the objective; CRITICAL at or past ``critical``; WARNING at or past
    ``warning``; OFF_TARGET between the target and ``warning`` (missing the objective, not yet
    alarming). Compared as "badness" (the value for ``below``, its negation for ``above``)."""
    if value is None:
        return Status.NO_DATA
    if meets(spec.direction, spec.target, value):
        return Status.OK
    sign = 1.0 if spec.direction == "below" else -1.0
    if sign * value >= sign * spec.critical:
        return Status.CRITICAL
    if sign * value >= sign * spec.warning:
        return Status.WARNING
    return Status.OFF_TARGET


@dataclass(frozen=True, slots=True)
class Current:
    """The SLI's value now: the latest fresh sample (threshold), the good (or bad) share of the
    events of the last ``stale_after`` (ratio), or the quotient of their sums (quotient: the cost
    of those queries over their number). ``at`` is the newest sample seen, fresh or not, for
    "last seen"."""

    value: float | None
    at: datetime | None
    status: Status


def current(spec: SloSpec, series: Series, now: datetime) -> Current:
    seen = [s for s in series.get(spec.sli_metric, ()) if s.at <= now]
    last = max(seen, key=lambda s: s.at) if seen else None
    at = last.at if last else None
    if spec.kind == "ratio":
        recent = measure(spec, series, start=now - spec.stale_after, end=now)
        value = recent.bad_fraction if spec.bad_metric else recent.compliance
    elif spec.kind == "quotient":
        value = _recent_quotient(spec, series, now)
    else:
        fresh = last is not None and now - last.at <= spec.stale_after
        value = _number(last.value) if last is not None and fresh else None
    return Current(value, at, status_of(spec, value))


def _recent_quotient(spec: SloSpec, series: Series, now: datetime) -> float | None:
    """Sum over sum across the last ``stale_after``: a quiet interval weighs as little as it served."""
    start = now - spec.stale_after
    numerator = _inside(series.get(spec.numerator_metric or "", ()), start, now)
    pairs = list(_pairs(numerator, _inside(series.get(spec.denominator_metric or "", ()), start, now)))
    total = sum(count for _, count, _ in pairs)
    return sum(amount for amount, _, _ in pairs) / total if total > 0 else None
