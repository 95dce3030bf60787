"""One evaluation pass: every rule against every model's latest samples, at ``now``.

Pure: the caller loads samples and open alerts, passes the clock's ``now``, and stores the
transitions this returns. That keeps the hot loop free of I/O (one pass over 1,000 models ×
20 rules must stay well under a second) and makes every decision testable without a database.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from bot.alerts.lifecycle import (
    Alert,
    NoData,
    Observation,
    PolicyStep,
    Timing,
    Transition,
    Value,
    dedup_key,
    next_change,
    observe,
)
from bot.config.checks import DEFAULT_POLICY
from bot.config.conditions import ConditionEvaluator, Outcome
from bot.config.loader import Config
from bot.config.promql_windows import PulledTerms
from bot.config.schema import Rule
from bot.evaluation.absence import absence_timing, observe_absence
from bot.evaluation.quiet import QuietModels
from bot.evaluation.rule_errors import RuleErrors, RuleFailure
from bot.evaluation.windows import WindowNeeds, WindowSeries, needs_of, window_values
from bot.metrics.samples import LatestSamples, Points


@dataclass(frozen=True)
class PassInput:
    config: Config
    samples: LatestSamples
    open_alerts: Mapping[str, Alert]
    """Open alerts by dedup key."""
    last_resolved: Mapping[str, datetime]
    """When each key's last *fired* alert resolved, for cooldowns."""
    windows: WindowSeries = field(default_factory=dict)
    """The stored samples the windowed terms read (:func:`window_needs` says which)."""
    pulled: PulledTerms = field(default_factory=PulledTerms)
    """The windowed terms Prometheus answers (:mod:`bot.config.promql_windows`): their values are
    among ``samples``, under the terms' names, not computed from ``windows``."""


def evaluate(
    data: PassInput,
    *,
    now: datetime,
    evaluator: ConditionEvaluator | None = None,
    errors: RuleErrors | None = None,
    quiet: QuietModels | None = None,
    share: Container[str] | None = None,
) -> list[Transition]:
    """Return the transitions of one pass, in a stable order (model, then rule).

    A rule that raises for a model is skipped for it and reported to ``errors``
    (:mod:`bot.evaluation.rule_errors`): one broken rule never stops the others. With ``quiet``
    (:mod:`bot.evaluation.quiet`), the rules of a model whose values and open alerts are as the
    last pass left them, with no timer due, are not run again: they would decide nothing new.
    With ``share`` (:mod:`bot.evaluation.shares`), only the models in it are evaluated: the other
    evaluating processes evaluate the rest.
    """
    engine = evaluator or ConditionEvaluator()
    config = data.config
    transitions: list[Transition] = []
    failures: list[RuleFailure] = []
    plans = {rule.name: _plan(config, rule) for rule in config.rules}  # once a pass, not per model
    alerts_by_model = _by_model(data.open_alerts)
    if quiet is not None:
        quiet.begin(config, now)
    policies: dict[str, tuple[PolicyStep, ...]] = {}
    for model in sorted(models_to_evaluate(config, data.samples.keys())):
        if share is not None and model not in share:
            continue
        rules = config.rules_for(model)
        values = current_values(config, model, data.samples.get(model, {}), now)
        pulled = data.pulled.answered_for(model)
        values.update(windowed_values(config, rules, data.windows.get(model, {}), now, pulled=pulled))
        alerts = alerts_by_model.get(model, ())
        policy = _policy_of(config, model, policies)
        if quiet is None or not quiet.unchanged(model, values, alerts, now):
            decided = _decide_rules(data, rules, model, values, alerts, policy, engine, plans, now)
            transitions.extend(decided.changes)
            failures.extend(decided.failures)
            if quiet is not None:
                quiet.record(
                    model, values, alerts, changed=bool(decided.changes or decided.failures), until=decided.until
                )
        watching = [rule for rule in rules if rule.absent_after is not None]
        if watching:
            transitions.extend(_absence_changes(data, watching, model, policy, now))
    (errors or RuleErrors()).record_pass(failures)
    return transitions


