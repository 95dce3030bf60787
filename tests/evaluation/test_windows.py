"""Window functions over stored samples: Prometheus' semantics, pinned on small series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.config.conditions import Condition, ConditionEvaluator, Outcome
from bot.config.windows import WindowTerm
from bot.evaluation.windows import needs_of, quantile, rate, term_value, window_values
from bot.metrics.samples import Points

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
T = NOW.timestamp()
STALE = 300.0


def term(text: str) -> WindowTerm:
    (only,) = Condition(f"{text} > 0").windows
    return only


def points(*pairs: tuple[float, float]) -> Points:
    """(seconds before now, value) pairs, oldest first."""
    return Points([T - ago for ago, _ in pairs], [value for _, value in pairs])


def value(text: str, series: Points) -> float | None:
    return term_value(term(text), series, now=T, stale_after=STALE)


EVERY_30S = points(*((3600 - 30 * i, float(i)) for i in range(121)))
"""0, 1, … 120: one sample each 30 s over the last hour, the first exactly an hour ago."""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('avg_over_time(m, "1h")', sum(range(1, 121)) / 120),  # (now - 1h, now]: the sample at -1h is out
        ('sum_over_time(m, "1h")', float(sum(range(1, 121)))),
        ('min_over_time(m, "1h")', 1.0),
        ('max_over_time(m, "1h")', 120.0),
        ('count_over_time(m, "1h")', 120.0),
        ('count_over_time(m, "5m")', 10.0),
        ('avg_over_time(m, "90s")', (118 + 119 + 120) / 3),
        ('delta(m, "1h")', 119.0),  # last - first in the window, not extrapolated
        ('delta(m, "5m")', 9.0),
        ('ago(m, "1h")', 0.0),
        ('ago(m, "45s")', 118.0),  # the newest at or before now - 45 s: the one at -60 s
        ('ago(m, "0.5s")', 119.0),
    ],
)
def test_range_functions_on_a_regular_series(text: str, expected: float) -> None:
    assert value(text, EVERY_30S) == pytest.approx(expected)


def test_a_window_without_samples_is_no_data_even_for_count() -> None:
    old = points((7200, 5.0))
    for text in ('avg_over_time(m, "1h")', 'count_over_time(m, "1h")', 'rate(m, "1h")', 'max_over_time(m, "1h")'):
        assert value(text, old) is None, text
    assert value('count_over_time(m, "3h")', old) == 1.0


def test_samples_after_now_are_not_seen() -> None:
    """A sample stamped after the pass's nominal time belongs to the next pass."""
    series = Points([T - 10, T + 5], [1.0, 100.0])
    assert value('max_over_time(m, "1m")', series) == 1.0


def test_rate_and_delta_need_two_samples() -> None:
    one = points((10, 5.0))
    assert value('rate(m, "5m")', one) is None
    assert value('delta(m, "5m")', one) is None


def test_ago_is_the_sample_then_unless_stale_there() -> None:
    series = points((86400 + 120, 40.0), (86400 - 60, 50.0), (10, 60.0))
    assert value('ago(m, "1d")', series) == 40.0  # 2 min before now - 1d: fresh enough
    assert value('ago(m, "1d1m")', series) == 40.0
    assert value('ago(m, "1d10m")', series) is None  # nothing in the 5 min before then
    assert value('ago(m, "23h59m")', series) == 50.0
    assert value('ago(m, "1h")', series) is None  # the newest before then is 23 h older: stale
    assert value('ago(m, "2d")', series) is None


# --- rate: Prometheus' extrapolatedRate -------------------------------------------------------


def test_rate_of_a_steady_counter_is_its_slope() -> None:
    """1 per second, sampled each 30 s over the whole window: extrapolated half a gap at the start."""
    series = points(*((300 - 30 * i, 1000.0 + 30 * i) for i in range(1, 11)))
    assert value('rate(m, "5m")', series) == pytest.approx(1.0)


