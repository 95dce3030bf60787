"""Time-weighted threshold SLIs, event-ratio SLIs, the current value and its status."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.metrics.samples import Sample
from bot.slo.sli import RatioSli, Status, TimeSli, current, measure, ratio_sli, status_of, threshold_sli
from bot.slo.spec import SloSpec
from tests.slo.helpers import MIN, NOW, at

STALE = timedelta(minutes=15)
LATENCY = SloSpec("support-bot", "response_time_p95_ms", "below", 2000, 3000, 5000, stale_after=STALE)
ACCURACY = SloSpec("support-bot", "current_accuracy", "above", 0.90, 0.85, 0.75, stale_after=STALE)
AVAILABILITY = SloSpec(
    "support-bot",
    "availability",
    "above",
    0.995,
    0.99,
    0.95,
    kind="ratio",
    good_metric="requests_ok",
    total_metric="requests_total",
)


def latency(samples: list[Sample]) -> TimeSli:
    return threshold_sli(samples, start=at(12), end=at(13), direction="below", target=2000, stale_after=STALE)


def test_uneven_spacing_is_time_weighted_and_gaps_beyond_stale_after_are_no_data() -> None:
    # window 12:00–13:00, objective below 2000, stale_after 15 min:
    # 11:55 = 1500 holds into the window until 12:05      → 5 min good
    # 12:05 = 2500 until 12:10                            → 5 min bad
    # 12:10 = 1800 until 12:25 (capped; next is 12:40)    → 15 min good, 12:25–12:40 = 15 min no data
    # 12:40 = 1900 until 12:43                            → 3 min good
    # 12:43 = 3000 until 12:58 (capped; window ends 13:00)→ 15 min bad, 12:58–13:00 = 2 min no data
    # good 5+15+3 = 23 min, bad 5+15 = 20 min, no data 17 min; compliance 23/43 = 0.534884
    sli = latency(
        [
            Sample(1500, at(11, 55)),
            Sample(2500, at(12, 5)),
            Sample(1800, at(12, 10)),
            Sample(1900, at(12, 40)),
            Sample(3000, at(12, 43)),
        ]
    )
    assert sli.good_time == 23 * MIN
    assert sli.bad_time == 20 * MIN
    assert sli.no_data_time == 17 * MIN
    assert sli.compliance == pytest.approx(23 / 43)
    assert sli.bad_fraction == pytest.approx(20 / 43)
    assert sli.coverage == pytest.approx(43 / 60)


def test_a_burst_of_samples_does_not_outvote_a_long_stretch() -> None:
    # 12:00 = 2500 (bad) holds 10 min to 12:10; then ten good samples 1 s apart (12:10:00–12:10:09),
    # the last holding 15 min to 12:25:09; nothing after → no data to 13:00.
    # bad 600 s; good 9 s + 900 s = 909 s; by count it would be 10 good : 1 bad, by time 909 : 600.
    samples = [Sample(2500, at(12)), *(Sample(1000, at(12, 10, s)) for s in range(10))]
    sli = latency(samples)
    assert sli.bad_time == timedelta(seconds=600)
    assert sli.good_time == timedelta(seconds=909)
    assert sli.compliance == pytest.approx(909 / 1509)


def test_no_data_at_all_is_none_not_100_or_0_percent() -> None:
    # nothing in the window; a sample 20 min before it is past stale_after (15 min) → no data
    for samples in ([], [Sample(1500, at(11, 40))]):
        sli = latency(samples)
        assert sli.compliance is None
        assert sli.bad_fraction is None
        assert sli.no_data_time == 60 * MIN
        assert sli.coverage == 0.0


def test_text_samples_and_samples_after_the_window_are_no_data() -> None:
    # 12:00 = 1500 holds to 12:10 (10 min good); 12:10 = "n/a" covers 12:10–12:25 as no data
    # (it also ends the previous sample's hold); 13:05 lies after the window. no data 50 min.
    sli = latency([Sample(1500, at(12)), Sample("n/a", at(12, 10)), Sample(9999, at(13, 5))])
    assert (sli.good_time, sli.bad_time, sli.no_data_time) == (10 * MIN, timedelta(0), 50 * MIN)
    assert sli.compliance == 1.0


def test_above_objective_counts_the_target_itself_as_good() -> None:
    # above 0.90: 0.90 at 12:00 and 12:15 → 30 min good; 0.89 at 12:30 → 15 min bad (cap);
    # 12:45–13:00 no data.
    sli = threshold_sli(
        [Sample(0.90, at(12)), Sample(0.90, at(12, 15)), Sample(0.89, at(12, 30))],
        start=at(12),
        end=at(13),
        direction="above",
        target=0.90,
        stale_after=STALE,
    )
    assert (sli.good_time, sli.bad_time, sli.no_data_time) == (30 * MIN, 15 * MIN, 15 * MIN)


def test_ratio_sums_per_interval_counts_in_the_half_open_window() -> None:
    # window (12:00, 13:00]: the push stamped 12:00 counts the interval before the window → out.
    # in: 12:20 (ok 990 / total 1000), 12:40 (495 / 500), 13:00 (0 / 0)
    # good 1485, total 1500, bad 15 → compliance 0.99, bad fraction 0.01.
    # coverage by requests_total: 12:00 holds to 12:15 (cap), 12:20→12:35, 12:40→12:55, 13:00 → 0
    # covered 15+15+15 = 45 min → no data 15 min.
    good = [Sample(5000, at(12)), Sample(990, at(12, 20)), Sample(495, at(12, 40)), Sample(0, at(13))]
    total = [Sample(5000, at(12)), Sample(1000, at(12, 20)), Sample(500, at(12, 40)), Sample(0, at(13))]
    sli = ratio_sli(good, total, start=at(12), end=at(13), stale_after=STALE)
    assert (sli.good_events, sli.total_events, sli.bad_events) == (1485, 1500, 15)
    assert sli.compliance == pytest.approx(0.99)
    assert sli.bad_fraction == pytest.approx(0.01)
    assert sli.no_data_time == 15 * MIN


def test_ratio_without_events_is_no_data_and_good_is_capped_at_total() -> None:
    # zero requests: compliance None, not 100%.
    empty = ratio_sli([Sample(0, at(12, 30))], [Sample(0, at(12, 30))], start=at(12), end=at(13), stale_after=STALE)
    assert empty.compliance is None and empty.bad_fraction is None
    # good 12 > total 10 (pushes out of step): capped → compliance 1.0, bad 0; negative counts ignored.
    skew = RatioSli(at(12), at(13), good_events=12, total_events=10, no_data_time=timedelta(0))
    assert (skew.compliance, skew.bad_events) == (1.0, 0.0)
    negative = ratio_sli(
        [Sample(-5, at(12, 30))], [Sample(10, at(12, 30))], start=at(12), end=at(13), stale_after=STALE
    )
    assert negative.compliance == 0.0


def test_measure_dispatches_on_kind() -> None:
    series = {"requests_ok": [Sample(99, at(12, 30))], "requests_total": [Sample(100, at(12, 30))]}
    sli = measure(AVAILABILITY, series, start=at(12), end=at(13))
    assert isinstance(sli, RatioSli) and sli.compliance == pytest.approx(0.99)
    sli2 = measure(LATENCY, {"response_time_p95_ms": [Sample(1800, at(12, 50))]}, start=at(12), end=at(13))
    assert isinstance(sli2, TimeSli) and sli2.good_time == 10 * MIN


@pytest.mark.parametrize(
    ("value", "status"),
    [
        # seed 000's accuracy row: target 0.90, warning 0.85, critical 0.75 (above)
        (0.923, Status.OK),
        (0.90, Status.OK),
        (0.87, Status.OFF_TARGET),  # misses the objective, not yet at warning
        (0.85, Status.WARNING),
        (0.80, Status.WARNING),
        (0.75, Status.CRITICAL),
        (None, Status.NO_DATA),
    ],
)
def test_status_levels_above(value: float | None, status: Status) -> None:
    assert status_of(ACCURACY, value) is status


@pytest.mark.parametrize(("value", "status"), [(1800, Status.OK), (2500, Status.OFF_TARGET), (3000, Status.WARNING)])
def test_status_levels_below(value: float, status: Status) -> None:
    assert status_of(LATENCY, value) is status
    assert status_of(LATENCY, 5000) is Status.CRITICAL


def test_status_emoji() -> None:
    assert [s.emoji for s in (Status.OK, Status.WARNING, Status.CRITICAL, Status.NO_DATA)] == ["✅", "⚠️", "🔴", "⚪"]


def test_current_value_is_the_latest_fresh_sample() -> None:
    series = {"response_time_p95_ms": [Sample(1500, NOW - 30 * MIN), Sample(3200, NOW - 14 * MIN)]}
    now = current(LATENCY, series, NOW)
    assert (now.value, now.at, now.status) == (3200, NOW - 14 * MIN, Status.WARNING)
    # 16 min later the sample is past stale_after (15 min): no data, but "last seen" is kept
    later = current(LATENCY, series, NOW + 2 * MIN)
    assert (later.value, later.at, later.status) == (None, NOW - 14 * MIN, Status.NO_DATA)
    assert current(LATENCY, {}, NOW).status is Status.NO_DATA


def test_current_ratio_is_over_the_last_stale_after() -> None:
    # (11:45, 12:00]: pushes at 11:50 (ok 495 / 500) and 12:00 (480 / 500); 11:40 is older.
    # good 975, total 1000 → 0.975: below 0.99 (warning) but above 0.95 (critical) → WARNING.
    series = {
        "requests_ok": [Sample(0, NOW - 20 * MIN), Sample(495, NOW - 10 * MIN), Sample(480, NOW)],
        "requests_total": [Sample(1000, NOW - 20 * MIN), Sample(500, NOW - 10 * MIN), Sample(500, NOW)],
    }
    now = current(AVAILABILITY, series, NOW)
    assert now.value == pytest.approx(0.975)
    assert now.status is Status.WARNING


# --- seed 000's error rate (< 1%) and cost per query (< $0.05) ---------------------------------

ERROR_RATE = SloSpec(
    "support-bot",
    "error_rate",
    "below",
    0.01,
    0.02,
    0.05,
    kind="ratio",
    bad_metric="responses_error",
    total_metric="responses_total",
    stale_after=STALE,
)
COST_PER_QUERY = SloSpec(
    "support-bot",
    "cost_per_query",
    "below",
    0.05,
    0.08,
    0.15,
    kind="quotient",
    numerator_metric="cost_usd",
    denominator_metric="queries",
    stale_after=STALE,
)


def test_an_error_rate_counts_the_bad_events_and_spends_its_budget_on_them() -> None:
    # in (12:00, 13:00]: 3 errors of 1000, then 12 of 500 → 15 bad of 1500: the error rate is 1%.
    series = {
        "responses_error": [Sample(3, at(12, 20)), Sample(12, at(12, 40))],
        "responses_total": [Sample(1000, at(12, 20)), Sample(500, at(12, 40))],
    }
    sli = measure(ERROR_RATE, series, start=at(12), end=at(13))
    assert isinstance(sli, RatioSli)
    assert (sli.good_events, sli.total_events) == (1485, 1500)
    assert sli.bad_fraction == pytest.approx(0.01)
    assert ERROR_RATE.allowed_bad_fraction == pytest.approx(0.01)  # the objective is the budget itself
    assert ERROR_RATE.metrics == ("responses_error", "responses_total")


def test_the_current_error_rate_is_the_bad_share_of_the_last_stale_after() -> None:
    # 12:50 and 13:00 fall in the last 15 min: 3 of 1000 → 0.3%, ✅ under 1%
    series = {
        "responses_error": [Sample(50, at(12, 30)), Sample(1, at(12, 50)), Sample(2, at(13))],
        "responses_total": [Sample(100, at(12, 30)), Sample(500, at(12, 50)), Sample(500, at(13))],
    }
    now = current(ERROR_RATE, series, at(13))
    assert now.value == pytest.approx(0.003)
    assert now.status is Status.OK
    later = current(ERROR_RATE, {**series, "responses_error": [Sample(30, at(13))]}, at(13))
    assert later.value == pytest.approx(0.03) and later.status is Status.WARNING  # 30 of 1000


def test_a_cost_per_query_holds_each_intervals_quotient_to_the_objective_over_time() -> None:
    # pushes every 15 min: 12:15 $4.20/100 = $0.042 (good), 12:30 $12/100 = $0.12 (bad),
    # 12:45 no queries (no quotient: no data), 13:00 $2/50 = $0.04 (good, holds 0 min in the window).
    # 12:00–12:15: the 12:00 push ($3/100) holds → good. So good 12:00–12:30, bad 12:30–12:45.
    series = {
        "cost_usd": [
            Sample(3, at(12)),
            Sample(4.2, at(12, 15)),
            Sample(12, at(12, 30)),
            Sample(0, at(12, 45)),
            Sample(2, at(13)),
        ],
        "queries": [
            Sample(100, at(12)),
            Sample(100, at(12, 15)),
            Sample(100, at(12, 30)),
            Sample(0, at(12, 45)),
            Sample(50, at(13)),
        ],
    }
    sli = measure(COST_PER_QUERY, series, start=at(12), end=at(13))
    assert isinstance(sli, TimeSli)
    assert (sli.good_time, sli.bad_time, sli.no_data_time) == (30 * MIN, 15 * MIN, 15 * MIN)
    assert COST_PER_QUERY.sli_metric == "queries"


def test_the_current_cost_per_query_is_spend_over_queries_of_the_last_stale_after() -> None:
    # 12:50 $1/100 and 13:00 $4.2/30 → $5.20 / 130 = $0.04, not the mean of 0.01 and 0.14
    series = {
        "cost_usd": [Sample(90, at(12, 30)), Sample(1, at(12, 50)), Sample(4.2, at(13))],
        "queries": [Sample(100, at(12, 30)), Sample(100, at(12, 50)), Sample(30, at(13))],
    }
    now = current(COST_PER_QUERY, series, at(13))
    assert now.value == pytest.approx(0.04)
    assert now.status is Status.OK
    assert current(COST_PER_QUERY, {"cost_usd": [], "queries": []}, at(13)).value is None
