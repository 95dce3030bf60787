"""One evaluation pass over the shipped configuration (rules/ and runbooks/ of the repository)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.alerts.lifecycle import Alert, AlertState, EventKind, Transition
from bot.config.loader import Config, load_config
from bot.evaluation.evaluate import PassInput, current_values, evaluate, models_to_evaluate, names_read
from bot.metrics.samples import LatestSamples, Sample

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FRAUD = "fraud-detector-v2"
SUPPORT = "support-bot"


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(REPO_ROOT)


def fresh(value: float | str, age: timedelta = timedelta(0)) -> Sample:
    return Sample(value=value, at=NOW - age)


def run(
    config: Config,
    samples: LatestSamples,
    *,
    open_alerts: dict[str, Alert] | None = None,
    last_resolved: dict[str, datetime] | None = None,
    now: datetime = NOW,
) -> list[Transition]:
    return evaluate(PassInput(config, samples, open_alerts or {}, last_resolved or {}), now=now)


def by_key(transitions: list[Transition]) -> dict[str, Transition]:
    return {t.alert.key: t for t in transitions}


def healthy() -> dict[str, Sample]:
    return {
        "predictions_last_hour": fresh(11800.0),
        "drifted_feature_count": fresh(1.0),
        "total_features": fresh(40.0),
        "top_drifted_features": fresh("amount"),
        "current_accuracy": fresh(0.951),
        "p99_latency_ms": fresh(240.0),
        "daily_cost_usd": fresh(120.0),
    }


# --- the seed rules ---------------------------------------------------------------------------


def test_accuracy_drop_fires_with_the_rendered_title_and_description(config: Config) -> None:
    changes = by_key(run(config, {FRAUD: {"current_accuracy": fresh(0.80)}}))

    change = changes[f"accuracy_degradation:{FRAUD}"]
    assert change.alert.state is AlertState.FIRING
    assert change.event.kind is EventKind.FIRED
    assert change.alert.title == f"Model accuracy dropped >5% for {FRAUD}"
    assert change.alert.description == (
        "Current accuracy: 0.800, baseline: 0.950. Check data drift, feature pipeline, and recent deployments."
    )
    assert change.alert.values == {"current_accuracy": 0.80, "baseline_accuracy": 0.95}


@pytest.mark.parametrize(
    ("model", "metrics", "rule", "state", "title", "in_description"),
    [
        (
            FRAUD,
            {"predictions_last_hour": 5000.0},
            "prediction_volume_drop",
            AlertState.PENDING,  # for: 5m
            f"Prediction volume dropped 50%+ for {FRAUD}",
            "Expected ~12,000/hr, got 5,000.",
        ),
        (
            FRAUD,
            {"drifted_feature_count": 12.0, "total_features": 40.0, "top_drifted_features": "amount, merchant_id"},
            "significant_data_drift",
            AlertState.FIRING,
            f"Significant data drift: 12 features for {FRAUD}",
            "12/40 features show significant drift (PSI > 0.2). Top drifted: amount, merchant_id.",
        ),
        (
            FRAUD,
            {"current_accuracy": 0.80},
            "accuracy_degradation",
            AlertState.FIRING,
            f"Model accuracy dropped >5% for {FRAUD}",
            "Current accuracy: 0.800, baseline: 0.950.",
        ),
        (
            FRAUD,
            {"p99_latency_ms": 6100.0},
            "latency_spike",
            AlertState.PENDING,  # for: 2m
            f"P99 latency >5s for {FRAUD}",
            "P99 latency: 6100ms (threshold: 5000ms).",
        ),
        (
            SUPPORT,
            {"daily_cost_usd": 450.0},
            "llm_cost_runaway",
            AlertState.FIRING,
            f"LLM cost approaching budget for {SUPPORT}",
            "Daily cost: $450.00 / $500.00 budget (80%+ consumed).",
        ),
    ],
    ids=["prediction_volume_drop", "significant_data_drift", "accuracy_degradation", "latency_spike", "llm_cost"],
)
def test_each_seed_rule_triggers_on_its_condition(
    config: Config,
    model: str,
    metrics: dict[str, float | str],
    rule: str,
    state: AlertState,
    title: str,
    in_description: str,
) -> None:
    changes = run(config, {model: {name: fresh(value) for name, value in metrics.items()}})

    assert [t.alert.rule for t in changes] == [rule], "exactly the one rule whose metrics arrived"
    alert = changes[0].alert
    assert (alert.model, alert.state, alert.title) == (model, state, title)
    assert in_description in alert.description


def test_a_healthy_model_changes_nothing(config: Config) -> None:
    assert run(config, {FRAUD: healthy(), SUPPORT: healthy()}) == []


def test_a_pending_rule_fires_on_a_later_pass_once_for_has_held(config: Config) -> None:
    samples = {FRAUD: {"p99_latency_ms": fresh(6100.0)}}
    pending = by_key(run(config, samples))[f"latency_spike:{FRAUD}"].alert
    open_alerts = {pending.key: pending}

    def latency_at(minutes: int, value: float) -> list[Transition]:
        at = NOW + timedelta(minutes=minutes)
        return run(config, {FRAUD: {"p99_latency_ms": Sample(value, at)}}, open_alerts=open_alerts, now=at)

    assert latency_at(1, 6300.0) == []
    fired = latency_at(2, 6400.0)
    two_minutes_on = NOW + timedelta(minutes=2)

    assert [(t.alert.state, t.alert.fired_at) for t in fired] == [(AlertState.FIRING, two_minutes_on)]
    assert fired[0].alert.description.startswith("P99 latency: 6400ms")


def test_a_firing_alert_is_not_repeated_and_clears_when_the_metric_recovers(config: Config) -> None:
    firing = by_key(run(config, {FRAUD: {"current_accuracy": fresh(0.80)}}))[f"accuracy_degradation:{FRAUD}"]
    open_alerts = {firing.alert.key: firing.alert}

    assert run(config, {FRAUD: {"current_accuracy": fresh(0.79)}}, open_alerts=open_alerts) == []
    recovered = run(config, {FRAUD: {"current_accuracy": fresh(0.94)}}, open_alerts=open_alerts)
    assert [t.event.kind for t in recovered] == [EventKind.AUTO_RESOLVED]


def test_cooldown_comes_from_the_rule(config: Config) -> None:
    key = f"accuracy_degradation:{FRAUD}"  # cooldown: 60m
    samples = {FRAUD: {"current_accuracy": fresh(0.80)}}

    assert run(config, samples, last_resolved={key: NOW - timedelta(minutes=59)}) == []
    assert [t.alert.key for t in run(config, samples, last_resolved={key: NOW - timedelta(minutes=60)})] == [key]


def test_transitions_come_in_a_stable_order_model_then_rule(config: Config) -> None:
    bad = {"current_accuracy": fresh(0.5), "p99_latency_ms": fresh(9000.0), "daily_cost_usd": fresh(499.0)}

    keys = [t.alert.key for t in run(config, {SUPPORT: dict(bad), FRAUD: dict(bad)})]

    assert keys == [
        f"accuracy_degradation:{FRAUD}",
        f"latency_spike:{FRAUD}",
        f"accuracy_degradation:{SUPPORT}",
        f"latency_spike:{SUPPORT}",
        f"llm_cost_runaway:{SUPPORT}",
    ]


# --- where values come from -------------------------------------------------------------------


def test_model_settings_feed_conditions(config: Config) -> None:
    """5,000 predictions an hour is a drop for fraud (expects 12,000), normal for support (3,000)."""
    same = {"predictions_last_hour": fresh(5000.0)}

    changes = run(config, {FRAUD: dict(same), SUPPORT: dict(same)})

    assert [t.alert.key for t in changes] == [f"prediction_volume_drop:{FRAUD}"]
    assert changes[0].alert.values["expected_predictions_per_hour"] == 12000.0


def test_current_values_are_model_settings_then_fresh_samples(config: Config) -> None:
    values = current_values(config, FRAUD, {"p99_latency_ms": fresh(6100.0)}, NOW)

    assert values["model"] == FRAUD
    assert values["baseline_accuracy"] == 0.95
    assert values["expected_predictions_per_hour"] == 12000.0
    assert isinstance(values["expected_predictions_per_hour"], float)
    assert values["team"] == "ml-platform"
    assert values["p99_latency_ms"] == 6100.0
    assert "escalation" not in values


def test_a_pushed_value_overrides_the_configured_setting(config: Config) -> None:
    """Baseline 0.95 from the file would fire on 0.79; a fresh pushed baseline of 0.80 says it is fine."""
    assert current_values(config, FRAUD, {"baseline_accuracy": fresh(0.80)}, NOW)["baseline_accuracy"] == 0.80

    without = run(config, {FRAUD: {"current_accuracy": fresh(0.79)}})
    overridden = run(config, {FRAUD: {"current_accuracy": fresh(0.79), "baseline_accuracy": fresh(0.80)}})

    assert [t.alert.rule for t in without] == ["accuracy_degradation"]
    assert overridden == []


def test_a_stale_pushed_value_does_not_override_the_setting(config: Config) -> None:
    stale = timedelta(minutes=16)

    values = current_values(config, FRAUD, {"baseline_accuracy": fresh(0.10, stale)}, NOW)

    assert values["baseline_accuracy"] == 0.95


def test_stale_samples_are_no_data(config: Config) -> None:
    assert config.settings.stale_after == timedelta(minutes=15)
    just_too_old = config.settings.stale_after + timedelta(seconds=1)

    assert run(config, {FRAUD: {"current_accuracy": fresh(0.10, just_too_old)}}) == []
    assert "current_accuracy" not in current_values(config, FRAUD, {"current_accuracy": fresh(0.10, just_too_old)}, NOW)


def test_a_sample_exactly_stale_after_old_still_counts(config: Config) -> None:
    changes = run(config, {FRAUD: {"current_accuracy": fresh(0.10, config.settings.stale_after)}})

    assert [t.alert.rule for t in changes] == ["accuracy_degradation"]


def test_a_dead_exporter_never_resolves_a_firing_alert(config: Config) -> None:
    firing = by_key(run(config, {FRAUD: {"current_accuracy": fresh(0.80)}}))[f"accuracy_degradation:{FRAUD}"].alert
    later = NOW + timedelta(hours=2)
    healthy_but_stale = {FRAUD: {"current_accuracy": Sample(0.99, NOW)}}

    assert run(config, healthy_but_stale, open_alerts={firing.key: firing}, now=later) == []
    assert run(config, {}, open_alerts={firing.key: firing}, now=later) == []


# --- labels -----------------------------------------------------------------------------------


def test_labels_appear_in_templates(config: Config) -> None:
    samples = {
        FRAUD: {
            "drifted_feature_count": fresh(12.0),
            "total_features": fresh(40.0),
            "top_drifted_features": fresh("amount, merchant_id, `<script>`"),
        }
    }

    (change,) = run(config, samples)

    assert "Top drifted: amount, merchant_id, `<script>`." in change.alert.description
    assert change.alert.values["top_drifted_features"] == "amount, merchant_id, `<script>`"


def test_a_label_where_a_condition_wants_a_number_is_no_data_not_a_crash(config: Config) -> None:
    labelled = {FRAUD: {"current_accuracy": fresh("not computed yet"), "p99_latency_ms": fresh("high")}}

    assert run(config, labelled) == []


def test_a_label_never_resolves_a_firing_alert(config: Config) -> None:
    firing = by_key(run(config, {FRAUD: {"current_accuracy": fresh(0.80)}}))[f"accuracy_degradation:{FRAUD}"].alert

    after = run(config, {FRAUD: {"current_accuracy": fresh("n/a")}}, open_alerts={firing.key: firing})

    assert after == []


def test_a_label_overriding_a_numeric_setting_makes_the_condition_no_data(config: Config) -> None:
    samples = {FRAUD: {"current_accuracy": fresh(0.5), "baseline_accuracy": fresh("unknown")}}

    assert run(config, samples) == []


# --- which models -----------------------------------------------------------------------------


def test_unknown_models_are_ignored_by_default(config: Config) -> None:
    assert config.settings.accept_unknown_models is False
    samples = {"shadow-ranker": {"p99_latency_ms": fresh(9000.0), "current_accuracy": fresh(0.1)}}

    assert run(config, samples) == []
    assert models_to_evaluate(config, samples) == {FRAUD, SUPPORT}


def test_unknown_models_are_evaluated_when_accepted(config: Config) -> None:
    accepting = replace(config, settings=config.settings.model_copy(update={"accept_unknown_models": True}))
    samples = {
        "shadow-ranker": {
            "p99_latency_ms": fresh(9000.0),
            "current_accuracy": fresh(0.1),  # no baseline_accuracy configured: no data, no crash
            "daily_cost_usd": fresh(10_000.0),  # llm_cost_runaway is for support-bot only
        }
    }

    changes = run(accepting, samples)

    assert [(t.alert.key, t.alert.state) for t in changes] == [("latency_spike:shadow-ranker", AlertState.PENDING)]
    assert changes[0].alert.title == "P99 latency >5s for shadow-ranker"


def test_a_pass_reads_the_metrics_the_rules_name_in_conditions_templates_and_windows(config: Config) -> None:
    read = names_read(config)

    assert read is not None
    assert {"p99_latency_ms", "predictions_last_hour", "daily_cost_usd"} <= read  # conditions
    assert "top_drifted_features" in read  # only a description names it
    assert "helpfulness" in read  # the series under avg_over_time(helpfulness, "1h")
    assert "gpu_fan_rpm" not in read


def test_a_pass_reads_every_metric_when_unknown_models_are_accepted(config: Config) -> None:
    """A model nobody configured is known only by its samples, whichever metrics it pushes."""
    accepting = replace(config, settings=config.settings.model_copy(update={"accept_unknown_models": True}))

    assert names_read(accepting) is None


def test_llm_cost_runaway_applies_only_to_support_bot(config: Config) -> None:
    rule = config.rule("llm_cost_runaway")
    assert rule is not None
    assert rule.applies_to(SUPPORT)
    assert not rule.applies_to(FRAUD)
    assert not rule.applies_to("support-bot-v2"), "a glob without * matches the name exactly"
    over_budget = {"daily_cost_usd": fresh(450.0)}

    changes = run(config, {FRAUD: dict(over_budget), SUPPORT: dict(over_budget)})

    assert [t.alert.key for t in changes] == [f"llm_cost_runaway:{SUPPORT}"]


def test_star_rules_apply_to_every_model(config: Config) -> None:
    for model in (FRAUD, SUPPORT, "anything-at-all"):
        names = {r.name for r in config.rules_for(model)}
        assert {"prediction_volume_drop", "significant_data_drift", "accuracy_degradation", "latency_spike"} <= names
