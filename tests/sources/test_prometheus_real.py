"""The PromQL pull against a real Prometheus (Debian's ``prometheus``) scraping an exporter this
test controls: values reach the bot's samples, rules evaluate them like pushed metrics, and
Prometheus' own errors and empty results come back as clear no-data.

Skipped, with the reason, where ``/usr/bin/prometheus`` is missing; ``REQUIRE_PROMETHEUS=1``
(set by ``.ci/run``) turns that skip into a failure."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.alerts.lifecycle import EventKind
from bot.clock import FrozenClock, SystemClock
from bot.config.loader import Config, load_config
from bot.metrics import store as metric_store
from bot.service import AlertService, every_channel
from bot.sources.prometheus import PrometheusPuller, Pulled
from bot.storage.database import make_engine, migrate
from bot.storage.database import session as open_session
from tests.sources.helpers import (
    PROMETHEUS,
    Exporter,
    config_dir,
    require_binary,
    running_prometheus,
    wait_until,
)

QUERIES = """
prometheus:
  interval: 5s
  timeout: 3s
  queries:
    - model: support-bot
      metric: daily_cost_usd
      query: max(llm_daily_cost_usd{model="support-bot"})
    - model: "*"
      metric: p99_latency_ms
      query: max by (model) (model_p99_latency_ms)
    - model: fraud-detector-v2
      metric: current_accuracy
      query: max(model_accuracy{model="fraud-detector-v2"})
    - model: fraud-detector-v2
      metric: predictions_last_hour
      query: sum(rate(predictions_total[5m]
    - model: fraud-detector-v2
      metric: drifted_feature_count
      query: model_accuracy[1m]
    - model: fraud-detector-v2
      metric: total_features
      query: 0 / 0
"""


@dataclass
class Setup:
    url: str
    exporter: Exporter
    config: Config


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    require_binary(PROMETHEUS)
    tmp = tmp_path_factory.mktemp("prometheus")
    with Exporter() as exporter:
        exporter.set('llm_daily_cost_usd{model="support-bot"}', 120.5)
        exporter.set('model_p99_latency_ms{model="support-bot",instance="a"}', 850)
        exporter.set('model_p99_latency_ms{model="fraud-detector-v2",instance="a"}', 95)
        exporter.set('model_p99_latency_ms{model="not-configured",instance="a"}', 1)
        with running_prometheus(tmp, exporter) as url:
            wait_until(lambda: _series(url, "llm_daily_cost_usd") >= 1, timeout=15, what="the first scrape")
            yield Setup(url, exporter, load_config(config_dir(tmp, QUERIES)))


def _series(url: str, query: str) -> int:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
    return len(answer["data"]["result"]) if answer.get("status") == "success" else 0


def _value(url: str, query: str) -> float | None:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_pulled_values_become_samples_and_errors_say_what_prometheus_said(prometheus: Setup, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/bot.db")
    migrate(engine)
    clock = FrozenClock()
    service = AlertService(engine, clock, lambda: prometheus.config, every_channel(["recording"]))
    puller = PrometheusPuller(prometheus.url, lambda: prometheus.config, service.ingest, clock)

    outcomes = {o.query.metric: o for o in puller.run_once()}

    assert outcomes["daily_cost_usd"].values == {"support-bot": 120.5}
    latency = outcomes["p99_latency_ms"]
    assert latency.values == {"support-bot": 850.0, "fraud-detector-v2": 95.0}
    assert any("'not-configured' is not defined" in note for note in latency.notes), latency.notes
    assert outcomes["current_accuracy"].error is None and outcomes["current_accuracy"].values == {}  # no such series
    assert "bad_data" in _error(outcomes["predictions_last_hour"]) and "parse error" in _error(
        outcomes["predictions_last_hour"]
    )
    assert "range vector" in _error(outcomes["drifted_feature_count"])
    assert outcomes["total_features"].values == {} and outcomes["total_features"].error is None  # NaN
    with open_session(engine) as s:
        latest = metric_store.latest(s)
    assert latest["support-bot"]["daily_cost_usd"].value == 120.5
    assert latest["fraud-detector-v2"]["p99_latency_ms"].value == 95.0
    assert "current_accuracy" not in latest.get("fraud-detector-v2", {})
    engine.dispose()


def test_a_pulled_metric_fires_a_rule_like_a_pushed_one(prometheus: Setup, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/bot.db")
    migrate(engine)
    clock = SystemClock()
    service = AlertService(engine, clock, lambda: prometheus.config, every_channel(["recording"]))
    puller = PrometheusPuller(prometheus.url, lambda: prometheus.config, service.ingest, clock)

    puller.run_once()
    assert service.evaluate_once().transitions == []  # $120.50 of a $500 budget: fine

    prometheus.exporter.set('llm_daily_cost_usd{model="support-bot"}', 455.2)
    wait_until(
        lambda: _value(prometheus.url, 'max(llm_daily_cost_usd{model="support-bot"})') == 455.2,
        timeout=10,
        what="Prometheus to scrape the new value",
    )
    puller.run_once()
    (change,) = service.evaluate_once().transitions
    assert (change.alert.rule, change.alert.model, change.event.kind) == (
        "llm_cost_runaway",
        "support-bot",
        EventKind.FIRED,
    )
    assert change.alert.values["daily_cost_usd"] == 455.2
    engine.dispose()


def _error(outcome: Pulled) -> str:
    assert outcome.error is not None, outcome
    return outcome.error
