"""The ``/slo status`` dashboard: rows, per-model compliance, worst-first order, the monospace table."""

from __future__ import annotations

from datetime import timedelta

from bot.config.durations import window_title
from bot.metrics.samples import Sample
from bot.slo.dashboard import build_dashboard, overall_text, render_overview, render_table, slo_row
from bot.slo.sli import Series, Status
from bot.slo.spec import SloSpec
from bot.slo.text import percent, value
from tests.slo.helpers import DAY, HOUR, MIN, NOW, every

STEP = 10 * MIN
FROM = NOW - 7 * DAY - STEP  # one sample before the window holds into it


def steady(number: float) -> list[Sample]:
    return every(number, start=FROM, end=NOW, step=STEP)


def latency(model: str = "support-bot", name: str | None = None) -> SloSpec:
    return SloSpec(model, "response_time_p95_ms", "below", 2000, 3000, 5000, name=name)


SEED_000 = [
    SloSpec("support-bot", "current_accuracy", "above", 0.90, 0.85, 0.75, name="Accuracy"),
    SloSpec("support-bot", "helpfulness", "above", 0.85, 0.80, 0.70, name="Helpfulness", unit="ratio"),
    latency(name="P95 Latency"),
    SloSpec("support-bot", "error_rate", "below", 0.01, 0.02, 0.05, name="Error Rate"),
    SloSpec("support-bot", "cost_per_query", "below", 0.05, 0.08, 0.10, name="Cost/Query"),
]
SEED_SERIES: Series = {
    "current_accuracy": steady(0.923),
    "helpfulness": steady(0.871),
    "response_time_p95_ms": steady(1800),
    "error_rate": steady(0.003),
    "cost_per_query": steady(0.042),
}


def test_seed_000_dashboard() -> None:
    # every SLO met all week: compliance 100%, no budget used — 7 d × 1% = 1.68 h = 1 h 40 min (48 s dropped),
    # burn over the last hour 0×; 5 of 5 ok → overall 100%.
    (board,) = build_dashboard(SEED_000, {"support-bot": SEED_SERIES}, NOW)
    assert render_table(board) == "\n".join(
        [
            "SLO Dashboard - support-bot - Last 7 Days",
            "─" * 86,
            "Metric      │ Target  │ Current │ Budget left       │ Burn (1 h) │ Compliance │ Status",
            "─" * 86,
            "Accuracy    │ ≥ 90%   │ 92.3%   │ 100% (1 h 40 min) │ 0.0×       │ 100%       │ ✅ ok",
            "Helpfulness │ ≥ 85%   │ 87.1%   │ 100% (1 h 40 min) │ 0.0×       │ 100%       │ ✅ ok",
            "P95 Latency │ ≤ 2s    │ 1.8s    │ 100% (1 h 40 min) │ 0.0×       │ 100%       │ ✅ ok",
            "Error Rate  │ ≤ 1%    │ 0.3%    │ 100% (1 h 40 min) │ 0.0×       │ 100%       │ ✅ ok",
            "Cost/Query  │ ≤ $0.05 │ $0.042  │ 100% (1 h 40 min) │ 0.0×       │ 100%       │ ✅ ok",
            "─" * 86,
            "Overall SLO Compliance: 100%",
            "Data for 100% of the window",
        ]
    )
    assert board.compliance == 1.0


def bad_stretch(start: timedelta, end: timedelta) -> list[Sample]:
    """1500 ms every 10 min, 6100 ms for samples from NOW − start to before NOW − end."""
    return [Sample(6100 if NOW - start <= s.at < NOW - end else 1500, s.at) for s in steady(0)]


def test_row_overspent_budget_and_critical_status() -> None:
    # bad for the last 2 h (samples NOW−2h … NOW): 120 min of 10,080 → compliance 98.81%;
    # consumed 0.0119 / 0.01 = 1.19 → spent (119% used); last hour all bad → 1 / 0.01 = 100×; 6100 ms ≥ 5000 → critical
    row = slo_row(latency(), {"response_time_p95_ms": bad_stretch(2 * HOUR, -MIN)}, NOW)
    assert row.cells == ("response_time_p95_ms", "≤ 2s", "6.1s", "spent (119% used)", "100.0×", "98.81%", "🔴 critical")
    assert row.status is Status.CRITICAL


