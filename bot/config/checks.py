"""The checks that need the whole configuration, not one file: names that must exist elsewhere
(runbooks, models, escalation policies, metrics, template fields) and labels that must be distinct.

Each appends :class:`~bot.errors.ConfigProblem` values, with the file and line, so a load reports
every problem at once (:func:`bot.config.loader.load_config`); a check never raises.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from bot.config.runbooks import Runbook
from bot.config.schema import EngineSettings, Model, Rule, RulesFile
from bot.config.source_schema import ANY_MODEL
from bot.config.yaml_lines import LocatedDocument
from bot.errors import ConfigProblem

BUILTIN_FIELDS = frozenset({"model", "rule", "severity"})
DEFAULT_POLICY = "default"

Parsed = list[tuple[str, RulesFile, LocatedDocument]]
"""Each file that parsed: its name as shown in problems, its content, its lines."""

RuleEntry = tuple[str, int, Rule, LocatedDocument]
"""A rule with the file it is in, its index there, and the file's lines."""


def check_runbook_names(
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


def all_models(parsed: Iterable[tuple[str, RulesFile, LocatedDocument]]) -> set[str]:
    return {m.name for _, content, _ in parsed for m in content.models}


def check_references(
    shown: str,
    doc: LocatedDocument,
    content: RulesFile,
    parsed: Parsed,
    problems: list[ConfigProblem],
) -> None:
    """The names this file uses that another file may define: an SLO's model and a model's
    escalation policy. One check for both, since both are "defined anywhere in the configuration"."""
    models = all_models(parsed)
    for index, slo in enumerate(content.slos):
        if slo.model not in models:
            message = f"slos[{index}]: model {slo.model!r} is not defined under models:; add it or fix the name"
            problems.append(ConfigProblem(shown, doc.line_of(("slos", index, "model")), message))
    policies = {name for _, c, _ in parsed for name in c.escalation} | {DEFAULT_POLICY}
    for index, model in enumerate(content.models):
        if model.escalation not in policies:
            message = (
                f"models[{index}] ({model.name}): escalation policy {model.escalation!r} "
                f"is not defined; known: {', '.join(sorted(policies))}"
            )
            problems.append(ConfigProblem(shown, doc.line_of(("models", index, "escalation")), message))


def known_metric_names(parsed: Iterable[tuple[str, RulesFile, LocatedDocument]]) -> set[str]:
    """Every name a sample may arrive under: the ``metrics:`` catalogue, what Prometheus queries
    store, and what SLOs read (a ratio or quotient SLO's ``metric`` is only its label, not a sample)."""
    names: set[str] = set()
    for _, content, _ in parsed:
        names.update(m.name for m in content.metrics)
        if content.prometheus:
            names.update(query.metric for query in content.prometheus.queries)
        for slo in content.slos:
            counts = (slo.good_metric, slo.bad_metric, slo.total_metric, slo.numerator_metric, slo.denominator_metric)
            read = counts if slo.kind != "threshold" else (slo.metric,)
            names.update(name for name in read if name)
    return names


def check_condition_names(
    rules: Iterable[RuleEntry],
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


def check_condition_settings(
    rules: Iterable[RuleEntry],
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


def check_template_fields(
    rules: Iterable[RuleEntry],
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


def check_prometheus_models(
    parsed: Parsed,
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


def check_slo_labels(parsed: Parsed, problems: list[ConfigProblem]) -> None:
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
