"""Loading a configuration directory (``rules/*.yaml`` + ``runbooks/*.md``) into a :class:`Config`.

Loading is all-or-nothing: every file is parsed and validated, every problem found is
collected with its file and line, and only a configuration with no problem at all is returned.
A running bot keeps its old configuration when a reload fails (SPEC §3).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config import checks
from bot.config.alert_names import absence_rule, slo_rule, watched_rule
from bot.config.checks import DEFAULT_POLICY, Parsed, RuleEntry
from bot.config.routing_schema import BusinessHours, EscalationStep, Routing
from bot.config.runbooks import Runbook
from bot.config.schema import Access, EngineSettings, MetricInfo, Model, Rule, RulesFile, known_keys
from bot.config.slo_schema import Slo
from bot.config.source_schema import AlertmanagerSection, PrometheusSection
from bot.config.webhook_schema import Webhook
from bot.config.yaml_lines import LocatedDocument, YamlProblem, load_located
from bot.errors import ConfigError, ConfigProblem
from bot.severity import Severity

_GLUED_KEY = re.compile(r"^([a-z_][a-z0-9_]*):(\S.*)$")
"""``stale_after:15m`` is one word to YAML, so a mapping expected there gets a string."""
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
    webhooks: tuple[Webhook, ...] = ()
    _rules_by_model: dict[str, tuple[Rule, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _rule_sets: dict[tuple[str, ...], tuple[Rule, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _settings_by_model: dict[str, dict[str, float | str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def secret_values(self) -> list[str]:
        """Secrets the configuration holds (webhook secrets and URLs, which may embed a token), for
        the log to redact (:func:`bot.logs.redact_also`)."""
        return [value for hook in self.webhooks for value in (hook.secret.get_secret_value(), hook.url)]

    def rule(self, name: str) -> Rule | None:
        """The configured rule ``name``; for an ``absent:<rule>`` alert, the rule it watches, whose
        channel and runbook it shares (:mod:`bot.config.choices`)."""
        wanted = watched_rule(name) or name
        return next((r for r in self.rules if r.name == wanted), None)

    def alert_rules(self) -> list[str]:
        """Every rule name an alert of this configuration can carry (:mod:`bot.config.alert_names`):
        the rules, their ``absent:<rule>`` companions and each SLO's ``slo:<label>``."""
        names = [r.name for r in self.rules]
        names += [absence_rule(r.name) for r in self.rules if r.absent_after is not None]
        names += [slo_rule(slo.name or slo.metric) for slo in self.slos]
        return sorted(set(names))

    def rules_for(self, model: str) -> tuple[Rule, ...]:
        """The rules whose ``models:`` patterns match ``model``. Kept per model for this configuration's
        life: every pass asks for every model, and matching each pattern again cost a quarter of a
        10,000-model pass."""
        found = self._rules_by_model.get(model)
        if found is None:
            matching = tuple(r for r in self.rules if r.applies_to(model))
            # one tuple per distinct set of rules, not one per model: most models share theirs
            key = tuple(rule.name for rule in matching)  # rule names are unique
            found = self._rules_by_model[model] = self._rule_sets.setdefault(key, matching)
        return found

    def setting_values(self, model: str) -> Mapping[str, float | str]:
        """The settings of ``model`` as a condition or template reads them: numbers as floats, text
        as it is (none for a model nobody configured). Kept per model for this configuration's life,
        as :meth:`rules_for` is: a pass asks for every model, and dumping each model's settings
        again cost a tenth of a 10,000-model pass."""
        found = self._settings_by_model.get(model)
        if found is None:
            known = self.models.get(model)
            found = {}
            for key, setting in (known.settings if known is not None else {}).items():
                if isinstance(setting, int | float) and not isinstance(setting, bool):
                    found[key] = float(setting)
                elif isinstance(setting, str):
                    found[key] = setting
            self._settings_by_model[model] = found
        return found


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
    parsed: Parsed = []
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


@dataclass
class _Merged:
    """The files' sections put together, each name once (a second definition is a problem)."""

    singles: dict[str, tuple[str, Any]] = field(default_factory=dict)
    rules: dict[str, RuleEntry] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    slos: list[Slo] = field(default_factory=list)
    metrics: dict[str, MetricInfo] = field(default_factory=dict)
    escalation: dict[str, tuple[EscalationStep, ...]] = field(default_factory=dict)

    def single(self, section: str, default: Any) -> Any:
        """The one value of a section a single file may set, or ``default``."""
        return self.singles.get(section, ("", default))[1]