def test_row_partly_used_budget() -> None:
    # bad from 3 h to 2 h ago: 60 min of 10,080 → compliance 99.40%; consumed 0.5952 → 40% left,
    # 0.4048 × 1.68 h = 0.68 h = 40.8 min = 40 min 48 s; the last hour is clean → 0.0×; now 1500 ms → ok
    row = slo_row(latency(), {"response_time_p95_ms": bad_stretch(3 * HOUR, 2 * HOUR)}, NOW)
    assert row.cells == ("response_time_p95_ms", "≤ 2s", "1.5s", "40% (40 min 48 s)", "0.0×", "99.4%", "✅ ok")


def test_sparse_data_says_how_much_of_the_window_has_data_instead_of_a_budget() -> None:
    # one bad sample 3 h ago (holds 15 min) and a good one 10 min ago: 25 min of 10,080 have data.
    # Projected, 15 bad of 25 measured minutes would be "−5900% (spent)" beside a ✅ ok; it is not shown.
    samples = [Sample(6100, NOW - 3 * HOUR), Sample(1500, NOW - 10 * MIN)]
    row = slo_row(latency(), {"response_time_p95_ms": samples}, NOW)
    assert row.coverage == 25 / 10080
    assert row.budget_remaining is None
    assert row.cells == ("response_time_p95_ms", "≤ 2s", "1.5s", "data for <1% of 7 d", "0.0×", "40%", "✅ ok")
    (board,) = build_dashboard([latency()], {"support-bot": {"response_time_p95_ms": samples}}, NOW)
    assert render_table(board).splitlines()[-1] == (
        "Data for <1% of the window; a budget is projected once 10% of the window has data"
    )
    assert render_overview([board]) == [
        "✅ support-bot — SLO compliance 100% (1/1 ok)"
        " · too little data for a budget: response_time_p95_ms data for <1% of 7 d"
    ]


def test_a_budget_is_shown_from_a_tenth_of_the_window() -> None:
    # good samples every 10 min over the last 17 h (coverage 17 h / 168 h = 10.1%) → projected;
    # over the last 16 h (9.5%) → not
    def row(hours: int) -> str:
        samples = every(1500, start=NOW - hours * HOUR, end=NOW, step=STEP)
        return slo_row(latency(), {"response_time_p95_ms": samples}, NOW).budget_text

    assert row(17) == "100% (1 h 40 min)"
    assert row(16) == "data for 10% of 7 d"


def test_a_spent_budget_is_not_ok_even_when_the_value_now_is() -> None:
    # bad from 3 h ago until 10 min ago, good since: 170 bad minutes of 10,080 → compliance 98.31%,
    # 1.69 budgets used → spent; 50 of the last 60 minutes bad → 83.3×. The current value meets the
    # objective, but ✅ beside "spent" would contradict itself: the row is "⚠️ budget spent", not ok
    samples = bad_stretch(3 * HOUR, 10 * MIN)
    row = slo_row(latency(), {"response_time_p95_ms": samples}, NOW)
    assert row.current.status is Status.OK
    assert row.status is Status.BUDGET_SPENT
    assert row.cells[3:] == ("spent (169% used)", "83.3×", "98.31%", "⚠️ budget spent")
    (board,) = build_dashboard(
        [latency(), SEED_000[0]], {"support-bot": {**SEED_SERIES, "response_time_p95_ms": samples}}, NOW
    )
    assert board.compliance == 0.5
    assert render_overview([board])[0].startswith(
        "⚠️ support-bot — SLO compliance 50% (1/2 ok) · worst: response_time_p95_ms 1.5s vs ≤ 2s (budget spent)"
    )