@dataclass(frozen=True)
class _Decided:
    """What one model's rules decided in a pass."""

    changes: list[Transition]
    failures: list[RuleFailure]
    until: datetime | None
    """The earliest timer of the alerts they left as they were (:func:`next_change`)."""


def _decide_rules(
    data: PassInput,
    rules: Iterable[Rule],
    model: str,
    values: Mapping[str, Value],
    alerts: Iterable[Alert],
    policy: tuple[PolicyStep, ...],
    engine: ConditionEvaluator,
    plans: Mapping[str, _RulePlan],
    now: datetime,
) -> _Decided:
    # a NaN compares false with everything, which would auto-resolve an alert: it is no data
    numbers = {k: v for k, v in values.items() if not isinstance(v, str) and v == v}
    open_by_rule = {alert.rule: alert for alert in alerts}
    changes: list[Transition] = []
    failures: list[RuleFailure] = []
    timers: list[datetime] = []
    for rule in rules:
        alert = open_by_rule.get(rule.name)
        try:
            outcome = engine.run(rule.condition, numbers)
            if alert is None and outcome is not Outcome.TRUE:
                # nothing open and nothing breaching: observe() changes nothing and no timer runs
                # (next_change). Most pairs of a fleet's pass end here, before an Observation is built
                continue
            plan = plans[rule.name]
            seen = _observation(rule, model, outcome, values, policy, plan.used)
        except Exception as exc:  # any bug in one rule's condition or templates: isolate it
            failures.append(RuleFailure.of(rule.name, model, exc))
            continue
        resolved = data.last_resolved.get(dedup_key(rule.name, model))
        change = observe(alert, seen, plan.timing, last_fired_resolved_at=resolved, now=now)
        if change is not None:
            changes.append(change)
        elif (timer := next_change(alert, seen.outcome, plan.timing, last_fired_resolved_at=resolved)) is not None:
            timers.append(timer)
    return _Decided(changes, failures, min(timers, default=None))


def _by_model(open_alerts: Mapping[str, Alert]) -> dict[str, tuple[Alert, ...]]:
    """Each model's open alerts in key order, so two passes over the same alerts compare equal."""
    grouped: dict[str, list[tuple[str, Alert]]] = {}
    for key, alert in open_alerts.items():
        grouped.setdefault(alert.model, []).append((key, alert))
    return {
        model: tuple(alert for _, alert in sorted(pairs, key=lambda pair: pair[0])) for model, pairs in grouped.items()
    }


def timing_of(config: Config, rule: Rule) -> Timing:
    """The rule's timing, its unset keys filled from ``settings``."""
    settings = config.settings
    return Timing(
        for_=rule.for_,
        cooldown=rule.cooldown,
        keep_firing_for=settings.keep_firing_for if rule.keep_firing_for is None else rule.keep_firing_for,
        no_data=NoData(rule.no_data or settings.no_data),
    )


def models_to_evaluate(config: Config, with_samples: Iterable[str]) -> set[str]:
    """Configured models, plus models that pushed samples when unknown models are accepted."""
    names = set(config.models)
    if config.settings.accept_unknown_models:
        names.update(with_samples)
    return names


def names_read(config: Config) -> frozenset[str] | None:
    """The metrics whose latest values a pass reads: what the rules' conditions and templates name,
    and the series under their windowed terms (an ``absent_after`` rule watches those too). A fleet
    pushes gauges no rule reads, and reading them cost a pass as much as the ones it evaluates.
    ``None``, every metric, when models nobody configured are evaluated: such a model is known only
    by its samples, whichever metrics it pushes."""
    if config.settings.accept_unknown_models:
        return None
    names: set[str] = set()
    for rule in config.rules:
        names |= rule.condition.inputs | rule.title.fields | rule.description.fields
        names.update(term.metric for term in rule.condition.windows)
    return frozenset(names)


def current_values(config: Config, model: str, samples: Mapping[str, object], now: datetime) -> dict[str, Value]:
    """The names a condition or template may use for ``model`` right now.

    Model settings first (``baseline_accuracy``), then fresh samples over them: a pushed
    value is more current than a configured one. Stale samples are left out, so they read as
    no data.
    """
    values: dict[str, Value] = {"model": model}
    values.update(config.setting_values(model))
    horizon = now - config.settings.stale_after
    for name, sample in samples.items():
        if sample.at >= horizon:  # type: ignore[attr-defined]
            values[name] = sample.value  # type: ignore[attr-defined]
    return values