SINGLE_SECTIONS = ("settings", "routing", "business_hours", "access", "prometheus", "alertmanager")


def _merge(parsed: Parsed, runbooks: Mapping[str, Runbook], problems: list[ConfigProblem]) -> _Merged:
    """Put the files together, checking each file's names against the others as it is added."""
    merged = _Merged()
    for shown, content, doc in parsed:
        twice = partial(_problem_at, problems, shown, doc)
        for section in SINGLE_SECTIONS:
            value = getattr(content, section)
            if value is not None and section in merged.singles:
                twice((section,), f"{section}: already set in {merged.singles[section][0]}; keep one")
            if value is not None:
                merged.singles[section] = (shown, value)
        for index, rule in enumerate(content.rules):
            if rule.name in merged.rules:
                where = merged.rules[rule.name][0]
                twice(("rules", index), f"rule {rule.name!r} is already defined in {where}; rename one")
            merged.rules[rule.name] = (shown, index, rule, doc)
        for index, model in enumerate(content.models):
            if model.name in merged.models:
                twice(("models", index), f"model {model.name!r} is defined twice; keep one")
            merged.models[model.name] = model
        for name, steps in content.escalation.items():
            if name in merged.escalation:
                twice(("escalation", name), f"escalation policy {name!r} is defined twice; keep one")
            merged.escalation[name] = tuple(steps)
        merged.metrics.update({m.name: m for m in content.metrics})
        merged.slos.extend(content.slos)
        checks.check_runbook_names(shown, doc, content, runbooks, problems)
        checks.check_references(shown, doc, content, parsed, problems)
    return merged


def _problem_at(
    problems: list[ConfigProblem], shown: str, doc: LocatedDocument, where: tuple[str | int, ...], message: str
) -> None:
    problems.append(ConfigProblem(shown, doc.line_of(where), message))


def _check(parsed: Parsed, merged: _Merged, problems: list[ConfigProblem]) -> None:
    """The checks that need every file merged first (:mod:`bot.config.checks`)."""
    known_metrics = checks.known_metric_names(parsed)
    checks.check_condition_names(merged.rules.values(), known_metrics, merged.models, problems)
    checks.check_condition_settings(merged.rules.values(), known_metrics, merged.models, problems)
    checks.check_template_fields(merged.rules.values(), known_metrics, merged.models, problems)
    checks.check_slo_labels(parsed, problems)
    checks.check_prometheus_models(parsed, merged.models, merged.single("settings", EngineSettings()), problems)


def _assemble(root: Path, parsed: Parsed, runbooks: dict[str, Runbook], problems: list[ConfigProblem]) -> Config | None:
    merged = _merge(parsed, runbooks, problems)
    _check(parsed, merged, problems)
    webhooks = _webhooks(parsed, problems)
    merged.escalation.setdefault(DEFAULT_POLICY, SEED_ESCALATION)
    if problems:
        return None
    return Config(
        directory=root,
        settings=merged.single("settings", EngineSettings()),
        rules=tuple(entry[2] for entry in merged.rules.values()),
        models=merged.models,
        slos=tuple(merged.slos),
        escalation=merged.escalation,
        routing=merged.single("routing", Routing()),
        business_hours=merged.single("business_hours", None),
        access=merged.single("access", Access()),
        metrics=merged.metrics,
        runbooks=runbooks,
        prometheus=merged.single("prometheus", None),
        alertmanager=merged.single("alertmanager", AlertmanagerSection()),
        webhooks=webhooks,
    )


def _webhooks(parsed: Parsed, problems: list[ConfigProblem]) -> tuple[Webhook, ...]:
    """Every file's ``webhooks:``; a name is a delivery channel, so two webhooks may not share one."""
    seen: dict[str, str] = {}
    for shown, content, doc in parsed:
        for index, hook in enumerate(content.webhooks):
            if hook.name in seen:
                problems.append(
                    ConfigProblem(
                        shown,
                        doc.line_of(("webhooks", index)),
                        f"webhooks[{index}]: the name {hook.name!r} is already used ({seen[hook.name]}); "
                        "give each webhook a distinct name:",
                    )
                )
            seen.setdefault(hook.name, f"{shown} webhooks[{index}]")
    return tuple(hook for _, content, _ in parsed for hook in content.webhooks)
