"""Rule unit tests, like ``promtool test rules``: metric series in, expected alerts at given times.

A rule that never fires, or fires on every blip, is found by an on-call engineer at 3 a.m.;
a rule test finds it before the rule ships. ``incident-bot test-rules FILE`` runs a YAML file::

    config_dir: ..              # optional, relative to this file; else the --config-dir argument,
                                # else the default configuration directory
    evaluation_interval: 30s    # optional; default: the configuration's settings.evaluation_interval
    tests:
      - name: latency spike fires after 2m and auto-resolves
        interval: 1m            # spacing of input values; default: evaluation_interval
        input_series:
          - model: support-bot
            metric: p99_latency_ms
            values: "100 6100x5 200"
          - model: support-bot
            metric: top_drifted_features
            labels: ["age,income", "_", "zip"]     # text (label) values: one per interval
        actions:                # optional: what people do (``acknowledge`` or ``resolve``)
          - at: 5m
            action: acknowledge
            rule: latency_spike
            model: support-bot
            by: "@ana"          # optional
        alert_rule_test:
          - eval_time: 4m
            alerts:             # every open alert people were told about at that time; [] = none
              - rule: latency_spike
                model: support-bot
                severity: P1
                state: firing                              # optional: firing | acknowledged
                title: "P99 latency >5s for support-bot"   # optional, exact
                description: "..."                         # optional, exact
                values: {p99_latency_ms: 6100}             # optional, each one exact

Series values use promtool's expanding notation, one value per ``interval`` from time 0:

* ``a+bxn`` and ``a-bxn``: ``a``, then ``n`` more values stepping by ``b`` (``n+1`` values):
  ``-2+4x3`` is ``-2 2 6 10``; ``axn`` is ``a`` ``n+1`` times (``1x4`` is ``1 1 1 1 1``);
* ``_`` is a missing sample and ``_xn`` is ``n`` missing samples (not ``n+1``: a gap cannot step);
* a YAML list works too: numbers, ``null`` or ``"_"`` for missing, or notation strings.

Unlike Prometheus there are no stale markers (``stale`` is refused): as in the running bot, a
metric's last sample is its value until ``settings.stale_after`` has passed, then it is no data.
``NaN`` and ``Inf`` are refused as the ingest API refuses them.

Time starts at 0 (a fixed instant) and rules are evaluated every ``evaluation_interval`` with the
same pure core the service runs (:func:`bot.evaluation.evaluate.evaluate`), keeping open alerts
and cooldowns exactly as the service does, without a database. At each ``eval_time`` (after any
evaluation and actions at that instant) the firing and acknowledged alerts are compared with the
expected ones; pending alerts are not listed, as in promtool. Escalation and notifications are not
simulated. A malformed file raises :class:`~bot.errors.ConfigError` naming file and line.
"""

from __future__ import annotations

import bisect
import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from bot.alerts import lifecycle
from bot.alerts.lifecycle import Alert, AlertState, Event, EventKind, Transition, dedup_key
from bot.clock import FrozenClock
from bot.config.conditions import ConditionEvaluator, Outcome
from bot.config.loader import Config, load_config
from bot.config.schema import Duration, SeverityField
from bot.config.yaml_lines import LocatedDocument, YamlProblem, load_located
from bot.errors import ActionRefused, ConfigError, ConfigProblem
from bot.evaluation.evaluate import PassInput, current_values, evaluate
from bot.metrics.samples import Sample

MAX_VALUES = 100_000
"""Per series, and evaluation steps per test: a typo such as ``1x10000000`` must not eat the machine."""

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_ITEM = re.compile(rf"^(?P<start>[+-]?{_NUMBER})(?:(?P<step>[+-]{_NUMBER})?x(?P<times>\d+))?$")
_GAP = re.compile(r"^_(?:x(?P<times>\d+))?$")
_NOTATION_HINT = "write values as '1 2 3', 'axN' (a, N+1 times), 'a+bxN' or 'a-bxN', and '_' or '_xN' for gaps"