def test_row_without_data_says_no_data_everywhere() -> None:
    row = slo_row(latency(), {}, NOW)
    assert row.cells == ("response_time_p95_ms", "≤ 2s", "no data", "no data", "no data", "no data", "⚪ no data")


def test_window_override_and_title() -> None:
    # /slo status support-bot 1h: compliance and budget over the last hour only; 1500 at −60 and −45 min
    # (30 min good), 6100 at −30 and −15 min (30 min bad) → 50%; consumed 0.5 / 0.01 = 50 → 5000% used
    samples = [Sample(v, NOW - m * MIN) for v, m in ((1500, 60), (1500, 45), (6100, 30), (6100, 15))]
    (board,) = build_dashboard([latency()], {"support-bot": {"response_time_p95_ms": samples}}, NOW, window=HOUR)
    (row,) = board.rows
    assert (row.window, row.compliance, row.budget_text) == (HOUR, 0.5, "spent (5000% used)")
    assert render_table(board).splitlines()[0] == "SLO Dashboard - support-bot - Last 1 Hour"


def test_models_sort_worst_first_and_compliance_counts_measured_slos() -> None:
    # alpha: 2 ok → 100%. beta: 1 critical + 1 ok → 50%. gamma: nothing measured → None.
    # delta: 1 ok + 1 no data → 1/1 = 100%, the no-data SLO said aloud.
    # order: beta (critical), gamma (no data, blind), delta (no data, 100% of the rest), alpha (ok)
    def two(model: str) -> list[SloSpec]:
        return [latency(model), SloSpec(model, "helpfulness", "above", 0.85, 0.8, 0.7)]

    specs = [*two("alpha"), *two("beta"), *two("gamma"), *two("delta")]
    ok = {"response_time_p95_ms": steady(1500), "helpfulness": steady(0.9)}
    series: dict[str, Series] = {
        "alpha": ok,
        "beta": {"response_time_p95_ms": steady(6100), "helpfulness": steady(0.9)},
        "delta": {"helpfulness": steady(0.9)},
    }
    boards = build_dashboard(specs, series, NOW)
    assert [(b.model, b.worst, b.compliance) for b in boards] == [
        ("beta", Status.CRITICAL, 0.5),
        ("gamma", Status.NO_DATA, None),
        ("delta", Status.NO_DATA, 1.0),
        ("alpha", Status.OK, 1.0),
    ]
    # rows worst first within a model
    assert [r.spec.metric for r in boards[0].rows] == ["response_time_p95_ms", "helpfulness"]
    assert [r.spec.metric for r in boards[2].rows] == ["response_time_p95_ms", "helpfulness"]
    assert overall_text(boards[1]) == "Overall SLO Compliance: no data"
    assert overall_text(boards[2]) == "Overall SLO Compliance: 100% (1 of 1 measured SLOs ok; 1 with no data)"
    assert render_overview(boards) == [
        "🔴 beta — SLO compliance 50% (1/2 ok) · worst: response_time_p95_ms 6.1s vs ≤ 2s (critical)",
        "⚪ gamma — SLO compliance no data (0/0 ok, 2 no data) · worst: response_time_p95_ms no data vs ≤ 2s (no data)",
        "⚪ delta — SLO compliance 100% (1/1 ok, 1 no data) · worst: response_time_p95_ms no data vs ≤ 2s (no data)",
        "✅ alpha — SLO compliance 100% (2/2 ok)",
    ]


def test_text_helpers() -> None:
    assert [percent(x) for x in (0.9234, 1.0, 0.0, -0.19, None)] == ["92.3%", "100%", "0%", "-19%", "no data"]
    assert [value(x, u) for x, u in ((850, "ms"), (2000, "ms"), (0.9, "ratio"), (0.05, "$"), (3.5, ""))] == [
        "850ms",
        "2s",
        "90%",
        "$0.05",
        "3.5",
    ]
    assert [window_title(w) for w in (7 * DAY, DAY, 24 * HOUR, 6 * HOUR)] == [
        "Last 7 Days",
        "Last 1 Day",
        "Last 1 Day",
        "Last 6 Hours",
    ]
