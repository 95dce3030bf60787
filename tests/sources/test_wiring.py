"""``build_bot`` wires both sources: the pull job when ``PROMETHEUS_URL`` is set, the webhook always."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bot.app import build_bot
from bot.settings import Settings
from tests.sources.helpers import config_dir, require_binary

SECTION = "prometheus:\n  interval: 15s\n  queries: [{model: support-bot, metric: daily_cost_usd, query: up}]\n"


def test_prometheus_url_schedules_the_pull_at_the_configured_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_URL", "http://prometheus.internal:9090")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/bot.db")
    bot = build_bot(Settings(), config_dir=config_dir(tmp_path, SECTION))
    job = bot.scheduler.get_job("prometheus")
    assert job is not None and job.trigger.interval.total_seconds() == 15
    bot.engine.dispose()


def test_without_prometheus_url_nothing_is_pulled_and_the_log_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.sources.prometheus"):
        bot = build_bot(Settings(database_url=f"sqlite:///{tmp_path}/bot.db"), config_dir=config_dir(tmp_path, SECTION))
    assert bot.scheduler.get_job("prometheus") is None
    assert "PROMETHEUS_URL is not set" in caplog.text
    bot.engine.dispose()


def test_the_webhook_is_served_by_the_bot(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/bot.db", ingest_token="t0ken")  # type: ignore[arg-type]
    bot = build_bot(settings, config_dir=config_dir(tmp_path))
    with TestClient(bot.app) as client:
        answer = client.post("/api/v1/alertmanager", content=b"{}", headers={"Authorization": "Bearer t0ken"})
    assert answer.status_code == 415  # it is there, and checks the content type before anything else
    bot.engine.dispose()


def test_a_missing_binary_skips_with_the_reason_unless_ci_requires_it(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = Path("/nonexistent/prometheus")
    monkeypatch.delenv("REQUIRE_PROMETHEUS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="is not installed"):
        require_binary(missing)
    monkeypatch.setenv("REQUIRE_PROMETHEUS", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_PROMETHEUS=1"):
        require_binary(missing)