# --- series notation ---------------------------------------------------------------------------


def expand_series(text: str) -> list[float | None]:
    """Expand promtool notation into one value per interval; ``None`` is a missing sample."""
    out: list[float | None] = []
    for token in text.split():
        out.extend(_expand_token(token))
        if len(out) > MAX_VALUES:
            raise ValueError(f"series {text!r} expands to more than {MAX_VALUES:,} values; shorten it")
    return out


def _expand_token(token: str) -> list[float | None]:
    gap = _GAP.match(token)
    if gap:
        return [None] * (int(gap["times"]) if gap["times"] else 1)
    lowered = token.lower().lstrip("+-")
    if lowered.startswith("stale"):
        raise ValueError(
            f"{token!r}: there are no stale markers here; a metric goes stale by itself "
            "settings.stale_after after its last sample, so stop the series or use '_' for gaps"
        )
    if lowered.startswith(("nan", "inf")):
        raise ValueError(f"{token!r}: NaN and Inf are refused, as the ingest API refuses them")
    item = _ITEM.match(token)
    if item is None:
        if re.match(rf"^[+-]?{_NUMBER}[+-]{_NUMBER}$", token):
            raise ValueError(f"{token!r}: a step needs a count, e.g. {token}x5")
        raise ValueError(f"{token!r} is not a value; {_NOTATION_HINT}")
    value = float(item["start"])
    if item["times"] is None:
        return [value]
    if int(item["times"]) >= MAX_VALUES:
        raise ValueError(f"{token!r} expands to more than {MAX_VALUES:,} values; shorten it")
    step = float(item["step"]) if item["step"] else 0.0
    values: list[float | None] = []
    for _ in range(int(item["times"]) + 1):  # promtool: 'a+bxn' is a, then n further values
        values.append(value)
        value += step  # accumulated like promtool, so float results match it bit for bit
    return values


def _values_field(raw: object) -> tuple[float | None, ...] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return tuple(expand_series(raw))
    if not isinstance(raw, list):
        raise ValueError(f"values must be a string such as '1 2 3x4' or a list, not {type(raw).__name__}")
    out: list[float | None] = []
    for item in raw:
        if item is None:
            out.append(None)
        elif isinstance(item, bool) or not isinstance(item, int | float | str):
            raise ValueError(f"{item!r} is not a number; use numbers, null or '_' for a gap")
        elif isinstance(item, str):
            out.extend(expand_series(item))
        elif not math.isfinite(item):
            raise ValueError(f"{item!r} is refused, as the ingest API refuses NaN and Inf")
        else:
            out.append(float(item))
    if len(out) > MAX_VALUES:
        raise ValueError(f"more than {MAX_VALUES:,} values; shorten the series")
    return tuple(out)