def test_rate_counts_a_drop_as_a_counter_reset() -> None:
    # 10 → 20, reset, 5 → 15: increase 10 + 5 + 10 = 25 over 30 s of samples
    times, values = [0.0, 10.0, 20.0, 30.0], [10.0, 20.0, 5.0, 15.0]
    # the window is exactly the samples' span: no extrapolation; 25 over 30 s
    assert rate(times, values, start=0.0, end=30.0) == pytest.approx(25 / 30)


def test_rate_extrapolates_like_prometheus() -> None:
    """Samples at 15 s … 45 s of a 60 s window, 10 s apart: both gaps to the edges (15 s) are
    over 1.1 × the average gap, so each side extends by half a gap (5 s): 30 s of samples
    become 40 s. Increase 30 × 40/30 = 40, over 60 s. (promtool: rate(m[1m]) = 0.6667)"""
    times, values = [15.0, 25.0, 35.0, 45.0], [100.0, 110.0, 120.0, 130.0]
    assert rate(times, values, start=0.0, end=60.0) == pytest.approx(40 / 60)


def test_rate_never_extrapolates_a_counter_below_zero() -> None:
    """A counter that starts at 2 and rose 10 in 10 s reached zero 2 s before its first sample:
    the start extends by those 2 s, not by the 5 s gap half."""
    times, values = [20.0, 30.0], [2.0, 12.0]
    assert rate(times, values, start=0.0, end=30.0) == pytest.approx(10 * (12 / 10) / 30)


# --- quantile: linear interpolation like quantile_over_time ---------------------------------


@pytest.mark.parametrize(
    ("phi", "expected"),
    [(0.0, 1.0), (1.0, 4.0), (0.5, 2.5), (0.95, 3.85), (0.25, 1.75)],
)
def test_quantile_interpolates_between_ranks(phi: float, expected: float) -> None:
    assert quantile(phi, [4.0, 1.0, 3.0, 2.0]) == pytest.approx(expected)


def test_quantile_over_time_of_one_sample_is_that_sample() -> None:
    assert value('quantile_over_time(0.95, m, "5m")', points((10, 7.0))) == 7.0
    assert value('quantile_over_time(0.5, m, "1h")', EVERY_30S) == pytest.approx(60.5)


# --- in a condition ---------------------------------------------------------------------------


def test_windowed_terms_feed_the_condition_by_name() -> None:
    condition = Condition('avg_over_time(helpfulness, "1h") < 0.8')
    series = {"helpfulness": points((1800, 0.7), (60, 0.8))}
    values = window_values(condition.windows, series, now=NOW, stale_after=timedelta(minutes=5))
    assert values == {"avg_over_time_helpfulness_1h": pytest.approx(0.75)}
    assert ConditionEvaluator().run(condition, values) is Outcome.TRUE


def test_ago_compares_with_the_same_time_yesterday() -> None:
    condition = Condition('predictions_last_hour < 0.5 * ago(predictions_last_hour, "1d")')
    (ago,) = condition.windows
    series = {ago.name: points((86400 + 30, 1000.0))}
    values = window_values(condition.windows, series, now=NOW, stale_after=timedelta(minutes=5))
    engine = ConditionEvaluator()
    assert engine.run(condition, {**values, "predictions_last_hour": 400.0}) is Outcome.TRUE
    assert engine.run(condition, {**values, "predictions_last_hour": 600.0}) is Outcome.FALSE
    assert engine.run(condition, {"predictions_last_hour": 400.0}) is Outcome.NO_DATA  # nothing yesterday


def test_needs_take_the_longest_range_per_metric_and_each_ago_span() -> None:
    condition = Condition('avg_over_time(m, "1h") > max_over_time(m, "5m") or rate(c, "5m") > ago(m, "1d")')
    needs = needs_of(condition.windows, stale_after=timedelta(minutes=5))
    assert needs.ranges == {"m": timedelta(hours=1), "c": timedelta(minutes=5)}
    assert needs.ago == {"ago_m_1d": ("m", timedelta(days=1))}
    assert needs.ago_span("ago_m_1d", NOW) == (NOW - timedelta(days=1, minutes=5), NOW - timedelta(days=1))
    assert needs.longest == timedelta(days=1, minutes=5)
