"""Loading a configuration directory (``rules/*.yaml`` + ``runbooks/*.md``) into a :class:`Config`.

Loading is all-or-nothing: every file is parsed and validated, every problem found is
collected with its file and line, and only a configuration with no problem at all is returned.
A running bot keeps its old configuration when a reload fails (SPEC §3).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config.alert_names import absence_rule, slo_rule, watched_rule
from bot.config.runbooks import Runbook
from bot.config.schema import (
    Access,
    BusinessHours,
    EngineSettings,
    EscalationStep,
    MetricInfo,
    Model,
    Routing,
    Rule,
    RulesFile,
    Slo,
    known_keys,
)
from bot.config.source_schema import ANY_MODEL, AlertmanagerSection, PrometheusSection
from bot.config.yaml_lines import LocatedDocument, YamlProblem, load_located
from bot.errors import ConfigError, ConfigProblem
from bot.severity import Severity

BUILTIN_FIELDS = frozenset({"model", "rule", "severity"})
_GLUED_KEY = re.compile(r"^([a-z_][a-z0-9_]*):(\S.*)$")
"""``stale_after:15m`` is one word to YAML, so a mapping expected there gets a string."""
DEFAULT_RUNBOOK = "default"
DEFAULT_POLICY = "default"
SEED_ESCALATION = (
    EscalationStep(after=timedelta(minutes=15), severity=Severity.P3),
    EscalationStep(after=timedelta(minutes=30), severity=Severity.P2),
    EscalationStep(after=timedelta(minutes=60), severity=Severity.P1),
)


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; immutable, so a reload swaps it in one assignment."""

    directory: Path
    settings: EngineSettings
    rules: tuple[Rule, ...]
    models: Mapping[str, Model]
    slos: tuple[Slo, ...] = ()
    escalation: Mapping[str, tuple[EscalationStep, ...]] = field(default_factory=dict)
    routing: Routing = field(default_factory=Routing)
    business_hours: BusinessHours | None = None
    access: Access = field(default_factory=Access)
    metrics: Mapping[str, MetricInfo] = field(default_factory=dict)
    runbooks: Mapping[str, Runbook] = field(default_factory=dict)
    prometheus: PrometheusSection | None = None
    alertmanager: AlertmanagerSection = field(default_factory=AlertmanagerSection)

    def rule(self, name: str) -> Rule | None:
        """The configured rule ``name``; for an ``absent:<rule>`` alert, the rule it watches, whose
        channel and runbook it shares."""
        wanted = watched_rule(name) or name
        return next((r for r in self.rules if r.name == wanted), None)

    def alert_rules(self) -> list[str]:
        """Every rule name an alert of this configuration can carry (:mod:`bot.config.alert_names`):
        the rules, their ``absent:<rule>`` companions and each SLO's ``slo:<label>``."""
        names = [r.name for r in self.rules]
        names += [absence_rule(r.name) for r in self.rules if r.absent_after is not None]
        names += [slo_rule(slo.name or slo.metric) for slo in self.slos]
        return sorted(set(names))

    def rules_for(self, model: str) -> list[Rule]:
        return [r for r in self.rules if r.applies_to(model)]

    def runbook_for_model(self, model: str) -> Runbook | None:
        known = self.models.get(model)
        name = known.runbook if known and known.runbook else DEFAULT_RUNBOOK
        return self.runbooks.get(name)

    def channel_for(self, rule: Rule, model: str) -> str:
        known = self.models.get(model)
        return rule.channel or (known.channel if known else None) or self.settings.default_channel

    def alert_channel(self, rule: str, model: str) -> str:
        """Where an alert of ``rule`` (perhaps not a configured rule: an SLO's, Alertmanager's) is told."""
        configured = self.rule(rule)
        if configured is not None:
            return self.channel_for(configured, model)
        known = self.models.get(model)
        return (known.channel if known else None) or self.settings.default_channel


