"""``incident-bot slo status`` and ``alerts review`` on fixed data, the error-budget chart, and the
scheduler jobs that run SLO passes and the weekly review."""

from __future__ import annotations

import argparse
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.cli import main
from bot.config.loader import Config
from bot.metrics import store as metric_store
from bot.metrics.samples import Sample
from bot.metrics.store import Point
from bot.settings import Settings
from bot.slo import cli as slo_cli
from bot.slo.chart import Burndown, budget_burndown, budget_figure, render_budget_chart
from bot.slo.dashboard import slo_row
from bot.slo.service import slo_chart
from bot.slo.spec import SloSpec
from bot.storage.database import make_engine, migrate, session
from tests.slo.helpers import DAY, HOUR, MIN, NOW, every

REPO = Path(__file__).resolve().parents[2]
BOT = "support-bot"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fill(engine: Engine, now: datetime) -> None:
    """A week of support-bot every 5 minutes; p95 latency 2.5 s for the last hour."""
    points: list[Point] = []
    start = now - 7 * DAY
    for name, value in {
        "current_accuracy": 0.92,
        "helpfulness": 0.871,
        "responses_ok": 998,
        "responses_error": 2,
        "responses_total": 1000,
        "cost_usd": 42.0,
    }.items():
        points += [(BOT, name, x.at, x.value) for x in every(value, start=start, end=now, step=5 * MIN)]
    for x in every(1800, start=start, end=now, step=5 * MIN):
        points.append((BOT, "response_time_p95_ms", x.at, 2500 if x.at > now - HOUR else 1800))
    with session(engine) as s, s.begin():
        metric_store.record(s, points)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("BOT_CONFIG_DIR", raising=False)
    engine = make_engine(url)
    migrate(engine)
    return engine


def run_cli(argv: list[str], now: datetime) -> int:
    parser = argparse.ArgumentParser(prog="incident-bot")
    sub = parser.add_subparsers(dest="command", required=True)
    slo_cli.add_parsers(sub)
    return slo_cli.run(parser.parse_args(argv), now=now)


