"""A failing Prometheus query is loud and partial: its health is kept per query, and after
``prometheus.failing_after`` failed pulls the bot raises its own alert, resolved when a pull works."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bot.alerts import store as alert_store
from bot.alerts.lifecycle import AlertState, EventKind
from bot.app import build_bot
from bot.clock import FrozenClock
from bot.config.holder import ConfigHolder
from bot.config.loader import Config, load_config
from bot.notify.notifier import LogNotifier
from bot.observability import Metrics
from bot.service import AlertService, every_channel
from bot.settings import Settings
from bot.sources.prometheus import PrometheusPuller
from bot.sources.source_health import SOURCE_MODEL, QueryHealth, source_alerts
from bot.storage.database import make_engine, migrate
from bot.storage.database import session as open_session
from tests.sources.helpers import NOW, config_dir
from tests.sources.test_prometheus_client import FakePrometheus, failure, vector

SECTION = """
prometheus:
  interval: 5s
  timeout: 500ms
  failing_after: 3
  queries:
    - {model: "*", metric: p99_latency_ms, query: latency}
    - {model: support-bot, metric: daily_cost_usd, query: cost}
"""
KEY = f"source:*/p99_latency_ms:{SOURCE_MODEL}"
TOO_MANY = (422, failure("execution", "query processing would load too many samples into memory"), 0)


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    server = FakePrometheus({"cost": (200, vector(({}, "12.5")), 0)})
    yield server
    server.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(config_dir(tmp_path, SECTION))


class Bot:
    """The real service on SQLite, and the puller recording its alerts through it."""

    def __init__(self, url: str, directory: Path, tmp_path: Path) -> None:
        self.clock = FrozenClock(NOW)
        self.engine = make_engine(f"sqlite:///{tmp_path}/bot.db")
        migrate(self.engine)
        holder = ConfigHolder(directory)
        self.service = AlertService(self.engine, self.clock, holder, every_channel(["log"]))
        self.metrics = Metrics()
        self.puller = PrometheusPuller(
            url,
            holder,
            self.service.ingest,
            self.clock,
            alerts=lambda plan: self.service.apply_external(plan, resolved_since=self.clock.now()),
            metrics=self.metrics,
        )

    def pull(self) -> None:
        self.clock.advance(timedelta(seconds=5))
        self.puller.run_once()

    def source_alert(self) -> tuple[AlertState, str, list[EventKind]] | None:
        with open_session(self.engine) as s:
            alerts = [a for a in alert_store.active(s) if a.key == KEY]
            if not alerts:
                return None
            [alert] = alerts
            return alert.state, alert.title, [e.kind for e in alert_store.history(s, alert.id or 0)]


@pytest.fixture
def bot(fake: FakePrometheus, config: Config, tmp_path: Path) -> Bot:
    return Bot(fake.url, config.directory, tmp_path)


def test_a_query_failing_three_pulls_raises_the_bots_own_alert_and_a_working_pull_resolves_it(
    bot: Bot, fake: FakePrometheus
) -> None:
    fake.answers["latency"] = TOO_MANY
    bot.pull()
    bot.pull()
    assert bot.source_alert() is None, "two failures are not yet a gap"
    bot.pull()  # 09:00:15, the third

    found = bot.source_alert()
    assert found is not None
    state, title, _ = found
    assert state is AlertState.FIRING
    assert title == (
        "metric source failing: p99_latency_ms for all models, since 09:00 UTC: "
        "Prometheus refused the query (execution): query processing would load too many samples into memory"
    )
    bot.pull()
    with open_session(bot.engine) as s:
        assert len([a for a in alert_store.active(s) if a.key == KEY]) == 1, "raised once"

    fake.answers["latency"] = (200, vector(({"model": "support-bot"}, "80")), 0)
    bot.pull()
    assert bot.source_alert() is None
    with open_session(bot.engine) as s:
        assert KEY not in alert_store.open_alerts(s), "resolved by the first pull that works"


def test_only_the_failing_querys_metric_is_lost(bot: Bot, fake: FakePrometheus) -> None:
    fake.answers["latency"] = TOO_MANY
    bot.pull()

    health = bot.puller.health_report()
    assert health["support-bot/daily_cost_usd"]["ok"] is True
    assert health["support-bot/daily_cost_usd"]["series"] == 1
    assert health["*/p99_latency_ms"]["ok"] is False
    assert health["*/p99_latency_ms"]["failures_in_a_row"] == 1
    assert "too many samples" in health["*/p99_latency_ms"]["last_error"]
    exposed = bot.metrics.exposition().decode()
    assert 'incident_bot_source_query_up{query="*/p99_latency_ms"} 0.0' in exposed
    assert 'incident_bot_source_query_up{query="support-bot/daily_cost_usd"} 1.0' in exposed
    assert 'incident_bot_source_query_series{query="support-bot/daily_cost_usd"} 1.0' in exposed


def test_an_unreachable_prometheus_fails_every_query(config: Config, tmp_path: Path) -> None:
    fake = FakePrometheus({})
    url = fake.url
    fake.close()
    bot = Bot(url, config.directory, tmp_path)
    for _ in range(3):
        bot.pull()

    assert {name: h["ok"] for name, h in bot.puller.health_report().items()} == {
        "*/p99_latency_ms": False,
        "support-bot/daily_cost_usd": False,
    }
    found = bot.source_alert()
    assert found is not None and "cannot reach Prometheus" in found[1]


def test_the_plan_resolves_the_alert_of_a_query_no_longer_configured(config: Config) -> None:
    assert config.prometheus is not None
    query = config.prometheus.queries[0]
    failing = QueryHealth(query).after(error="boom", series=0, seconds=0.1, now=NOW)
    [fired] = source_alerts({query.name: failing}, failing_after=1, config=config, open_alerts={}, now=NOW)
    opened = {fired.alert.key: fired.alert}

    [resolved] = source_alerts({}, failing_after=1, config=config, open_alerts=opened, now=NOW)
    assert resolved.event.kind is EventKind.AUTO_RESOLVED
    assert resolved.event.detail == "the query is no longer configured"


def test_health_keeps_the_last_success_through_failures(config: Config) -> None:
    assert config.prometheus is not None
    record = QueryHealth(config.prometheus.queries[0]).after(error=None, series=40, seconds=0.2, now=NOW)
    later = NOW + timedelta(minutes=1)
    failed = record.after(error="timeout", series=0, seconds=0.5, now=later).after(
        error="timeout", series=0, seconds=0.5, now=later + timedelta(seconds=30)
    )

    assert failed.last_success == NOW and failed.series == 40
    assert failed.failures == 2 and failed.failing_since == later
    assert failed.after(error=None, series=41, seconds=0.1, now=later).failing_since is None


def test_healthz_and_metrics_of_a_served_bot_name_the_failing_query(
    fake: FakePrometheus, config: Config, tmp_path: Path
) -> None:
    fake.answers["latency"] = TOO_MANY
    settings = Settings(  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path}/served.db", ingest_token="t0ken-for-sources", prometheus_url=fake.url
    )
    served = build_bot(settings, clock=FrozenClock(NOW), notifiers={"log": LogNotifier()}, config_dir=config.directory)
    try:
        web = TestClient(served.app)
        pull = served.scheduler.get_job("prometheus").func
        for _ in range(3):
            pull()

        health = web.get("/healthz").json()
        assert health["status"] == "degraded"
        assert list(health["metric_sources_failing"]) == ["*/p99_latency_ms"]
        assert health["metric_sources"]["support-bot/daily_cost_usd"]["ok"] is True
        assert 'incident_bot_source_query_up{query="*/p99_latency_ms"} 0.0' in web.get("/metrics").text
        with open_session(served.engine) as s:
            assert KEY in alert_store.open_alerts(s)
    finally:
        served.engine.dispose()


def test_an_alert_resolved_by_hand_while_the_query_still_fails_is_raised_again(
    bot: Bot, fake: FakePrometheus
) -> None:
    fake.answers["latency"] = TOO_MANY
    for _ in range(3):
        bot.pull()
    with open_session(bot.engine) as s:
        alert = alert_store.open_alerts(s)[KEY]
    bot.service.resolve(alert.id or 0, actor="U0ANA")
    assert bot.source_alert() is None

    bot.pull()  # still failing: the gap is still there, so is its alert
    found = bot.source_alert()
    assert found is not None and found[0] is AlertState.FIRING
