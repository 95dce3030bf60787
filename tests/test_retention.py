"""Retention: samples are kept as long as a rule's window or an SLO needs them, plus a margin,
and older ones are deleted in bounded batches by a scheduled job."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from bot import retention
from bot.config.conditions import Condition
from bot.config.loader import Config
from bot.metrics import store
from bot.metrics.samples import Sample
from bot.settings import Settings
from bot.storage.database import session
from bot.storage.tables import MetricSampleRow

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SUPPORT = "support-bot"


def with_rule_condition(config: Config, condition: str) -> Config:
    rule = config.rules[0]
    return replace(
        config, rules=(*config.rules, rule.model_copy(update={"name": "x", "condition": Condition(condition)}))
    )


def test_the_shipped_configuration_keeps_its_longest_slo_window(config: Config) -> None:
    """7-day SLOs read their window plus stale_after (15 min); an hour more is the margin."""
    assert retention.kept_for(config) == timedelta(days=7, minutes=15) + retention.MARGIN


def test_a_rule_window_longer_than_every_slo_decides(config: Config) -> None:
    longer = with_rule_condition(config, 'predictions_last_hour < 0.5 * ago(predictions_last_hour, "14d")')
    assert retention.kept_for(longer) == timedelta(days=14, minutes=15) + retention.MARGIN

    no_slos = replace(with_rule_condition(config, 'avg_over_time(helpfulness, "3h") < 0.8'), slos=())
    assert retention.kept_for(no_slos) == timedelta(hours=3) + retention.MARGIN


def test_settings_can_ask_to_keep_samples_longer(config: Config) -> None:
    settings = config.settings.model_copy(update={"sample_retention": timedelta(days=30)})
    assert retention.kept_for(replace(config, settings=settings)) == timedelta(days=30) + retention.MARGIN


def test_the_job_deletes_old_samples_in_bounded_batches(engine: Engine, config: Config) -> None:
    keep = retention.kept_for(config)
    now = T0 + keep + timedelta(days=1)
    old = [(SUPPORT, "helpfulness", T0 + timedelta(minutes=k), 0.5) for k in range(25)]
    recent = [(SUPPORT, "helpfulness", now - keep + timedelta(minutes=k), 0.9) for k in range(1, 4)]
    with session(engine) as s, s.begin():
        store.record(s, [*old, *recent])

    deletes: list[str] = []
    event.listen(
        engine, "before_cursor_execute", lambda *a: deletes.append(a[2]) if a[2].startswith("DELETE") else None
    )
    assert retention.prune_samples(engine, config, now, batch=10) == 25

    assert len(deletes) == 3  # 10 + 10 + 5: each batch its own statement and transaction
    assert all("LIMIT" in statement for statement in deletes)
    with session(engine) as s:
        assert s.execute(select(func.count()).select_from(MetricSampleRow)).scalar() == 3
        assert store.latest(s)[SUPPORT]["helpfulness"] == Sample(0.9, now - keep + timedelta(minutes=3))
    assert retention.prune_samples(engine, config, now, batch=10) == 0


def test_serve_schedules_the_retention_job(tmp_path: Path, repo_root: Path) -> None:
    from bot.app import build_bot

    bot = build_bot(Settings(database_url=f"sqlite:///{tmp_path}/bot.db"), config_dir=repo_root)
    try:
        job = bot.scheduler.get_job("sample-retention")
        assert job is not None and job.trigger.interval == retention.EVERY
    finally:
        bot.engine.dispose()
