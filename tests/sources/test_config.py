"""``incident-bot check`` on the ``prometheus:`` and ``alertmanager:`` sections: a mistake is named
with its file and line before the bot runs, never a silently ignored query."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.config.loader import load_config
from bot.errors import ConfigError
from bot.severity import Severity
from tests.sources.helpers import config_dir

GOOD = """
prometheus:
  interval: 15s
  timeout: 5s
  queries:
    - model: support-bot
      metric: p99_latency_ms
      query: histogram_quantile(0.99, sum by (le) (rate(request_seconds_bucket{job="support-bot"}[5m]))) * 1000
    - model: "*"
      metric: daily_cost_usd
      query: sum by (model) (llm_cost_usd_total)
      model_label: model
alertmanager:
  model_labels: [model, service]
  severities: {critical: P0}
"""


def problems(tmp_path: Path, extra: str) -> str:
    with pytest.raises(ConfigError) as failed:
        load_config(config_dir(tmp_path, extra))
    return "\n".join(str(p) for p in failed.value.problems)


def test_a_good_section_loads(tmp_path: Path) -> None:
    config = load_config(config_dir(tmp_path, GOOD))
    assert config.prometheus is not None
    assert config.prometheus.interval == timedelta(seconds=15) and config.prometheus.timeout == timedelta(seconds=5)
    assert [q.name for q in config.prometheus.queries] == ["support-bot/p99_latency_ms", "*/daily_cost_usd"]
    assert config.alertmanager.severity_of({"severity": "critical"}) is Severity.P0


def test_check_accepts_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(config_dir(tmp_path, GOOD))]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ("prometheus:\n  intreval: 30s\n  queries: [{model: support-bot, metric: m, query: up}]\n", "'intreval'"),
        ("prometheus:\n  interval: 30\n  queries: [{model: support-bot, metric: m, query: up}]\n", "not a duration"),
        ("prometheus:\n  interval: 500ms\n  queries: [{model: support-bot, metric: m, query: up}]\n", "at least 1s"),
        ("prometheus:\n  timeout: 0s\n  queries: [{model: support-bot, metric: m, query: up}]\n", "longer than 0s"),
        (
            "prometheus:\n  timeout: 1m\n  queries: [{model: support-bot, metric: m, query: up}]\n",
            "timeout (1 min) is longer than interval (30 s)",
        ),
        ("prometheus:\n  queries: []\n", "queries"),
        ("prometheus:\n  interval: 30s\n", "queries: required key is missing"),
        ("prometheus:\n  queries: [{model: support-bot, metric: m, query: '  '}]\n", "query is empty"),
        ("prometheus:\n  queries: [{model: support-bot, metric: m}]\n", "query: required key is missing"),
        ("prometheus:\n  queries: [{model: support-bot, metric: P99, query: up}]\n", "metric"),
        ("prometheus:\n  queries: [{model: 'a b', metric: m, query: up}]\n", 'or "*"'),
        ("prometheus:\n  queries: [{model: ghost, metric: m, query: up}]\n", "'ghost' is not defined under models"),
        ("prometheus:\n  queries: [{model: support-bot, metric: m, query: up, sevrity: P1}]\n", "'sevrity'"),
        (
            "prometheus:\n  queries: [{model: support-bot, metric: m, query: a}, {model: support-bot, metric: m, "
            "query: b}]\n",
            "two queries for support-bot/m",
        ),
        ("alertmanager:\n  severities: {critical: P9}\n", "unknown severity 'P9'"),
        ("alertmanager:\n  model_labels: []\n", "model_labels"),
        ("alertmanager:\n  modle_labels: [model]\n", "did you mean 'model_labels'"),
    ],
)
def test_a_bad_section_is_named_with_file_and_line(tmp_path: Path, section: str, says: str) -> None:
    found = problems(tmp_path, section)
    assert "rules/sources.yaml:" in found and says in found, found


def test_sections_may_appear_once(tmp_path: Path) -> None:
    root = config_dir(tmp_path, "alertmanager:\n  default_model: a\n")
    (root / "rules" / "zz.yaml").write_text("alertmanager:\n  default_model: b\n", encoding="utf-8")
    with pytest.raises(ConfigError) as failed:
        load_config(root)
    assert "alertmanager: already set in rules/sources.yaml" in str(failed.value)


def test_unknown_models_are_fine_when_accepted(tmp_path: Path) -> None:
    root = config_dir(tmp_path, "prometheus:\n  queries: [{model: ghost, metric: m, query: up}]\n")
    settings = root / "rules" / "settings.yaml"
    settings.write_text(settings.read_text().replace("accept_unknown_models: false", "accept_unknown_models: true"))
    assert load_config(root).prometheus is not None