def _labels_field(raw: object) -> tuple[str | None, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ValueError('labels must be a list of texts, one per interval, e.g. ["age,income", "_"]')
    out: list[str | None] = []
    for item in raw:
        if item is None or item == "_":
            out.append(None)
        elif isinstance(item, str):
            out.append(item)
        else:
            raise ValueError(f"{item!r} is not text; quote it, or use 'values:' for numbers")
    return tuple(out)


def _listed_state(raw: object) -> object:
    if raw == "pending":
        raise ValueError("pending alerts are not listed (like promtool): expect [] until the alert fires")
    return raw


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s, e.g. 30s or 1m")
    return value


# --- the file's shape --------------------------------------------------------------------------

Step = Annotated[Duration, AfterValidator(_positive)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeriesSpec(_Strict):
    model: str
    metric: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    values: Annotated[tuple[float | None, ...] | None, BeforeValidator(_values_field)] = None
    labels: Annotated[tuple[str | None, ...] | None, BeforeValidator(_labels_field)] = None

    @model_validator(mode="after")
    def _one_kind(self) -> SeriesSpec:
        if (self.values is None) == (self.labels is None):
            raise ValueError("give a series either values: (numbers) or labels: (texts), not both or neither")
        return self


class ExpectedAlert(_Strict):
    rule: str
    model: str
    severity: SeverityField
    state: Annotated[Literal["firing", "acknowledged"] | None, BeforeValidator(_listed_state)] = None
    title: str | None = None
    description: str | None = None
    values: dict[str, float | str] | None = None


class AlertCheck(_Strict):
    eval_time: Duration
    alerts: list[ExpectedAlert]


class ActionSpec(_Strict):
    at: Duration
    action: Literal["acknowledge", "resolve"]
    rule: str
    model: str
    by: str = "@rule-test"


class CaseSpec(_Strict):
    name: str = Field(min_length=1)
    interval: Step | None = None
    input_series: list[SeriesSpec] = Field(default_factory=list)
    actions: list[ActionSpec] = Field(default_factory=list)
    alert_rule_test: list[AlertCheck] = Field(min_length=1)


class FileSpec(_Strict):
    config_dir: str | None = None
    evaluation_interval: Step | None = None
    tests: list[CaseSpec] = Field(min_length=1)


_SPECS: tuple[type[BaseModel], ...] = (SeriesSpec, ExpectedAlert, AlertCheck, ActionSpec, CaseSpec, FileSpec)
_KEYS = frozenset(f.alias or name for spec in _SPECS for name, f in spec.model_fields.items())


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    messages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RuleTestReport:
    file: Path
    cases: list[CaseResult]

    @property
    def ok(self) -> bool:
        return all(case.passed for case in self.cases)

    def format(self) -> str:
        """One line per case, details indented under a failure, then ``N passed, M failed``."""
        lines: list[str] = []
        for case in self.cases:
            lines.append(f"{'PASS' if case.passed else 'FAIL'} {case.name}")
            lines.extend("    " + line for message in case.messages for line in message.splitlines())
        passed = sum(case.passed for case in self.cases)
        lines.append(f"{passed} passed, {len(self.cases) - passed} failed")
        return "\n".join(lines)


# --- loading -----------------------------------------------------------------------------------


def run_rule_tests(path: Path, *, config_dir: Path | None = None) -> RuleTestReport:
    """Run every test of the file at ``path``. Raises :class:`ConfigError` if the file (or the
    configuration it tests) is malformed; a failing expectation is a failed case, not an error."""
    shown = str(path)
    try:
        doc = load_located(Path(path).read_text(encoding="utf-8"))
    except YamlProblem as exc:
        raise ConfigError([ConfigProblem(shown, exc.line, str(exc))]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(shown, None, f"cannot read test file: {exc}")]) from None
    if not isinstance(doc.data, dict):
        raise ConfigError([ConfigProblem(shown, 1, "the top level must be a mapping with a tests: list")])
    try:
        spec = FileSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError([_problem_from(error, shown, doc) for error in exc.errors()]) from None
    config = _load_tested_config(spec, Path(path), config_dir, shown, doc)
    problems = _check_names(spec, config, shown, doc)
    if problems:
        raise ConfigError(problems)
    interval = spec.evaluation_interval or config.settings.evaluation_interval
    results = [_Simulation(case, config, interval).run() for case in spec.tests]
    return RuleTestReport(Path(path), results)


def _load_tested_config(spec: FileSpec, path: Path, given: Path | None, shown: str, doc: LocatedDocument) -> Config:
    if spec.config_dir is not None:
        directory = (path.parent / spec.config_dir).resolve()
    elif given is not None:
        directory = given
    else:
        from bot.app import default_config_dir  # the CLI's own default; imported late, it is heavy
        from bot.settings import Settings

        directory = default_config_dir(Settings())
    try:
        return load_config(directory)
    except ConfigError as exc:
        head = ConfigProblem(shown, doc.line_of(("config_dir",)), f"the configuration in {directory} does not load:")
        raise ConfigError([head, *exc.problems]) from None


def _problem_from(error: Mapping[str, Any], shown: str, doc: LocatedDocument) -> ConfigProblem:
    loc = tuple(error["loc"])
    line = doc.line_of(loc)
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), _KEYS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "remove it"
        if loc[-1] in _KEYS:
            hint = "it does not belong here; check its indentation"
        return ConfigProblem(shown, line, f"{_where(loc)}: unknown key; {hint}")
    if error["type"] == "missing":
        return ConfigProblem(shown, line, f"{_where(loc)}: required key is missing; add it")
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["type"].startswith("value_error"):
        message = f"{message} (got {error.get('input')!r})"
    return ConfigProblem(shown, line, f"{_where(loc)}: {message}")