def load_config(directory: Path | str) -> Config:
    """Load and validate ``directory``; raise :class:`ConfigError` naming every problem."""
    root = Path(directory)
    problems: list[ConfigProblem] = []
    rules_dir = root / "rules"
    if not rules_dir.is_dir():
        raise ConfigError(
            [
                ConfigProblem(
                    str(rules_dir),
                    None,
                    "no rules/ directory here; point BOT_CONFIG_DIR at a folder holding rules/ and runbooks/",
                )
            ]
        )
    files = sorted([*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")])
    if not files:
        problems.append(ConfigProblem(str(rules_dir), None, "no *.yaml files; add at least one rules file"))
    parsed: list[tuple[str, RulesFile, LocatedDocument]] = []
    for path in files:
        shown = _shown(path, root)
        result = _parse_file(path, shown, problems)
        if result is not None:
            parsed.append((shown, *result))
    runbooks = _load_runbooks(root / "runbooks", root, problems)
    config = _assemble(root, parsed, runbooks, problems)
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _parse_file(path: Path, shown: str, problems: list[ConfigProblem]) -> tuple[RulesFile, LocatedDocument] | None:
    try:
        doc = load_located(path.read_text(encoding="utf-8"))
    except YamlProblem as exc:
        problems.append(ConfigProblem(shown, exc.line, str(exc)))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(ConfigProblem(shown, None, f"cannot read file: {exc}"))
        return None
    if not isinstance(doc.data, dict):
        problems.append(
            ConfigProblem(shown, 1, "the top level must be a mapping with keys such as rules:, models:, slos:")
        )
        return None
    try:
        return RulesFile.model_validate(doc.data), doc
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(_problem_from(error, shown, doc))
        return None


def _problem_from(error: Mapping[str, Any], shown: str, doc: LocatedDocument) -> ConfigProblem:
    loc = tuple(error["loc"])
    line = doc.line_of(loc)
    where = _describe_path(loc, doc.data)
    if error["type"] == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, known_keys(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; remove it"
        return ConfigProblem(shown, line, f"{where}: unknown key {key!r}{hint}")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return ConfigProblem(shown, line, f"{where}: required key is missing; add it")
    if not error["type"].startswith("value_error"):
        message = f"{message} (got {error.get('input')!r})"
    if isinstance(error.get("input"), str) and (glued := _GLUED_KEY.match(error["input"])):
        message += f"; a key needs a space after its colon ({glued[1]}: {glued[2]})"
    return ConfigProblem(shown, line, f"{where}: {message}")


def _describe_path(loc: tuple[Any, ...], data: Any) -> str:
    """``rules[2] (latency_spike).severity`` reads better than ``rules.2.severity``."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f" ({node['name']})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "file"


def _load_runbooks(folder: Path, root: Path, problems: list[ConfigProblem]) -> dict[str, Runbook]:
    runbooks: dict[str, Runbook] = {}
    if not folder.is_dir():
        return runbooks
    for path in sorted(folder.glob("*.md")):
        try:
            runbooks[path.stem] = Runbook(path.stem, path, path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(ConfigProblem(_shown(path, root), None, f"cannot read runbook: {exc}"))
    return runbooks


def _assemble(
    root: Path,
    parsed: list[tuple[str, RulesFile, LocatedDocument]],
    runbooks: dict[str, Runbook],
    problems: list[ConfigProblem],
) -> Config | None:
    singles: dict[str, tuple[str, Any]] = {}
    rules: dict[str, tuple[str, int, Rule, LocatedDocument]] = {}
    models: dict[str, Model] = {}
    slos: list[Slo] = []
    metrics: dict[str, MetricInfo] = {}
    escalation: dict[str, tuple[EscalationStep, ...]] = {}
    for shown, content, doc in parsed:
        for section in ("settings", "routing", "business_hours", "access", "prometheus", "alertmanager"):
            value = getattr(content, section)
            if value is None:
                continue
            if section in singles:
                problems.append(
                    ConfigProblem(
                        shown, doc.line_of((section,)), f"{section}: already set in {singles[section][0]}; keep one"
                    )
                )
            singles[section] = (shown, value)
        for index, rule in enumerate(content.rules):
            if rule.name in rules:
                problems.append(
                    ConfigProblem(
                        shown,
                        doc.line_of(("rules", index)),
                        f"rule {rule.name!r} is already defined in {rules[rule.name][0]}; rename one",
                    )
                )
            rules[rule.name] = (shown, index, rule, doc)
        for index, model in enumerate(content.models):
            if model.name in models:
                problems.append(
                    ConfigProblem(
                        shown, doc.line_of(("models", index)), f"model {model.name!r} is defined twice; keep one"
                    )
                )
            models[model.name] = model
        for name, steps in content.escalation.items():
            if name in escalation:
                problems.append(
                    ConfigProblem(
                        shown,
                        doc.line_of(("escalation", name)),
                        f"escalation policy {name!r} is defined twice; keep one",
                    )
                )
            escalation[name] = tuple(steps)
        metrics.update({m.name: m for m in content.metrics})
        slos.extend(content.slos)
        _check_runbook_names(shown, doc, content, runbooks, problems)
        _check_slo_models(shown, doc, content, models, parsed, problems)
        _check_model_policies(shown, doc, content, parsed, problems)
    known_metrics = _known_metric_names(parsed)
    _check_condition_names(rules.values(), known_metrics, models, problems)
    _check_condition_settings(rules.values(), known_metrics, models, problems)
    _check_template_fields(rules.values(), known_metrics, models, problems)
    _check_slo_labels(parsed, problems)
    _check_prometheus_models(parsed, models, singles.get("settings", ("", EngineSettings()))[1], problems)
    escalation.setdefault(DEFAULT_POLICY, SEED_ESCALATION)
    if problems:
        return None
    return Config(
        directory=root,
        settings=singles.get("settings", ("", EngineSettings()))[1],
        rules=tuple(entry[2] for entry in rules.values()),
        models=models,
        slos=tuple(slos),
        escalation=escalation,
        routing=singles.get("routing", ("", Routing()))[1],
        business_hours=singles.get("business_hours", ("", None))[1],
        access=singles.get("access", ("", Access()))[1],
        metrics=metrics,
        runbooks=runbooks,
        prometheus=singles.get("prometheus", ("", None))[1],
        alertmanager=singles.get("alertmanager", ("", AlertmanagerSection()))[1],
    )


def _check_runbook_names(
    shown: str, doc: LocatedDocument, content: RulesFile, runbooks: Mapping[str, Runbook], problems: list[ConfigProblem]
) -> None:
    named = [("rules", i, r.runbook) for i, r in enumerate(content.rules)]
    named += [("models", i, m.runbook) for i, m in enumerate(content.models)]
    for section, index, runbook in named:
        if runbook is not None and runbook not in runbooks:
            close = difflib.get_close_matches(runbook, runbooks, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"available: {', '.join(sorted(runbooks)) or 'none'}"
            problems.append(
                ConfigProblem(
                    shown,
                    doc.line_of((section, index, "runbook")),
                    f"{section}[{index}]: runbook {runbook!r} does not exist (no runbooks/{runbook}.md); {hint}",
                )
            )


def _all_models(parsed: Iterable[tuple[str, RulesFile, LocatedDocument]]) -> set[str]:
    return {m.name for _, content, _ in parsed for m in content.models}


def _check_slo_models(
    shown: str,
    doc: LocatedDocument,
    content: RulesFile,
    models: Mapping[str, Model],
    parsed: list[tuple[str, RulesFile, LocatedDocument]],
    problems: list[ConfigProblem],
) -> None:
    known = _all_models(parsed)
    for index, slo in enumerate(content.slos):
        if slo.model not in known:
            problems.append(
                ConfigProblem(
                    shown,
                    doc.line_of(("slos", index, "model")),
                    f"slos[{index}]: model {slo.model!r} is not defined under models:; add it or fix the name",
                )
            )


def _check_model_policies(
    shown: str,
    doc: LocatedDocument,
    content: RulesFile,
    parsed: list[tuple[str, RulesFile, LocatedDocument]],
    problems: list[ConfigProblem],
) -> None:
    policies = {name for _, c, _ in parsed for name in c.escalation} | {DEFAULT_POLICY}
    for index, model in enumerate(content.models):
        if model.escalation not in policies:
            problems.append(
                ConfigProblem(
                    shown,
                    doc.line_of(("models", index, "escalation")),
                    f"models[{index}] ({model.name}): escalation policy {model.escalation!r} "
                    f"is not defined; known: {', '.join(sorted(policies))}",
                )
            )


def _known_metric_names(parsed: Iterable[tuple[str, RulesFile, LocatedDocument]]) -> set[str]:
    """Every name a sample may arrive under: the ``metrics:`` catalogue, what Prometheus queries
    store, and what SLOs read (a ratio SLO's ``metric`` is only its label, not a sample)."""
    names: set[str] = set()
    for _, content, _ in parsed:
        names.update(m.name for m in content.metrics)
        if content.prometheus:
            names.update(query.metric for query in content.prometheus.queries)
        for slo in content.slos:
            read = (slo.good_metric, slo.total_metric) if slo.kind == "ratio" else (slo.metric,)
            names.update(name for name in read if name)
    return names


def _check_condition_names(
    rules: Iterable[tuple[str, int, Rule, LocatedDocument]],
    metrics: set[str],
    models: Mapping[str, Model],
    problems: list[ConfigProblem],
) -> None:
    """A condition naming something no sample and no model setting provides is always no data: the
    rule would load, run and never fire. Such a name is nearly always a typo (``p99_latncy_ms``).
    A windowed term (``avg_over_time(m, "1h")``) reads stored samples, so its ``m`` must be a metric."""
    known = metrics | {key for model in models.values() for key in model.settings}
    for shown, index, rule, doc in rules:
        unknown = [
            (
                name,
                known,
                f"{name!r} is no metric of the metrics: catalogue, no model setting and no metric source's metric",
            )
            for name in sorted(rule.condition.names - known)
        ]
        unknown += [
            (
                term.metric,
                metrics,
                f"{term.function} reads the stored samples of {term.metric!r}, which is no metric of the metrics: "
                "catalogue and no metric source's metric (a model setting has no samples)",
            )
            for term in rule.condition.windows
            if term.metric not in metrics
        ]
        for name, candidates, what in unknown:
            close = difflib.get_close_matches(name, candidates, n=3)
            guess = f"did you mean {' or '.join(map(repr, close))}? If" if close else "if"
            problems.append(
                ConfigProblem(
                    shown,
                    doc.line_of(("rules", index, "condition")),
                    f"rules[{index}] ({rule.name}).condition: {what}, so this rule would never fire; {guess} "
                    f"samples really arrive as {name}, declare it under metrics: (- name: {name})",
                )
            )


def _check_condition_settings(
    rules: Iterable[tuple[str, int, Rule, LocatedDocument]],
    metrics: set[str],
    models: Mapping[str, Model],
    problems: list[ConfigProblem],
) -> None:
    """A condition reading a model setting never fires for a model of the rule that lacks it, which
    is how a setting misspelt on one model (``baseline_acuracy: 0.90``) hides."""
    settings = {key for model in models.values() for key in model.settings}
    for shown, index, rule, doc in rules:
        for name in sorted((rule.condition.names & settings) - metrics):
            lacking = [m for m in sorted(models) if rule.applies_to(m) and name not in models[m].settings]
            if not lacking:
                continue
            close = difflib.get_close_matches(name, models[lacking[0]].settings, n=1)
            typo = f" ({lacking[0]} has {close[0]!r}: a typo?)" if close else ""
            problems.append(
                ConfigProblem(
                    shown,
                    doc.line_of(("rules", index, "condition")),
                    f"rules[{index}] ({rule.name}).condition: model setting {name!r} is not set on "
                    f"{', '.join(lacking)}{typo}, so this rule would never fire there; set it on the model, "
                    f"narrow the rule's models:, or if samples arrive as {name}, declare it under metrics:",
                )
            )


def _check_template_fields(
    rules: Iterable[tuple[str, int, Rule, LocatedDocument]],
    metrics: set[str],
    models: Mapping[str, Model],
    problems: list[ConfigProblem],
) -> None:
    known = set(BUILTIN_FIELDS) | metrics | {key for model in models.values() for key in model.settings}
    for shown, index, rule, doc in rules:
        allowed = known | set(rule.labels) | {term.name for term in rule.condition.windows}
        for part in ("title", "description"):
            for name in sorted(getattr(rule, part).fields - allowed):
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f"did you mean {{{close[0]}}}?" if close else "declare it under metrics:"
                problems.append(
                    ConfigProblem(
                        shown,
                        doc.line_of(("rules", index, part)),
                        f"rules[{index}] ({rule.name}).{part}: field {{{name}}} names no metric; {hint}",
                    )
                )


def _check_prometheus_models(
    parsed: list[tuple[str, RulesFile, LocatedDocument]],
    models: Mapping[str, Model],
    settings: EngineSettings,
    problems: list[ConfigProblem],
) -> None:
    """A pulled metric for a model nobody configured would be stored and never evaluated."""
    if settings.accept_unknown_models:
        return
    for shown, content, doc in parsed:
        for index, query in enumerate(content.prometheus.queries if content.prometheus else []):
            if query.model != ANY_MODEL and query.model not in models:
                problems.append(
                    ConfigProblem(
                        shown,
                        doc.line_of(("prometheus", "queries", index, "model")),
                        f"prometheus.queries[{index}]: model {query.model!r} is not defined under models:; "
                        'add it, fix the name, or use "*" with a model label',
                    )
                )


def _check_slo_labels(parsed: list[tuple[str, RulesFile, LocatedDocument]], problems: list[ConfigProblem]) -> None:
    """Two SLOs of one model with one label would share an alert (``slo:<label>:<model>``) and a
    dashboard row, each hiding the other."""
    seen: dict[tuple[str, str], str] = {}
    for shown, content, doc in parsed:
        for index, slo in enumerate(content.slos):
            label = slo.name or slo.metric
            first = seen.setdefault((slo.model, label), f"{shown} slos[{index}]")
            if first != f"{shown} slos[{index}]":
                problems.append(
                    ConfigProblem(
                        shown,
                        doc.line_of(("slos", index)),
                        f"slos[{index}]: {slo.model} already has an SLO labelled {label!r} ({first}); "
                        "give one a distinct name:",
                    )
                )
