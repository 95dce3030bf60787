"""A pass leaves alone the models whose inputs did not change (issue 16: work proportional to change).

Two promises: a pass that skips quiet models decides exactly what a full pass decides, over any
history of values, clocks and clicks; and it does skip them, running a model's rules again only
when its values or open alerts change or one of its alerts' timers is due.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.alerts.lifecycle import Alert, AlertState, Transition, acknowledge, resolve
from bot.config.conditions import Condition, ConditionEvaluator, Outcome
from bot.config.loader import Config, load_config
from bot.evaluation.evaluate import PassInput, evaluate
from bot.evaluation.quiet import QuietModels
from bot.metrics.samples import Sample

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MODELS = ("fraud-detector-v2", "support-bot")
PALETTE = {
    # each metric's healthy value and one that breaches a shipped rule
    "predictions_last_hour": (11800.0, 2000.0),
    "drifted_feature_count": (1.0, 20.0),
    "current_accuracy": (0.951, 0.5),
    "p99_latency_ms": (240.0, 6100.0),
    "daily_cost_usd": (120.0, 1000.0),
}
DROP = -1
"""The metric stops being pushed (it goes stale, then reads as no data)."""


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(REPO_ROOT)


class CountingEvaluator(ConditionEvaluator):
    """Counts the conditions a pass runs: what a skipped model saves."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def run(self, condition: Condition, values: Mapping[str, float | str]) -> Outcome:
        self.runs += 1
        return super().run(condition, values)