def windowed_values(
    config: Config,
    rules: Iterable[Rule],
    series: Mapping[str, Points],
    now: datetime,
    *,
    pulled: Collection[str] = (),
) -> dict[str, float]:
    """The values of the windowed terms (``avg_over_time(m, "1h")``) of ``rules`` for one model,
    but for those in ``pulled``: Prometheus answers them, and stored samples must not override it."""
    terms = {term.name: term for rule in rules for term in rule.condition.windows if term.name not in pulled}
    if not terms:
        return {}
    return window_values(terms.values(), series, now=now, stale_after=config.settings.stale_after)


def window_needs(config: Config, *, pulled: PulledTerms | None = None) -> WindowNeeds:
    """The samples the windowed terms of the configuration read, for the pass to fetch: none for
    a term ``pulled`` says Prometheus answers for every model."""
    answered = pulled if pulled is not None else PulledTerms()
    terms = (term for rule in config.rules for term in rule.condition.windows if not answered.everywhere(term.name))
    return needs_of(terms, stale_after=config.settings.stale_after)


def policy_for(config: Config, model: str) -> tuple[PolicyStep, ...]:
    """The model's escalation policy as the snapshot an alert keeps for its whole life."""
    return _policy_named(config, _policy_name(config, model))


def _policy_of(config: Config, model: str, policies: dict[str, tuple[PolicyStep, ...]]) -> tuple[PolicyStep, ...]:
    """:func:`policy_for`, built once a pass per policy name rather than once per model."""
    name = _policy_name(config, model)
    found = policies.get(name)
    if found is None:
        found = policies[name] = _policy_named(config, name)
    return found


def _policy_name(config: Config, model: str) -> str:
    known = config.models.get(model)
    return known.escalation if known else DEFAULT_POLICY


def _policy_named(config: Config, name: str) -> tuple[PolicyStep, ...]:
    steps = config.escalation.get(name, ())
    return tuple(PolicyStep(s.after, s.severity, s.mention, s.pagerduty_routing_key) for s in steps)


def _observation(
    rule: Rule,
    model: str,
    outcome: Outcome,
    values: Mapping[str, Value],
    policy: tuple[PolicyStep, ...],
    used_names: tuple[str, ...],
) -> Observation:
    used = {name: values[name] for name in used_names if name in values}
    if outcome is not Outcome.TRUE:
        return Observation(rule.name, model, rule.severity, outcome, used)
    shown = {**values, "rule": rule.name, "severity": rule.severity.value}
    return Observation(
        rule.name,
        model,
        rule.severity,
        outcome,
        used,
        title=rule.title.render(shown),
        description=rule.description.render(shown),
        policy=policy,
    )


def _absence_changes(
    data: PassInput, rules: Iterable[Rule], model: str, policy: tuple[PolicyStep, ...], now: datetime
) -> list[Transition]:
    """The changes of the ``absent:`` companion alerts of ``rules`` (those with ``absent_after``) on
    ``model``; the model's settings are read once for all of them."""
    known = data.config.models.get(model)
    settings = known.settings if known is not None else {}
    samples = data.samples.get(model, {})
    changes = []
    for rule in rules:
        seen = observe_absence(rule, model, samples, settings, now=now, policy=policy)
        key = dedup_key(seen.rule, model)
        change = observe(
            data.open_alerts.get(key),
            seen,
            absence_timing(rule),
            last_fired_resolved_at=data.last_resolved.get(key),
            now=now,
        )
        if change is not None:
            changes.append(change)
    return changes


@dataclass(frozen=True, slots=True)
class _RulePlan:
    """What a pass works out once per rule rather than once per model and rule."""

    timing: Timing
    used: tuple[str, ...]
    """The names behind a decision, in order: what the condition and templates name, but ``model``."""


def _plan(config: Config, rule: Rule) -> _RulePlan:
    names = rule.condition.inputs | rule.title.fields | rule.description.fields
    return _RulePlan(timing_of(config, rule), tuple(sorted(names - {"model"})))
