"""Multiwindow, multi-burn-rate alerts: scaled tiers, AND of windows, suppression, guards, absence."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.metrics.samples import Sample
from bot.severity import Severity
from bot.slo.burn_rate import BurnTier, evaluate_burn, evaluate_tiers, tiers_for
from bot.slo.sli import Series
from bot.slo.spec import SloSpec
from tests.slo.helpers import DAY, HOUR, MIN, NOW, every

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
LATENCY_7D = SloSpec("support-bot", "response_time_p95_ms", "below", 2000, 3000, 5000, window=7 * DAY)
LATENCY_30D = SloSpec("support-bot", "response_time_p95_ms", "below", 2000, 3000, 5000, window=30 * DAY)


def shape(tiers: tuple[BurnTier, ...]) -> list[tuple[str, timedelta, timedelta, float]]:
    return [(t.name, t.long, t.short, round(t.threshold, 6)) for t in tiers]


def test_tiers_for_30_days_are_the_workbook_table() -> None:
    # burn = spent × W / long: 0.02 × 720 h / 1 h = 14.4; 0.05 × 720 / 6 = 6; 0.10 × 30 d / 3 d = 1
    assert shape(tiers_for(30 * DAY)) == [
        ("fast", HOUR, 5 * MIN, 14.4),
        ("slow", 6 * HOUR, 30 * MIN, 6.0),
        ("ticket", 3 * DAY, 6 * HOUR, 1.0),
    ]
    assert [t.action for t in tiers_for(30 * DAY)] == ["page", "page", "ticket"]


def test_tiers_for_7_days_scale_the_windows_not_the_thresholds() -> None:
    # long = long₃₀ × 7/30: 60 min → 14 min, 6 h → 84 min, 3 d → 16.8 h = 16 h 48 min; short = long / 12:
    # 70 s, 7 min, 84 min. Thresholds: 0.02 × 10080 min / 14 min = 14.4, 0.05 × 10080 / 84 = 6, 0.1 × 168/16.8 = 1
    assert shape(tiers_for(7 * DAY)) == [
        ("fast", 14 * MIN, timedelta(seconds=70), 14.4),
        ("slow", 84 * MIN, 7 * MIN, 6.0),
        ("ticket", timedelta(hours=16, minutes=48), 84 * MIN, 1.0),
    ]


def test_tiers_floor_short_windows_and_keep_the_budget_share() -> None:
    # 1 d window: fast long 60 min / 30 = 2 min → floored to 5 min; threshold 0.02 × 1440 min / 5 min = 5.76
    # short max(5 min / 12 = 25 s, 1 min) = 1 min. slow 12 min / 1 min / 6; ticket 2.4 h / 12 min / 1.
    assert shape(tiers_for(DAY)) == [
        ("fast", 5 * MIN, MIN, 5.76),
        ("slow", 12 * MIN, MIN, 6.0),
        ("ticket", timedelta(hours=2, minutes=24), 12 * MIN, 1.0),
    ]


def availability(errors_per_minute: int, *, burning: timedelta = 6 * HOUR, quiet_last: timedelta = MIN * 0) -> Series:
    """30 days of traffic at 1,000 requests a minute: hourly pushes of 60,000 (all ok) from 720 h to
    6 h ago, then pushes every minute (1,000 each, ``errors_per_minute`` failed) over the last 6 h —
    uneven spacing on purpose. ``burning`` limits the errors to the most recent stretch; the last
    ``quiet_last`` has no errors."""
    ok: list[Sample] = []
    total: list[Sample] = []
    for hours in range(719, 5, -1):
        ok.append(Sample(60_000, NOW - hours * HOUR))
        total.append(Sample(60_000, NOW - hours * HOUR))
    for minutes in range(359, -1, -1):
        moment = NOW - minutes * MIN
        failing = NOW - burning < moment <= NOW - quiet_last
        ok.append(Sample(1000 - (errors_per_minute if failing else 0), moment))
        total.append(Sample(1000, moment))
    return {"ok": ok, "total": total}


def test_fastest_firing_tier_wins_and_slower_ones_are_suppressed() -> None:
    # 2% of requests fail for the last 6 h; allowed 0.1% → burn 0.02 / 0.001 = 20× in 1 h, 5 m, 6 h, 30 m.
    # 3 d: 7,200 failures (360 min × 20) of 4,320,000 requests (360 × 1,000 + 66 h × 60,000) = 0.1667% → 1.667×
    # fast (14.4), slow (6) and ticket (1) all fire → one finding, tier fast, P1; slow and ticket suppressed.
    # budget spent in the long window: 20 × 1 h / 720 h = 2.78%
    # 30 d: 7,200 of 43,200,000 = 0.01667% → consumed 0.1667 → 83% left; 0.8333 × 720 h / 20 = 30 h = 1 d 6 h
    finding = evaluate_burn(AVAILABILITY, availability(20), NOW)
    assert finding is not None and finding.kind == "burn"
    assert finding.tier is not None and finding.tier.name == "fast"
    assert finding.severity is Severity.P1
    assert finding.suppressed == ("slow", "ticket")
    assert finding.burn_long == pytest.approx(20.0)
    assert finding.burn_short == pytest.approx(20.0)
    assert finding.budget_spent_in_long == pytest.approx(20 / 720)
    assert finding.budget_remaining == pytest.approx(1 - 1 / 6)
    assert finding.time_to_exhaustion is not None
    assert finding.time_to_exhaustion.total_seconds() / 3600 == pytest.approx(30.0)
    assert finding.dedup_key == "slo:availability:api"
    assert finding.explanation == (
        "Burning error budget of availability (api) 20.0× too fast (1 h: 20.0×, 5 min: 20.0×; alerts above 14.4×): "
        "2.8% of the 30-day budget used in the last 1 h; 83% left; at this rate the budget is gone in 1 d 6 h."
    )


def test_slow_burn_pages_through_the_slow_tier_only() -> None:
    # 1% failing for 6 h → 10×: fast needs 14.4 (no); slow needs 6 over 6 h and 30 m (yes);
    # 3 d: 3,600 / 4,320,000 = 0.0833% → 0.833× < 1 (no) → tier slow, nothing suppressed.
    finding = evaluate_burn(AVAILABILITY, availability(10), NOW)
    assert finding is not None and finding.tier is not None
    assert (finding.tier.name, finding.severity, finding.suppressed) == ("slow", Severity.P1, ())


def test_both_windows_must_agree_so_the_page_resets_when_burning_stops() -> None:
    # errors stopped 5 min ago: fast long 1 h = 55/60 × 20 = 18.3× but short 5 m = 0× → fast does not fire;
    # slow: 6 h = 355/360 × 20 = 19.7×, 30 m = 25/30 × 20 = 16.7× → slow fires (ticket suppressed).
    results = evaluate_tiers(AVAILABILITY, availability(20, quiet_last=5 * MIN), NOW, tiers_for(30 * DAY))
    fast = results[0]
    assert fast.burn_long == pytest.approx(55 / 60 * 20)
    assert fast.burn_short == pytest.approx(0.0)
    assert not fast.firing
    finding = evaluate_burn(AVAILABILITY, availability(20, quiet_last=5 * MIN), NOW)
    assert finding is not None and finding.tier is not None and finding.tier.name == "slow"


def test_ticket_tier_uses_the_ticket_severity_and_custom_map() -> None:
    # 0.15% failing for 3 days at 1,000/min: every window 0.0015 / 0.001 = 1.5× → only ticket (> 1) fires
    ok = every(998.5, start=NOW - 3 * DAY + MIN, end=NOW, step=MIN)
    total = every(1000, start=NOW - 3 * DAY + MIN, end=NOW, step=MIN)
    series = {"ok": ok, "total": total}
    finding = evaluate_burn(AVAILABILITY, series, NOW)
    assert finding is not None and finding.tier is not None and finding.tier.name == "ticket"
    assert finding.severity is Severity.P3
    assert finding.explanation.startswith("Slowly burning error budget")
    custom = {"page": Severity.P0, "ticket": Severity.P2, "absent": Severity.P3}
    again = evaluate_burn(AVAILABILITY, series, NOW, severities=custom)
    assert again is not None and again.severity is Severity.P2


def test_min_traffic_guard_no_page_for_one_failure_in_ten_requests() -> None:
    # 10 requests in the last 5 minutes, 1 failed: 10% → 100× everywhere, far past 14.4 — but only 10 events
    # in the 1 h long window < min_events 100 → no finding. With min_events 10 it pages.
    series = {
        "ok": [Sample(2, NOW - 4 * MIN), Sample(3, NOW - 2 * MIN), Sample(4, NOW)],
        "total": [Sample(3, NOW - 4 * MIN), Sample(3, NOW - 2 * MIN), Sample(4, NOW)],
    }
    assert evaluate_burn(AVAILABILITY, series, NOW) is None
    fast = evaluate_tiers(AVAILABILITY, series, NOW, tiers_for(30 * DAY))[0]
    assert fast.over_threshold and not fast.firing
    assert fast.blocked == "only 10 events in the long window (min_events 100)"
    low = replace(AVAILABILITY, min_events=10)
    finding = evaluate_burn(low, series, NOW)
    assert finding is not None and finding.tier is not None and finding.tier.name == "fast"


def latency_series(bad_minutes: int) -> Series:
    """1500 ms every minute for the last 24 h, the last ``bad_minutes`` samples (before NOW) at 6000 ms."""
    samples = every(1500, start=NOW - DAY, end=NOW, step=MIN)
    cut = len(samples) - 1 - bad_minutes
    return {"response_time_p95_ms": [*samples[:cut], *(Sample(6000, s.at) for s in samples[cut:])]}


def test_window_scaling_a_7_day_slo_pages_where_a_30_day_one_does_not() -> None:
    # 3 min over 2000 ms (NOW−3m … NOW, the sample at NOW holds 0 s). Allowed 1% of the time.
    # 7 d: fast long 14 min → 3/14 = 21.4% → 21.4× > 14.4; short 70 s → 100% → 100×: page.
    #      spent 21.43 × 14 min / 10,080 min = 2.98%; 7 d measured = 24 h: 3/1440 = 0.2083% → 20.8% used,
    #      79.17% left; 0.7917 × 168 h / 21.43 = 6.21 h = 6 h 12 min
    # 30 d: fast long 1 h → 3/60 = 5× < 14.4; slow 6 h → 0.83×; ticket 3 d has data for 24 h = 33% of it,
    #      under min_coverage 50% → nothing.
    series = latency_series(3)
    finding = evaluate_burn(LATENCY_7D, series, NOW)
    assert finding is not None and finding.tier is not None
    assert (finding.tier.name, finding.severity, finding.suppressed) == ("fast", Severity.P1, ())
    assert finding.burn_long == pytest.approx(300 / 14)
    assert finding.burn_short == pytest.approx(100.0)
    assert finding.budget_spent_in_long == pytest.approx(300 / 14 * 14 / 10080)
    assert finding.budget_remaining == pytest.approx(1 - 300 / 1440)
    assert finding.time_to_exhaustion is not None
    assert finding.time_to_exhaustion.total_seconds() / 3600 == pytest.approx((1 - 300 / 1440) * 168 / (300 / 14))
    assert finding.explanation == (
        "Burning error budget of response_time_p95_ms (support-bot) 21.4× too fast (14 min: 21.4×, 1 min 10 s: 100.0×; "
        "alerts above 14.4×): 3% of the 7-day budget used in the last 14 min; 79% left; "
        "at this rate the budget is gone in 6 h 12 min."
    )
    assert evaluate_burn(LATENCY_30D, series, NOW) is None
    ticket = evaluate_tiers(LATENCY_30D, series, NOW, tiers_for(30 * DAY))[2]
    assert ticket.blocked == "data for 33.3% of the long window (min_coverage 0.5)"


def test_coverage_guard_for_threshold_slos() -> None:
    # only 5 min of data, all bad, inside the 14 min fast window: coverage 5/14 = 35.7% < 50% → no page;
    # with min_coverage 0.25 it pages.
    series = {"response_time_p95_ms": every(6000, start=NOW - 5 * MIN, end=NOW, step=MIN)}
    assert evaluate_burn(LATENCY_7D, series, NOW) is None
    loose = replace(LATENCY_7D, min_coverage=0.25)
    finding = evaluate_burn(loose, series, NOW)
    assert finding is not None and finding.tier is not None and finding.tier.name == "fast"


def test_a_page_on_a_thin_window_does_not_project_the_budget() -> None:
    # 20 min of data, all bad: the fast tier's 14 min window is covered and pages, but 20 min is
    # 0.2% of the 7-day window, so "−9900% left; gone now" would be a made-up number
    series = {"response_time_p95_ms": every(6000, start=NOW - 20 * MIN, end=NOW, step=MIN)}
    finding = evaluate_burn(LATENCY_7D, series, NOW)
    assert finding is not None and finding.tier is not None and finding.tier.name == "fast"
    assert (finding.budget_remaining, finding.time_to_exhaustion) == (None, None)
    assert finding.explanation.endswith(
        "used in the last 14 min; data for <1% of 7 d, too little to project the budget."
    )


def test_absent_metric_is_its_own_finding() -> None:
    # last sample 20 min ago > absent_after 15 min → "absent", P2, with when it was last seen
    series = {"response_time_p95_ms": every(1500, start=NOW - HOUR, end=NOW - 20 * MIN, step=MIN)}
    finding = evaluate_burn(LATENCY_7D, series, NOW)
    assert finding is not None and finding.kind == "absent"
    assert finding.severity is Severity.P2
    assert finding.last_seen == NOW - 20 * MIN
    assert finding.dedup_key == "slo:response_time_p95_ms:support-bot"  # same key as a burn: no silent resolve
    assert finding.explanation.startswith(
        "No `response_time_p95_ms` sample for support-bot since 2026-01-05 11:40 UTC (20 min ago)"
    )
    # 14 min ago is within absent_after → no finding (and nothing burning)
    recent = {"response_time_p95_ms": every(1500, start=NOW - HOUR, end=NOW - 14 * MIN, step=MIN)}
    assert evaluate_burn(LATENCY_7D, recent, NOW) is None
    # never seen at all, for a ratio SLO: its total_metric is the one that must arrive
    nothing = evaluate_burn(AVAILABILITY, {}, NOW)
    assert nothing is not None and nothing.kind == "absent" and nothing.last_seen is None
    assert "`total`" in nothing.explanation


def test_healthy_slo_has_no_finding() -> None:
    assert evaluate_burn(LATENCY_7D, latency_series(0), NOW) is None
    assert evaluate_burn(AVAILABILITY, availability(0), NOW) is None