def _where(loc: tuple[Any, ...]) -> str:
    """``tests[0].input_series[1].values``: the path a reader can follow in the file."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return text or "file"


def _check_names(spec: FileSpec, config: Config, shown: str, doc: LocatedDocument) -> list[ConfigProblem]:
    """Names the configuration does not know are mistakes in the test, not failures of a rule."""
    problems: list[ConfigProblem] = []
    rules = [r.name for r in config.rules]

    def unknown(kind: str, name: str, known: list[str], loc: tuple[Any, ...]) -> None:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known)) or 'none'}"
        problems.append(ConfigProblem(shown, doc.line_of(loc), f"{_where(loc)}: {kind} {name!r} is unknown; {hint}"))

    def check(model: str, rule: str | None, loc: tuple[Any, ...]) -> None:
        if model not in config.models and not config.settings.accept_unknown_models:
            unknown("model", model, list(config.models), (*loc, "model"))
        if rule is not None and rule not in rules:
            unknown("rule", rule, rules, (*loc, "rule"))

    for c, case in enumerate(spec.tests):
        seen: set[tuple[str, str]] = set()
        for i, series in enumerate(case.input_series):
            loc = ("tests", c, "input_series", i)
            check(series.model, None, loc)
            if (series.model, series.metric) in seen:
                message = f"{_where(loc)}: {series.metric} of {series.model} is given twice; merge the series"
                problems.append(ConfigProblem(shown, doc.line_of(loc), message))
            seen.add((series.model, series.metric))
        for i, action in enumerate(case.actions):
            check(action.model, action.rule, ("tests", c, "actions", i))
        for k, expect in enumerate(case.alert_rule_test):
            for i, alert in enumerate(expect.alerts):
                check(alert.model, alert.rule, ("tests", c, "alert_rule_test", k, "alerts", i))
    return problems


# --- simulation --------------------------------------------------------------------------------


class _Simulation:
    """One test case: the service's evaluation loop, in memory, on a frozen clock."""

    def __init__(self, case: CaseSpec, config: Config, evaluation_interval: timedelta) -> None:
        self.case = case
        self.config = config
        self.every = evaluation_interval
        self.start = FrozenClock().now()
        spacing = case.interval or evaluation_interval
        self.series: dict[tuple[str, str], tuple[list[datetime], list[float | str]]] = {}
        for spec in case.input_series:
            points = spec.values if spec.values is not None else spec.labels
            assert points is not None
            kept = [(self.start + spacing * i, v) for i, v in enumerate(points) if v is not None]
            self.series[(spec.model, spec.metric)] = ([t for t, _ in kept], [v for _, v in kept])
        self.open: dict[str, Alert] = {}
        self.last_resolved: dict[str, datetime] = {}
        self.last_seen: dict[str, Transition] = {}
        self.evaluator = ConditionEvaluator()
        self.messages: list[str] = []

    def run(self) -> CaseResult:
        end = max([c.eval_time for c in self.case.alert_rule_test] + [a.at for a in self.case.actions])
        steps = end // self.every
        if steps > MAX_VALUES:
            message = f"{steps:,} evaluations to reach {_offset(end)}; use a longer evaluation_interval"
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
                self._evaluate(now)
            else:
                self._check(self.case.alert_rule_test[index], now)
        return CaseResult(self.case.name, not self.messages, self.messages)

    def samples_at(self, now: datetime) -> dict[str, dict[str, Sample]]:
        latest: dict[str, dict[str, Sample]] = {}
        for (model, metric), (times, values) in self.series.items():
            i = bisect.bisect_right(times, now) - 1
            if i >= 0:
                latest.setdefault(model, {})[metric] = Sample(values[i], times[i])
        return latest

    def _evaluate(self, now: datetime) -> None:
        """What ``AlertService.evaluate_once`` does, with dictionaries in place of tables."""
        data = PassInput(self.config, self.samples_at(now), self.open, self.last_resolved)
        for change in evaluate(data, now=now, evaluator=self.evaluator):  # a list: applied after the pass
            self._apply(change)

    def _apply(self, change: Transition) -> None:
        alert = change.alert
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
            self.messages.append(f"at {_offset(now - self.start)}: cannot {action.action} {key}: no open alert")
            return
        verb = lifecycle.acknowledge if action.action == "acknowledge" else lifecycle.resolve
        try:
            self._apply(verb(alert, actor=action.by, now=now))
        except ActionRefused as exc:
            self.messages.append(f"at {_offset(now - self.start)}: cannot {action.action} {key}: {exc}")

    def _check(self, check: AlertCheck, now: datetime) -> None:
        shown = (AlertState.FIRING, AlertState.ACKNOWLEDGED)
        got = {k: a for k, a in self.open.items() if a.state in shown}
        expected = {dedup_key(e.rule, e.model): e for e in check.alerts}
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
        lines = [f"at {_offset(now - self.start)}: open alerts differ from the expected ones", "  expected:"]
        lines += [f"    {_describe_expected(e)}" for e in check.alerts] or ["    (none)"]
        lines.append("  got:")
        lines += [f"    {self._describe(a)}" for _, a in sorted(got.items())] or ["    (none)"]
        lines += [f"  - {p}" for p in problems]
        self.messages.append("\n".join(lines))

    def _describe(self, alert: Alert) -> str:
        since = _offset((alert.fired_at or alert.started_at) - self.start)
        return f'{alert.key} {alert.severity.value} {alert.state.value} since {since}: "{alert.title}"'

    def _why_not(self, rule_name: str, model: str, now: datetime) -> str:
        """Tell the test author what the engine saw, so a failure points at the cause."""
        key = dedup_key(rule_name, model)
        pending = self.open.get(key)
        rule = self.config.rule(rule_name)
        if pending is not None and rule is not None:
            due = pending.started_at + rule.for_
            return f"pending since {_offset(pending.started_at - self.start)}, fires at {_offset(due - self.start)}"
        if rule is None or not rule.applies_to(model):
            return f"rule {rule_name} does not apply to {model} (models: {', '.join(rule.models) if rule else '-'})"
        last = self.last_seen.get(key)
        said = ""
        if last is not None and last.event.kind in (EventKind.AUTO_RESOLVED, EventKind.RESOLVED):
            said = f"{_event(last.event)} at {_offset(last.event.at - self.start)}; "
        resolved = self.last_resolved.get(key)
        if resolved is not None and now - resolved < rule.cooldown:
            return f"{said}in cooldown until {_offset(resolved + rule.cooldown - self.start)}"
        values = current_values(self.config, model, self.samples_at(now).get(model, {}), now)
        numbers = {k: v for k, v in values.items() if not isinstance(v, str)}
        outcome = self.evaluator.run(rule.condition, numbers)
        shown = ", ".join(f"{n}={values[n]!r}" for n in sorted(rule.condition.names) if n in values)
        if outcome is Outcome.NO_DATA:
            absent = sorted(n for n in rule.condition.names if n not in numbers)
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


def _offset(delta: timedelta) -> str:
    """``4m``, ``2m30s``, ``1h5m``: the way durations are written in the test file."""
    total = delta.total_seconds()
    if total == 0:
        return "0s"
    sign, total = ("-", -total) if total < 0 else ("", total)
    hours, rest = divmod(int(total), 3600)
    minutes, seconds = divmod(rest, 60)
    fraction = total - int(total)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    if seconds or fraction:
        parts.append(f"{seconds + fraction:g}s")
    return sign + "".join(parts)
