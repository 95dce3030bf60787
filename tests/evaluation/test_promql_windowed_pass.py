"""A windowed rule over a pulled metric through the whole pass: the term's value is the one
Prometheus computed (stored under the term's name by the puller), read as of the tick, never
computed from stored samples, and its metric keeps no sample rows (issue 20, point 2)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.alerts.lifecycle import AlertState, EventKind
from bot.cli import main
from bot.clock import FrozenClock
from bot.config.loader import Config, load_config
from bot.retention import MARGIN, history_metrics, kept_for
from bot.service import AlertService, every_channel
from bot.storage.database import session
from bot.storage.tables import MetricSampleRow

MODEL = "support-bot"
TERM = "avg_over_time_quality_1h"
KEY = f"quality_drop:{MODEL}"


def windowed_config(root: Path, *, query_model: str = '"*"', extra_rule: str = "") -> Config:
    """One model, a rule over the hour's average of a pulled ``quality``, nothing else reading it."""
    (root / "rules").mkdir(parents=True)
    (root / "runbooks").mkdir()
    (root / "runbooks" / "default.md").write_text("# {model}\n")
    (root / "rules" / "all.yaml").write_text(
        f"""
settings: {{stale_after: 5m}}
models:
  - {{name: {MODEL}}}
  - {{name: pusher}}
rules:
  - name: quality_drop
    condition: avg_over_time(quality, "1h") < 0.8
    severity: P3
    title: "quality {{{TERM}:.2f}} on {{model}}"
    cooldown: 0s
{extra_rule}
prometheus:
  interval: 30s
  queries:
    - {{model: {query_model}, metric: quality, query: max by (model) (quality_score)}}
""",
        encoding="utf-8",
    )
    return load_config(root)


@pytest.fixture(params=['"*"', MODEL])
def config(tmp_path: Path, request: pytest.FixtureRequest) -> Config:
    """Pulled by a fleet query (no pass reads the metric's samples) or by the model's own query
    (the pass reads them for models it does not cover, and must not use them for this one)."""
    return windowed_config(tmp_path / "config", query_model=request.param)


@pytest.fixture
def service(engine: Engine, clock: FrozenClock, config: Config) -> AlertService:
    return AlertService(engine, clock, lambda: config, every_channel(["recording"]))


def sample_rows(engine: Engine) -> set[str]:
    with session(engine) as s:
        return set(s.exec(select(MetricSampleRow.name)).all())


def test_the_pass_fires_on_the_value_prometheus_computed_and_no_samples_are_kept(
    service: AlertService, clock: FrozenClock, engine: Engine
) -> None:
    now = clock.now()
    # an hour of good quality stored for the model would average 0.95; Prometheus' 0.7 decides
    service.ingest([(MODEL, "quality", now - timedelta(minutes=k), 0.95) for k in range(60)])
    service.ingest_pulled([(MODEL, "quality", now, 0.95), (MODEL, TERM, now, 0.7)])

    [change] = service.evaluate_once(at=now).transitions

    assert (change.alert.key, change.alert.state) == (KEY, AlertState.FIRING)
    assert change.alert.values == {TERM: 0.7}
    assert change.alert.title == f"quality 0.70 on {MODEL}"


def test_pulled_values_of_the_metric_and_of_its_term_write_no_sample_rows(
    service: AlertService, clock: FrozenClock, engine: Engine, config: Config
) -> None:
    service.ingest_pulled([(MODEL, "quality", clock.now(), 0.9), (MODEL, TERM, clock.now(), 0.9)])

    assert sample_rows(engine) == set()
    assert "quality" not in history_metrics(config)


def test_samples_are_kept_for_the_hour_only_while_a_model_may_read_it_from_them(tmp_path: Path) -> None:
    fleet = windowed_config(tmp_path / "fleet")
    one = windowed_config(tmp_path / "one", query_model=MODEL)  # pusher's samples may be averaged here

    assert kept_for(fleet) == timedelta(minutes=5) + MARGIN  # stale_after, not the hour
    assert kept_for(one) == timedelta(hours=1) + MARGIN


def test_a_pull_after_the_tick_is_not_seen_by_that_ticks_pass(service: AlertService, clock: FrozenClock) -> None:
    tick = clock.now()
    service.ingest_pulled([(MODEL, TERM, tick - timedelta(seconds=5), 0.9)])
    service.ingest_pulled([(MODEL, TERM, tick + timedelta(seconds=5), 0.7)])  # pulled before the pass ran

    assert service.evaluate_once(at=tick).transitions == []  # as of the tick, the average was 0.9
    [change] = service.evaluate_once(at=tick + timedelta(seconds=30)).transitions
    assert change.alert.values == {TERM: 0.7}


def test_a_missing_answer_is_no_data_not_a_recovery(service: AlertService, clock: FrozenClock) -> None:
    now = clock.now()
    service.ingest_pulled([(MODEL, TERM, now, 0.7)])
    assert service.evaluate_once(at=now).transitions[0].event.kind is EventKind.FIRED

    # Prometheus stops answering the term: once stale_after has passed the alert neither fires
    # again nor resolves, however good the stored samples of the metric look
    later = now + timedelta(minutes=6)
    service.ingest([(MODEL, "quality", later - timedelta(seconds=30 * k), 0.99) for k in range(10)])
    assert service.evaluate_once(at=later).transitions == []


def test_a_model_no_query_covers_reads_its_stored_samples(tmp_path: Path, engine: Engine, clock: FrozenClock) -> None:
    config = windowed_config(tmp_path / "config", query_model=MODEL, extra_rule="    models: [support-bot, pusher]")
    service = AlertService(engine, clock, lambda: config, every_channel(["recording"]))
    now = clock.now()
    service.ingest([("pusher", "quality", now - timedelta(minutes=k), 0.5) for k in range(10)])
    service.ingest_pulled([(MODEL, TERM, now, 0.9)])

    [change] = service.evaluate_once(at=now).transitions

    assert (change.alert.model, change.alert.values) == ("pusher", {TERM: 0.5})


def test_check_accepts_a_windowed_rule_over_a_pulled_metric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    windowed_config(tmp_path / "config")

    assert main(["check", str(tmp_path / "config")]) == 0
    assert "OK — 1 rules" in capsys.readouterr().out
