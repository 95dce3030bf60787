"""A rule's ``absent_after:``: an exporter gone silent is an alert, not a rule quiet forever."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.alerts.lifecycle import Alert, AlertState, EventKind, Transition
from bot.config.choices import alert_channel, rule_channel
from bot.config.conditions import Outcome
from bot.config.loader import Config, load_config
from bot.config.schema import Rule
from bot.evaluation.absence import metrics_read, observe_absence
from bot.evaluation.evaluate import PassInput, evaluate
from bot.metrics.samples import Sample
from bot.severity import Severity

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FRAUD = "fraud-detector-v2"


def rule(**overrides: object) -> Rule:
    fields: dict[str, object] = {
        "name": "volume_drop",
        "condition": "predictions_last_hour < expected_predictions_per_hour * 0.5",
        "severity": "P1",
        "title": "Volume dropped for {model}",
        "absent_after": "15m",
        **overrides,
    }
    return Rule.model_validate(fields)


def seen(minutes_ago: float, value: float = 12000.0) -> Sample:
    return Sample(value=value, at=NOW - timedelta(minutes=minutes_ago))


SETTINGS = {"expected_predictions_per_hour": 12000, "baseline_accuracy": 0.95}


def test_the_metrics_a_rule_reads_are_its_names_and_window_series_less_the_model_settings() -> None:
    windowed = rule(condition='avg_over_time(helpfulness, "1h") < 0.8 and predictions_last_hour < 10')
    assert metrics_read(windowed, SETTINGS) == ["helpfulness", "predictions_last_hour"]
    assert metrics_read(rule(), SETTINGS) == ["predictions_last_hour"]


def test_a_metric_silent_longer_than_absent_after_fires_naming_it_and_since_when() -> None:
    found = observe_absence(rule(), FRAUD, {"predictions_last_hour": seen(16)}, SETTINGS, now=NOW)
    assert found.outcome is Outcome.TRUE
    assert found.rule == "absent:volume_drop"
    assert found.severity is Severity.P2
    assert found.title == "No predictions_last_hour data from fraud-detector-v2 for over 15 min"
    assert "arrived at 2026-01-05 08:44 UTC" in found.description
    assert "rule volume_drop cannot see its condition" in found.description
    assert found.values == {"metric": "predictions_last_hour", "last_seen": "2026-01-05T08:44:00+00:00"}


def test_a_metric_within_absent_after_is_fine_even_when_stale_for_the_rule() -> None:
    found = observe_absence(rule(), FRAUD, {"predictions_last_hour": seen(15)}, SETTINGS, now=NOW)
    assert found.outcome is Outcome.FALSE


def test_a_metric_never_seen_for_the_model_is_no_data_not_a_silent_exporter() -> None:
    assert observe_absence(rule(), FRAUD, {}, SETTINGS, now=NOW).outcome is Outcome.NO_DATA


def test_the_longest_silent_metric_is_named_and_the_others_listed() -> None:
    two = rule(condition="current_accuracy < baseline_accuracy and p99_latency_ms > 5000 and drift > 1")
    samples = {"current_accuracy": seen(40), "p99_latency_ms": seen(90), "drift": seen(1)}
    found = observe_absence(two, FRAUD, samples, SETTINGS, now=NOW)
    assert found.values["metric"] == "p99_latency_ms"
    assert found.values["also_silent"] == "current_accuracy"


def test_the_rule_may_choose_the_absence_severity() -> None:
    found = observe_absence(rule(absent_severity="P1"), FRAUD, {"predictions_last_hour": seen(60)}, SETTINGS, now=NOW)
    assert found.severity is Severity.P1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"absent_after": "0s"}, "absent_after must be positive"),
        ({"name": "r" * 94}, "at most 93 characters"),
        ({"absent_severity": "P9"}, "P9"),
    ],
)
def test_bad_absence_settings_are_refused_with_the_fix(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rule(**overrides)


# --- through a whole pass ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def config() -> Config:
    shipped = load_config(REPO_ROOT)
    return replace(shipped, rules=(rule(models=[FRAUD]),))


def run(config: Config, samples: dict[str, Sample], open_alerts: dict[str, Alert] | None = None) -> list[Transition]:
    return evaluate(PassInput(config, {FRAUD: samples}, open_alerts or {}, {}), now=NOW)


def test_a_pass_opens_the_absence_alert_beside_the_quiet_rule(config: Config) -> None:
    changes = run(config, {"predictions_last_hour": seen(20, value=100.0)})
    assert [(c.alert.key, c.event.kind) for c in changes] == [("absent:volume_drop:fraud-detector-v2", EventKind.FIRED)]
    assert changes[0].alert.state is AlertState.FIRING
    assert changes[0].alert.policy, "the absence alert escalates on the model's policy like any other"


def test_the_absence_alert_resolves_when_samples_return(config: Config) -> None:
    opened = run(config, {"predictions_last_hour": seen(20)})[0].alert
    changes = run(config, {"predictions_last_hour": seen(0)}, {opened.key: opened})
    assert [(c.alert.key, c.event.kind) for c in changes] == [(opened.key, EventKind.AUTO_RESOLVED)]


def test_the_absence_alert_shares_its_rules_channel_and_runbook(config: Config) -> None:
    assert config.rule("absent:volume_drop") is config.rules[0]
    assert alert_channel(config, "absent:volume_drop", FRAUD) == rule_channel(config, config.rules[0], FRAUD)
    assert config.rule("absent:no_such_rule") is None


def test_a_rule_without_absent_after_stays_quiet_when_its_metric_stops(config: Config) -> None:
    quiet = replace(config, rules=(rule(models=[FRAUD], absent_after=None),))
    assert run(quiet, {"predictions_last_hour": seen(600)}) == []
