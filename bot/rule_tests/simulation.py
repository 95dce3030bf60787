"""One test case run in memory: the service's evaluation loop on a frozen clock, and the comparison
of open alerts with the expected ones."""

from __future__ import annotations

import bisect
import math
import random
from datetime import datetime, timedelta

from bot.alerts import lifecycle
from bot.alerts.lifecycle import Alert, AlertState, Event, EventKind, Transition, dedup_key
from bot.clock import FrozenClock
from bot.config.conditions import ConditionEvaluator, Outcome
from bot.config.durations import written
from bot.config.loader import Config
from bot.errors import ActionRefused
from bot.evaluation.evaluate import PassInput, current_values, evaluate, window_needs, windowed_values
from bot.evaluation.schedule import EARLY_TOLERANCE, EvaluationSchedule
from bot.metrics.samples import Points, Sample
from bot.rule_tests.incidents import IncidentBook
from bot.rule_tests.notation import MAX_VALUES
from bot.rule_tests.results import CaseResult
from bot.rule_tests.spec import ActionSpec, AlertCheck, CaseSpec, ExpectedAlert, ExpectedIncident

# --- simulation --------------------------------------------------------------------------------


class _Simulation:
    """One test case: the service's evaluation loop, in memory, on a frozen clock.

    Each pass runs on the evaluation schedule as ``serve`` runs it. With ``jitter`` (a fraction of
    the interval) each pass *starts* at a random moment from just before its tick to that far
    after it, as on a busy machine; the schedule still judges it as of its tick, so a correct
    rule's answer must not change.
    """

    def __init__(
        self, case: CaseSpec, config: Config, evaluation_interval: timedelta, *, jitter: float = 0.0, seed: int = 0
    ) -> None:
        self.case = case
        self.config = config
        self.every = evaluation_interval
        self.schedule = EvaluationSchedule(evaluation_interval)
        self.start = self.schedule.tick_at(FrozenClock().now())
        self.jitter = jitter
        self.rng = random.Random(seed)
        self.book = IncidentBook(config)
        spacing = case.interval or evaluation_interval
        self.series: dict[tuple[str, str], tuple[list[datetime], list[float | str]]] = {}
        for spec in case.input_series:
            points = spec.values if spec.values is not None else spec.labels
            assert points is not None
            kept = [(self.start + spacing * i, v) for i, v in enumerate(points) if v is not None]
            self.series[(spec.model, spec.metric)] = ([t for t, _ in kept], [v for _, v in kept])
        self.windows = self._windows()
        """What windowed terms read: each series whole (the window functions pick their span)."""
        self.open: dict[str, Alert] = {}
        self.last_resolved: dict[str, datetime] = {}
        self.last_seen: dict[str, Transition] = {}
        self.evaluator = ConditionEvaluator()
        self.messages: list[str] = []

    def run(self) -> CaseResult:
        end = max([c.eval_time for c in self.case.alert_rule_test] + [a.at for a in self.case.actions])
        steps = end // self.every
        if steps > MAX_VALUES:
            message = f"{steps:,} evaluations to reach {written(end, days=False)}; use a longer evaluation_interval"
            return CaseResult(self.case.name, False, [message])
        # actions first, then the evaluation, then checks: a check sees the pass at its own time
        timeline: list[tuple[timedelta, int, int]] = [(self.every * k, 1, k) for k in range(steps + 1)]
        timeline += [(a.at, 0, i) for i, a in enumerate(self.case.actions)]
        timeline += [(c.eval_time, 2, i) for i, c in enumerate(self.case.alert_rule_test)]
        for at, phase, index in sorted(timeline):
            now = self.start + at
            if phase == 0:
                self._act(self.case.actions[index], now)
            elif phase == 1:
                tick = self.schedule.next(now + self._lateness())
                if tick is not None:
                    self._evaluate(tick.at)
            else:
                self._check(self.case.alert_rule_test[index], now)
        return CaseResult(self.case.name, not self.messages, self.messages)

    def _lateness(self) -> timedelta:
        """How far from its tick a pass starts: nothing, or a few ms early, or up to ``jitter``."""
        if not self.jitter:
            return timedelta(0)
        early = -min(EARLY_TOLERANCE, self.every / 20) * 0.8
        return self.rng.choice([early, timedelta(0), self.every * self.rng.uniform(0, self.jitter)])

    def samples_at(self, now: datetime) -> dict[str, dict[str, Sample]]:
        latest: dict[str, dict[str, Sample]] = {}
        for (model, metric), (times, values) in self.series.items():
            i = bisect.bisect_right(times, now) - 1
            if i >= 0:
                latest.setdefault(model, {})[metric] = Sample(values[i], times[i])
        return latest

    def _windows(self) -> dict[str, dict[str, Points]]:
        needs = window_needs(self.config)
        keys = {metric: [metric] for metric in needs.ranges}
        for key, (metric, _) in needs.ago.items():
            keys.setdefault(metric, []).append(key)
        out: dict[str, dict[str, Points]] = {}
        for (model, metric), (times, values) in self.series.items():
            numbers = [(t.timestamp(), v) for t, v in zip(times, values, strict=True) if not isinstance(v, str)]
            points = Points([t for t, _ in numbers], [v for _, v in numbers])
            for key in keys.get(metric, ()):
                out.setdefault(model, {})[key] = points
        return out

    def _evaluate(self, now: datetime) -> None:
        """What ``AlertService.evaluate_once`` does, with dictionaries in place of tables."""
        data = PassInput(self.config, self.samples_at(now), self.open, self.last_resolved, self.windows)
        changes = evaluate(data, now=now, evaluator=self.evaluator)  # a list: applied after the pass
        self.book.begin_pass(changes, now)
        for change in changes:
            self._apply(change)

    def _apply(self, change: Transition) -> None:
        alert = change.alert
        self.book.record(change, change.event.at)
        self.last_seen[alert.key] = change
        if alert.state.is_open:
            self.open[alert.key] = alert
            return
        self.open.pop(alert.key, None)
        if alert.fired_at is not None and alert.resolved_at is not None:
            self.last_resolved[alert.key] = max(alert.resolved_at, self.last_resolved.get(alert.key, alert.resolved_at))

    def _act(self, action: ActionSpec, now: datetime) -> None:
        key = dedup_key(action.rule, action.model)
        alert = self.open.get(key)
        if alert is None:
            self.messages.append(
                f"at {written(now - self.start, days=False)}: cannot {action.action} {key}: no open alert"
            )
            return
        verb = lifecycle.acknowledge if action.action == "acknowledge" else lifecycle.resolve
        try:
            self._apply(verb(alert, actor=action.by, now=now))
        except ActionRefused as exc:
            self.messages.append(f"at {written(now - self.start, days=False)}: cannot {action.action} {key}: {exc}")

    def _check(self, check: AlertCheck, now: datetime) -> None:
        if check.alerts is not None:
            self._check_alerts(check.alerts, now)
        if check.incidents is not None:
            self._check_incidents(check.incidents, now)

    def _check_incidents(self, expected: list[ExpectedIncident], now: datetime) -> None:
        """Open incidents, each named by the open alerts it holds, against the expected ones."""
        got = {tuple(keys): incident for incident, keys in self.book.open_incidents()}
        want = {tuple(sorted(e.alerts)): e for e in expected}
        problems: list[str] = []
        for keys, exp in want.items():
            incident, named = got.get(keys), ", ".join(keys)
            if incident is None:
                problems.append(f"missing an incident of {named}")
                continue
            if exp.severity is not None and exp.severity is not incident.severity:
                problems.append(f"{named}: severity expected {exp.severity.value}, got {incident.severity.value}")
            if exp.state is not None and exp.state != incident.state.value:
                problems.append(f"{named}: state expected {exp.state}, got {incident.state.value}")
            if exp.storm is not None and exp.storm != (incident.storm_rule is not None):
                problems.append(f"{named}: {'a storm' if exp.storm else 'not a storm'} expected")
        problems += [f"unexpected incident of {', '.join(keys)}" for keys in sorted(got.keys() - want.keys())]
        if not problems:
            return
        lines = [f"at {written(now - self.start, days=False)}: open incidents differ from the expected ones", "  got:"]
        lines += [
            f"    {i.severity.value} {i.state.value}{' storm' if i.storm_rule else ''}: {', '.join(keys)}"
            for keys, i in sorted(got.items())
        ] or ["    (none)"]
        lines += [f"  - {p}" for p in problems]
        self.messages.append("\n".join(lines))

    def _check_alerts(self, expected_alerts: list[ExpectedAlert], now: datetime) -> None:
        shown = (AlertState.FIRING, AlertState.ACKNOWLEDGED)
        got = {k: a for k, a in self.open.items() if a.state in shown}
        expected = {dedup_key(e.rule, e.model): e for e in expected_alerts}
        problems: list[str] = []
        for key, exp in expected.items():
            alert = got.get(key)
            if alert is None:
                problems.append(f"missing {key}: {self._why_not(exp.rule, exp.model, now)}")
            else:
                problems.extend(f"{key}: {d}" for d in _differences(exp, alert))
        for key in sorted(got.keys() - expected.keys()):
            problems.append(f"unexpected {key}")
        if not problems:
            return
        lines = [
            f"at {written(now - self.start, days=False)}: open alerts differ from the expected ones",
            "  expected:",
        ]
        lines += [f"    {_describe_expected(e)}" for e in expected_alerts] or ["    (none)"]
        lines.append("  got:")
        lines += [f"    {self._describe(a)}" for _, a in sorted(got.items())] or ["    (none)"]
        lines += [f"  - {p}" for p in problems]
        self.messages.append("\n".join(lines))

    def _describe(self, alert: Alert) -> str:
        since = written((alert.fired_at or alert.started_at) - self.start, days=False)
        return f'{alert.key} {alert.severity.value} {alert.state.value} since {since}: "{alert.title}"'

    def _why_not(self, rule_name: str, model: str, now: datetime) -> str:
        """Tell the test author what the engine saw, so a failure points at the cause."""
        key = dedup_key(rule_name, model)
        pending = self.open.get(key)
        rule = self.config.rule(rule_name)
        if pending is not None and rule is not None:
            due = pending.started_at + rule.for_
            since, fires = (written(at - self.start, days=False) for at in (pending.started_at, due))
            return f"pending since {since}, fires at {fires}"
        if rule is None or not rule.applies_to(model):
            return f"rule {rule_name} does not apply to {model} (models: {', '.join(rule.models) if rule else '-'})"
        last = self.last_seen.get(key)
        said = ""
        if last is not None and last.event.kind in (EventKind.AUTO_RESOLVED, EventKind.RESOLVED):
            said = f"{_event(last.event)} at {written(last.event.at - self.start, days=False)}; "
        resolved = self.last_resolved.get(key)
        if resolved is not None and now - resolved < rule.cooldown:
            return f"{said}in cooldown until {written(resolved + rule.cooldown - self.start, days=False)}"
        values = current_values(self.config, model, self.samples_at(now).get(model, {}), now)
        values.update(windowed_values(self.config, [rule], self.windows.get(model, {}), now))
        numbers = {k: v for k, v in values.items() if not isinstance(v, str)}
        outcome = self.evaluator.run(rule.condition, numbers)
        shown = ", ".join(f"{n}={values[n]!r}" for n in sorted(rule.condition.inputs) if n in values)
        if outcome is Outcome.NO_DATA:
            absent = sorted(n for n in rule.condition.inputs if n not in numbers)
            gap = f"no data for {', '.join(absent)}" if absent else "no data (the values cannot answer it)"
            return f"{said}{gap}; condition {rule.condition.source!r}"
        return f"{said}condition {rule.condition.source!r} is {outcome.value} ({shown or 'no values'})"