class World:
    """What the database would hold between passes, reduced to what a pass reads."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.samples: dict[str, dict[str, Sample]] = {
            model: {name: Sample(values[0], T0) for name, values in PALETTE.items()}
            | {"total_features": Sample(40.0, T0)}
            for model in MODELS
        }
        self.open: dict[str, Alert] = {}
        self.resolved: dict[str, datetime] = {}

    def push_again(self, now: datetime) -> None:
        """The models push what they pushed last, stamped ``now``."""
        for series in self.samples.values():
            series.update({name: replace(sample, at=now) for name, sample in series.items()})

    def pass_input(self) -> PassInput:
        return PassInput(self.config, self.samples, dict(self.open), dict(self.resolved))

    def record(self, transitions: list[Transition], now: datetime) -> None:
        for change in transitions:
            alert = change.alert
            if alert.state is AlertState.RESOLVED:
                self.open.pop(alert.key, None)
                if alert.fired_at is not None:
                    self.resolved[alert.key] = now
            else:
                self.open[alert.key] = alert


steps = st.lists(
    st.tuples(
        st.sampled_from(MODELS),
        st.sampled_from(sorted(PALETTE)),
        st.sampled_from([0, 1, DROP, None]),  # None: no new sample this step
        st.sampled_from([0, 0, 1, 2, 5, 15, 61]),  # minutes to the next pass
        st.sampled_from([None, None, "acknowledge", "resolve"]),  # what someone clicks first
    ),
    min_size=5,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(history=steps)
def test_skipping_quiet_models_decides_what_a_full_pass_decides(config: Config, history: list[tuple]) -> None:
    world = World(config)
    quiet = QuietModels()
    now = T0
    for model, metric, choice, minutes, click in history:
        now += timedelta(minutes=minutes)
        world.push_again(now)
        if choice == DROP:
            world.samples[model].pop(metric, None)
        elif choice is not None:
            world.samples[model][metric] = Sample(PALETTE[metric][choice], now)
        firing = next((a for a in world.open.values() if a.state is AlertState.FIRING), None)
        if firing is not None and click is not None:
            act = acknowledge if click == "acknowledge" else resolve
            world.record([act(firing, actor="U_ANA", now=now)], now)
        full = evaluate(world.pass_input(), now=now)
        shortcut = evaluate(world.pass_input(), now=now, quiet=quiet)
        assert shortcut == full, f"at {now - T0}: the pass that skips quiet models decided differently"
        world.record(full, now)


def test_a_model_whose_values_did_not_change_is_not_evaluated_again(config: Config) -> None:
    world, quiet, counting = World(config), QuietModels(), CountingEvaluator()
    assert evaluate(world.pass_input(), now=T0, quiet=quiet, evaluator=counting) == []
    first = counting.runs
    assert first > 0 and len(quiet) == len(config.models)

    world.push_again(T0 + timedelta(seconds=30))  # new samples, same values: nothing the rules read changed
    assert evaluate(world.pass_input(), now=T0 + timedelta(seconds=30), quiet=quiet, evaluator=counting) == []
    assert counting.runs == 2 * first, "the values held for a pass: now they are kept"

    counting.runs = 0
    world.push_again(T0 + timedelta(seconds=60))
    assert evaluate(world.pass_input(), now=T0 + timedelta(seconds=60), quiet=quiet, evaluator=counting) == []
    assert counting.runs == 0

    world.samples["support-bot"]["daily_cost_usd"] = Sample(1000.0, T0 + timedelta(seconds=90))
    changes = evaluate(world.pass_input(), now=T0 + timedelta(seconds=90), quiet=quiet, evaluator=counting)
    assert [t.alert.key for t in changes] == ["llm_cost_runaway:support-bot"]
    assert counting.runs == len(config.rules_for("support-bot")), "only the model whose value changed"


def test_a_pending_alert_is_evaluated_again_when_its_for_is_up(config: Config) -> None:
    world, quiet, counting = World(config), QuietModels(), CountingEvaluator()
    world.samples["fraud-detector-v2"]["p99_latency_ms"] = Sample(6100.0, T0)
    pending = evaluate(world.pass_input(), now=T0, quiet=quiet, evaluator=counting)
    assert [(t.alert.key, t.alert.state) for t in pending] == [("latency_spike:fraud-detector-v2", AlertState.PENDING)]
    world.record(pending, T0)

    one_minute = T0 + timedelta(minutes=1)
    assert evaluate(world.pass_input(), now=one_minute, quiet=quiet, evaluator=counting) == []
    assert evaluate(world.pass_input(), now=one_minute + timedelta(seconds=15), quiet=quiet, evaluator=counting) == []
    counting.runs = 0  # the values held for a pass: remembered quiet
    assert evaluate(world.pass_input(), now=one_minute + timedelta(seconds=30), quiet=quiet, evaluator=counting) == []
    assert counting.runs == 0, "for: 2m is not up yet"

    fired = evaluate(world.pass_input(), now=T0 + timedelta(minutes=2), quiet=quiet, evaluator=counting)
    assert [(t.alert.key, t.alert.state) for t in fired] == [("latency_spike:fraud-detector-v2", AlertState.FIRING)]
    assert counting.runs == len(config.rules_for("fraud-detector-v2")), "the timer woke its model, and only it"


def test_a_new_configuration_forgets_what_was_quiet(config: Config) -> None:
    world, quiet = World(config), QuietModels()
    evaluate(world.pass_input(), now=T0, quiet=quiet)
    assert len(quiet) == len(config.models)
    reloaded = replace(config)
    world.config = reloaded
    counting = CountingEvaluator()
    evaluate(world.pass_input(), now=T0 + timedelta(seconds=30), quiet=quiet, evaluator=counting)
    assert counting.runs > 0, "rules, settings or policies may differ after a reload"


def test_an_alert_resolved_by_hand_wakes_its_model(config: Config) -> None:
    """A click changes the model's open alerts without changing its values: the breach that
    still holds opens a new alert once the cooldown is over."""
    world, quiet = World(config), QuietModels()
    world.samples["support-bot"]["daily_cost_usd"] = Sample(1000.0, T0)
    fired = evaluate(world.pass_input(), now=T0, quiet=quiet)
    world.record(fired, T0)
    assert evaluate(world.pass_input(), now=T0 + timedelta(minutes=1), quiet=quiet) == []
    [alert] = world.open.values()
    world.record([resolve(alert, actor="U_ANA", now=T0 + timedelta(minutes=2))], T0 + timedelta(minutes=2))

    within_cooldown = T0 + timedelta(minutes=30)
    world.push_again(within_cooldown)
    assert evaluate(world.pass_input(), now=within_cooldown, quiet=quiet) == []
    after = T0 + timedelta(minutes=2) + config.rule("llm_cost_runaway").cooldown  # type: ignore[union-attr]
    world.push_again(after)
    reopened = evaluate(world.pass_input(), now=after, quiet=quiet)
    assert [(t.alert.key, t.alert.state) for t in reopened] == [("llm_cost_runaway:support-bot", AlertState.FIRING)]


def test_a_model_whose_values_moved_is_skipped_again_once_they_have_held_for_a_pass(config: Config) -> None:
    """While a model's values move, only a fingerprint of them is kept (a fleet whose every value
    moves kept 10,000 models' values for nothing): when they stop, one more pass evaluates the
    model and keeps them, and the pass after skips it."""
    world, quiet, counting = World(config), QuietModels(), CountingEvaluator()
    model = "fraud-detector-v2"
    for now in (T0, T0 + timedelta(seconds=30)):  # every model's values seen, then seen to hold
        world.push_again(now)
        evaluate(world.pass_input(), now=now, quiet=quiet, evaluator=counting)
    passes = [T0 + timedelta(seconds=30 * n) for n in range(2, 6)]
    runs = []
    for n, now in enumerate(passes):
        world.push_again(now)
        if n == 0:
            world.samples[model]["p99_latency_ms"] = Sample(250.0, now)  # still healthy, but moved
        counting.runs = 0
        assert evaluate(world.pass_input(), now=now, quiet=quiet, evaluator=counting) == []
        runs.append(counting.runs)

    ran = len(config.rules_for(model))
    assert runs == [ran, ran, 0, 0], "moved; held once (kept now); skipped; skipped"