def test_slo_status_prints_seed_000s_table_for_one_model(database: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    fill(database, NOW)
    assert run_cli(["slo", "status", BOT, "--config-dir", str(REPO)], NOW) == 0
    out = capsys.readouterr().out
    # hand-checked. Latency: the 11:05 … 12:00 samples are 2.5 s (the 11:00 one, 1.8 s, holds to
    # 11:05), so 55 bad minutes of 10,080 = 0.546% of a 1% budget → 45.4% left = 45.4% × 100.8 min
    # = 45 min 48 s; burn over the last hour 55/60 = 91.7% bad / 1% = 91.7×; compliance 99.45%.
    # Availability: 998/1000 → 0.2% bad of a 0.5% budget → 60% left = 0.6 × 0.5% × 7 d = 30 min 14 s,
    # burn 0.4×. Error rate: 2/1000 = 0.2% of a 1% budget → 80% left = 0.8 × 1% × 7 d = 1 h 20 min,
    # burn 0.2×. Cost per query: $42 / 1000 = $0.042 ≤ $0.05 all week. The rest meet their
    # objectives: 5 of 6 ok = 83%.
    rule = "─" * 95
    assert out.splitlines() == [
        "SLO Dashboard - support-bot - Last 7 Days",
        rule,
        "Metric               │ Target  │ Current │ Budget left       │ Burn (1 h) │ Compliance │ Status",
        rule,
        "response_time_p95_ms │ ≤ 2s    │ 2.5s    │ 45% (45 min 48 s) │ 91.7×      │ 99.45%     │ ⚠️ off target",
        "current_accuracy     │ ≥ 90%   │ 92%     │ 100% (1 h 40 min) │ 0.0×       │ 100%       │ ✅ ok",
        "helpfulness          │ ≥ 0.85  │ 0.871   │ 100% (1 h 40 min) │ 0.0×       │ 100%       │ ✅ ok",
        "availability         │ ≥ 99.5% │ 99.8%   │ 60% (30 min 14 s) │ 0.4×       │ 99.8%      │ ✅ ok",
        "error_rate           │ ≤ 1%    │ 0.2%    │ 80% (1 h 20 min)  │ 0.2×       │ 99.8%      │ ✅ ok",
        "cost_per_query       │ ≤ $0.05 │ $0.042  │ 100% (1 h 40 min) │ 0.0×       │ 100%       │ ✅ ok",
        rule,
        "Overall SLO Compliance: 83%",
        "Data for 100% of the window",
    ]


def test_slo_status_without_a_model_lists_models_worst_first_then_tables(
    database: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(database, NOW)
    assert run_cli(["slo", "status", "--window", "24h", "--config-dir", str(REPO)], NOW) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("⚠️ support-bot — SLO compliance 83% (5/6 ok)")
    assert lines[1].startswith("⚪ fraud-detector-v2 — SLO compliance no data (0/0 ok, 1 no data)")
    assert "SLO Dashboard - support-bot - Last 1 Day" in out
    assert "SLO Dashboard - fraud-detector-v2 - Last 1 Day" in out


def test_slo_status_on_sparse_data_says_how_much_data_there_is(
    database: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    # a bot that started pushing 10 minutes ago, after one bad sample 3 h ago: no "−5900% (spent)" beside ✅
    points: list[Point] = [
        (BOT, "response_time_p95_ms", NOW - 3 * HOUR, 6100),
        (BOT, "response_time_p95_ms", NOW - 10 * MIN, 1500),
    ]
    with session(database) as s, s.begin():
        metric_store.record(s, points)
    assert run_cli(["slo", "status", BOT, "--config-dir", str(REPO)], NOW) == 0
    out = capsys.readouterr().out
    (latency,) = [line for line in out.splitlines() if line.startswith("response_time_p95_ms")]
    assert "│ data for <1% of 7 d │" in latency and latency.endswith("✅ ok")
    assert "spent" not in out and "-" not in latency.replace("─", "")
    assert out.rstrip().endswith("a budget is projected once 10% of the window has data")


def test_unknown_model_is_an_error_with_close_matches(database: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slo", "status", "suport-bot", "--config-dir", str(REPO)]) == 1
    assert "unknown model 'suport-bot'; did you mean support-bot?" in capsys.readouterr().err


def test_a_bad_window_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["slo", "status", "--window", "seven days"])
    assert exit_.value.code == 2
    assert "is not a duration; write a number and a unit" in capsys.readouterr().err


def test_slo_status_through_the_real_command_on_the_wall_clock(
    database: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(database, datetime.now(UTC))
    chart = tmp_path / "budget.png"
    assert main(["slo", "status", BOT, "--config-dir", str(REPO), "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "response_time_p95_ms │ ≤ 2s" in out and "Overall SLO Compliance: 83%" in out
    assert chart.read_bytes().startswith(PNG_SIGNATURE)


def test_alerts_review_prints_the_review(database: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "review", "--window", "14d", "--config-dir", str(REPO)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Alert review — last 14 days (")
    assert "No alert fired in this window." in out


# --- the chart -------------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_burndown_is_hand_computable_and_ends_at_the_dashboard_value() -> None:
    # a 1-day SLO that may be bad 10% of the time (2.4 h); bad from 06:00 to 07:00 and nothing else
    spec = SloSpec("m", "latency_ms", "below", 2000, 3000, 5000, window=DAY, target_compliance=0.9)
    samples = [
        Sample(2500 if NOW - 6 * HOUR <= s.at < NOW - 5 * HOUR else 1000, s.at)
        for s in every(0, start=NOW - DAY, end=NOW, step=5 * MIN)
    ]
    line = budget_burndown(spec, {"latency_ms": samples}, NOW)
    assert len(line.points) == 25  # hourly, both ends included
    assert line.points[0] == (NOW - DAY, 1.0)
    values = [v for _, v in line.points]
    assert values == sorted(values, reverse=True)  # a burndown only falls
    assert values[18] == 1.0  # up to 06:00
    assert values[19] == pytest.approx(1 - 1 / 2.4)  # 1 h of a 2.4 h budget gone by 07:00
    assert values[-1] == pytest.approx(1 - 1 / 2.4)
    row = slo_row(spec, {"latency_ms": samples}, NOW)
    assert values[-1] == pytest.approx(row.budget_remaining)


def test_burndown_of_a_window_without_data_is_empty_not_full() -> None:
    spec = SloSpec("m", "latency_ms", "below", 2000, 3000, 5000)
    assert budget_burndown(spec, {}, NOW).points == ()
    short = budget_burndown(spec, {}, NOW, window=HOUR)
    assert short.window == HOUR


def chart_texts(lines: list[Burndown]) -> tuple[list[str], list[str], tuple[datetime, datetime]]:
    """What a reader sees on the chart: the words across it, the legend, and the time axis' ends."""
    from matplotlib.dates import num2date

    (axes,) = budget_figure(lines, title="t").axes
    legend = axes.get_legend()
    left, right = axes.get_xlim()
    span = (num2date(left), num2date(right))
    return [t.get_text() for t in axes.texts], [t.get_text() for t in legend.get_texts()], span


def test_a_chart_without_data_says_so_over_the_window_not_1970() -> None:
    spec = SloSpec("m", "latency_ms", "below", 2000, 3000, 5000)  # 7 d
    words, legend, (start, end) = chart_texts([budget_burndown(spec, {}, NOW)])
    assert words == ["no data in the window"]
    assert legend == ["latency_ms (no data)"]
    assert (start, end) == (NOW - 7 * DAY, NOW)


def test_a_chart_with_too_little_data_shows_no_line_and_says_how_much_there_is() -> None:
    # one bad sample 3 h ago (15 min of 7 d): the line would plunge to −9900%; the dashboard shows no budget either
    spec = SloSpec("m", "latency_ms", "below", 2000, 3000, 5000)
    line = budget_burndown(spec, {"latency_ms": [Sample(6100, NOW - 3 * HOUR)]}, NOW)
    assert line.points == () and line.coverage == pytest.approx(15 / 10080)
    words, legend, (start, end) = chart_texts([line])
    assert words == ["too little data in the window for a budget"]
    assert legend == ["latency_ms (data for <1% of 7 d)"]
    assert (start, end) == (NOW - 7 * DAY, NOW)
    # with data, the axis spans the window too and nothing is written across the chart
    full = budget_burndown(spec, {"latency_ms": every(1500, start=NOW - 7 * DAY, end=NOW, step=HOUR)}, NOW)
    words, legend, (start, end) = chart_texts([full, line])
    assert words == [] and legend == ["latency_ms (100% left)", "latency_ms (data for <1% of 7 d)"]
    assert (start, end) == (NOW - 7 * DAY, NOW)


def test_chart_is_a_png_of_sensible_size(engine: Engine, config: Config) -> None:
    with session(engine) as s, s.begin():
        metric_store.record(
            s,
            [
                (BOT, "response_time_p95_ms", x.at, 2500 if x.at > NOW - 2 * HOUR else 1500)
                for x in every(0, start=NOW - 7 * DAY, end=NOW, step=10 * MIN)
            ],
        )
    data = slo_chart(engine, config, BOT, NOW)
    assert png_size(data) == (800, 400)
    assert 5_000 < len(data) < 200_000
    with pytest.raises(LookupError):
        slo_chart(engine, config, "nobody", NOW)
    assert png_size(render_budget_chart([], title="empty")) == (800, 400)


# --- scheduler wiring ------------------------------------------------------------------------


def test_serve_schedules_slo_passes_and_the_weekly_review(tmp_path: Path) -> None:
    from bot.app import build_bot

    settings = Settings(database_url=f"sqlite:///{tmp_path}/bot.db", bot_config_dir=REPO, evaluation_interval="30s")
    bot = build_bot(settings)
    slo = bot.scheduler.get_job("slo-evaluation")
    review = bot.scheduler.get_job("weekly-review")
    assert slo is not None and slo.trigger.interval == timedelta(seconds=60)
    assert review is not None and review.trigger.interval == timedelta(minutes=15)
    bot.engine.dispose()
