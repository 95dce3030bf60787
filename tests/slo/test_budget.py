"""Error budget remaining (fraction and time), burn rate, time to exhaustion."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.metrics.samples import Sample
from bot.slo.budget import (
    MIN_PROJECTION_COVERAGE,
    Budget,
    budget_consumed,
    burn_rate,
    error_budget,
    time_to_exhaustion,
)
from bot.slo.sli import RatioSli, TimeSli, threshold_sli
from bot.slo.spec import SloSpec
from tests.slo.helpers import DAY, HOUR, MIN, NOW, at

ZERO = timedelta(0)
LATENCY = SloSpec("support-bot", "response_time_p95_ms", "below", 2000, 3000, 5000)  # 7 d, 99% of the time
AVAILABILITY = SloSpec(
    "api",
    "availability",
    "above",
    0.999,
    0.99,
    0.95,
    kind="ratio",
    good_metric="ok",
    total_metric="total",
    window=30 * DAY,
)


def week(good: timedelta, bad: timedelta) -> TimeSli:
    start = NOW - 7 * DAY
    return TimeSli(start, NOW, good, bad, 7 * DAY - good - bad)


def test_allowed_bad_fraction_by_kind() -> None:
    # threshold: 1 − target_compliance 0.99 = 0.01; ratio: 1 − objective 0.999 = 0.001
    assert LATENCY.allowed_bad_fraction == pytest.approx(0.01)
    assert AVAILABILITY.allowed_bad_fraction == pytest.approx(0.001)
    assert SloSpec("m", "x", "below", 1, 2, 3, target_compliance=0.95).allowed_bad_fraction == pytest.approx(0.05)


def test_budget_remaining_fraction_and_time_with_full_data() -> None:
    # 7 d = 168 h of data, 1 h bad: bad fraction 1/168 = 0.005952; allowed 0.01
    # consumed 0.5952 → remaining 1 − 0.5952 = 0.404762
    # budget time 168 h × 0.01 = 1.68 h; remaining 1.68 h − 1 h = 0.68 h = 40.8 min
    budget = error_budget(LATENCY, week(167 * HOUR, 1 * HOUR))
    assert budget.total_time == timedelta(hours=1.68)
    assert budget.consumed_fraction == pytest.approx(100 / 168)
    assert budget.remaining_fraction == pytest.approx(1 - 100 / 168)
    assert budget.remaining_time is not None
    assert budget.remaining_time.total_seconds() == pytest.approx(40.8 * 60)


def test_budget_extrapolates_the_measured_share_over_gaps_and_can_go_negative() -> None:
    # only 24 h measured (23 h good, 1 h bad), 6 days no data: bad fraction 1/24 = 0.041667
    # consumed 0.041667 / 0.01 = 4.1667 → remaining −3.1667; time −3.1667 × 1.68 h = −5.32 h
    budget = error_budget(LATENCY, week(23 * HOUR, 1 * HOUR))
    assert budget.remaining_fraction == pytest.approx(1 - 100 / 24)
    assert budget.remaining_time is not None
    assert budget.remaining_time.total_seconds() / 3600 == pytest.approx(-5.32)


def test_budget_without_data_is_none() -> None:
    budget = error_budget(LATENCY, week(ZERO, ZERO))
    assert (budget.bad_fraction, budget.remaining_fraction, budget.remaining_time) == (None, None, None)
    assert time_to_exhaustion(budget, 3.0) is None


def test_budget_from_samples_over_a_custom_window() -> None:
    # a 1 h window (the /slo status "1h" override): 12:00 = 2500 for 6 min (bad), 12:06 = 1500 for
    # 15 min (good), then no data. bad fraction 6/21; allowed 0.01 → remaining 1 − 28.571 = −27.571
    sli = threshold_sli(
        [Sample(2500, at(12)), Sample(1500, at(12, 6))],
        start=at(12),
        end=at(13),
        direction="below",
        target=2000,
        stale_after=15 * MIN,
    )
    budget = error_budget(LATENCY, sli, HOUR)
    assert budget.window == HOUR
    assert budget.remaining_fraction == pytest.approx(1 - (6 / 21) / 0.01)


def test_burn_rate_is_bad_fraction_over_allowed() -> None:
    # ratio: 10,000 requests, 50 failed → 0.005 / 0.001 = 5×
    sli = RatioSli(NOW - HOUR, NOW, good_events=9950, total_events=10000, no_data_time=ZERO)
    assert burn_rate(sli, AVAILABILITY.allowed_bad_fraction) == pytest.approx(5.0)
    # threshold: 12 min bad of 60 → 0.2 / 0.01 = 20×
    assert burn_rate(week(48 * MIN, 12 * MIN), 0.01) == pytest.approx(20.0)
    # no data → no burn rate (not 0×)
    assert burn_rate(week(ZERO, ZERO), 0.01) is None


def test_budget_consumed_in_a_lookback() -> None:
    # the workbook's page tier: 14.4× for 1 h of a 30 d window = 14.4 / 720 = 2%
    assert budget_consumed(14.4, HOUR, 30 * DAY) == pytest.approx(0.02)
    # 6× for 6 h = 36 / 720 = 5%; 1× for 3 d = 3 / 30 = 10%
    assert budget_consumed(6.0, 6 * HOUR, 30 * DAY) == pytest.approx(0.05)
    assert budget_consumed(1.0, 3 * DAY, 30 * DAY) == pytest.approx(0.10)


def test_time_to_exhaustion() -> None:
    # W = 7 d, allowed 1%, bad fraction 0.4% → remaining 0.6 (= 0.6 × 1.68 h = 60.48 min of budget)
    # at 2× bad time accrues at 2 × 1% = 0.02 h per hour → 1.008 h / 0.02 = 50.4 h (= 0.6 × 168 h / 2)
    budget = Budget(7 * DAY, 0.01, 0.004)
    assert budget.remaining_time is not None
    assert budget.remaining_time.total_seconds() == pytest.approx(60.48 * 60)
    ttl = time_to_exhaustion(budget, 2.0)
    assert ttl is not None and ttl.total_seconds() / 3600 == pytest.approx(50.4)
    # a full budget at 14.4× on 30 d: 720 h / 14.4 = 50 h (the workbook's "gone in ~2 days")
    fresh = time_to_exhaustion(Budget(30 * DAY, 0.001, 0.0), 14.4)
    assert fresh is not None and fresh.total_seconds() / 3600 == pytest.approx(50.0)
    # already spent → 0; nothing burning → never (None)
    assert time_to_exhaustion(Budget(7 * DAY, 0.01, 0.02), 3.0) == ZERO
    assert time_to_exhaustion(budget, 0.0) is None
    assert time_to_exhaustion(budget, None) is None


def test_a_budget_is_projected_only_from_a_tenth_of_the_window() -> None:
    # 15 bad minutes and nothing else in 7 days: 100% bad over 0.15% of the window. Extrapolated,
    # that is "−9900% left" and "gone now"; it is too little data to say anything about a week.
    one = [Sample(6100, NOW - 3 * HOUR)]
    sli = threshold_sli(one, start=NOW - 7 * DAY, end=NOW, direction="below", target=2000, stale_after=15 * MIN)
    thin = error_budget(LATENCY, sli)
    assert thin.coverage == pytest.approx(15 / 10080)
    assert not thin.projectable
    assert time_to_exhaustion(thin, 100.0) is None
    # the threshold is MIN_PROJECTION_COVERAGE of the window: 16.8 h of 7 days
    assert Budget(7 * DAY, 0.01, 0.5, coverage=MIN_PROJECTION_COVERAGE).projectable
    assert not Budget(7 * DAY, 0.01, 0.5, coverage=MIN_PROJECTION_COVERAGE - 0.001).projectable
    assert MIN_PROJECTION_COVERAGE == 0.10
    # no data at all is never projectable, whatever the coverage says
    assert not Budget(7 * DAY, 0.01, None, coverage=1.0).projectable