def _differences(exp: ExpectedAlert, alert: Alert) -> list[str]:
    out: list[str] = []
    if exp.severity is not alert.severity:
        out.append(f"severity expected {exp.severity.value}, got {alert.severity.value}")
    if exp.state is not None and exp.state != alert.state.value:
        out.append(f"state expected {exp.state}, got {alert.state.value}")
    for part in ("title", "description"):
        want, have = getattr(exp, part), getattr(alert, part)
        if want is not None and want != have:
            out.append(f"{part} expected {want!r}, got {have!r}")
    for name, want in (exp.values or {}).items():
        have = alert.values.get(name)
        if not _same(want, have):
            out.append(f"value {name} expected {want!r}, got {'(none)' if have is None else repr(have)}")
    return out


def _same(want: float | str, have: object) -> bool:
    if isinstance(want, str) or isinstance(have, str) or have is None:
        return want == have
    return math.isclose(float(want), float(have), rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[arg-type]


def _describe_expected(exp: ExpectedAlert) -> str:
    text = f"{dedup_key(exp.rule, exp.model)} {exp.severity.value}" + (f" {exp.state}" if exp.state else "")
    return f'{text}: "{exp.title}"' if exp.title is not None else text


def _event(event: Event) -> str:
    return "auto-resolved" if event.kind is EventKind.AUTO_RESOLVED else f"resolved by {event.actor}"
