"""No data is an alert too: a rule's ``absent_after:`` (pure).

A condition over a metric that stops arriving reads *no data*, and no data never fires (see
:mod:`bot.alerts.lifecycle`): silence is not evidence. That keeps a dead exporter from paging
as an outage, but it also leaves the rule quiet forever while nobody is watching the model. A
rule with ``absent_after: 15m`` therefore has a companion alert, ``absent:<rule>`` on the same
model, which fires when a metric the rule reads has had no sample that long, says which one and
since when, and resolves when samples return: Prometheus' ``absent_over_time()`` alert, without
writing a second rule.

Only metrics that *were* seen can go silent: with ``models: ["*"]`` a model that never pushed a
metric simply does not have it, and saying its exporter "went silent" would be noise. Model
settings (``baseline_accuracy``) are configuration, not metrics, and are never absent.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from bot.alerts.lifecycle import NoData, Observation, PolicyStep, Timing, Value
from bot.config.alert_names import absence_rule
from bot.config.conditions import Outcome
from bot.config.durations import humanize
from bot.config.schema import Rule
from bot.metrics.samples import Sample


def metrics_read(rule: Rule, settings: Collection[str]) -> list[str]:
    """The metrics ``rule``'s condition reads for a model whose settings are ``settings``: plain
    names and the series under its windowed terms, less what the model configures."""
    names = rule.condition.names | {term.metric for term in rule.condition.windows}
    return sorted(n for n in names if n not in settings and n != "model")


def absence_timing(rule: Rule) -> Timing:
    """``absent_after`` already is the wait, so the alert fires on the first pass past it; a
    cooldown as the rule's keeps a flapping exporter from re-alerting every few minutes."""
    return Timing(cooldown=rule.cooldown, no_data=NoData.KEEP)


def observe_absence(
    rule: Rule,
    model: str,
    samples: Mapping[str, Sample],
    settings: Collection[str],
    *,
    now: datetime,
    policy: tuple[PolicyStep, ...] = (),
) -> Observation:
    """TRUE when a metric ``rule`` reads was seen but not for ``absent_after``; FALSE when every
    one it reads is fresh; NO_DATA when none of them was ever seen for ``model``."""
    assert rule.absent_after is not None, "only rules with absent_after watch for absence"
    name = absence_rule(rule.name)
    last_seen = {m: samples[m].at for m in metrics_read(rule, settings) if m in samples}
    silent = {m: at for m, at in last_seen.items() if now - at > rule.absent_after}
    if not last_seen:
        return Observation(name, model, rule.absent_severity, Outcome.NO_DATA)
    if not silent:
        return Observation(name, model, rule.absent_severity, Outcome.FALSE)
    metric, since = min(silent.items(), key=lambda item: (item[1], item[0]))  # the longest silent
    values: dict[str, Value] = {"metric": metric, "last_seen": since.isoformat()}
    others = sorted(set(silent) - {metric})
    if others:
        values["also_silent"] = ", ".join(others)
    return Observation(
        name,
        model,
        rule.absent_severity,
        Outcome.TRUE,
        values,
        # the title names absent_after, not the time since: it stays the same from pass to pass
        title=f"No {metric} data from {model} for over {humanize(rule.absent_after)}",
        description=(
            f"The last {metric} sample from {model} arrived at {since:%Y-%m-%d %H:%M} UTC, more than "
            f"{humanize(rule.absent_after)} ago (absent_after), so rule {rule.name} cannot see its condition. "
            f"Check that the exporter or pipeline pushing {model}'s metrics is still running."
        ),
        policy=policy,
    )
