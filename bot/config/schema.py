"""The shape of ``rules/*.yaml``: the contract users write against (SPEC §3).

Every model forbids unknown keys, so a typo such as ``sevrity:`` is an error with a suggestion
rather than a silently ignored line. Conditions and templates are compiled here, at load, so a
bad one never reaches the evaluation loop.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from datetime import time, timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from bot.config.conditions import Condition
from bot.config.durations import parse_duration
from bot.config.email_schema import EmailAddress, Reports
from bot.config.link_schema import Link
from bot.config.source_schema import AlertmanagerSection, PrometheusSection, section_keys
from bot.config.templates import Template
from bot.config.webhook_schema import Webhook
from bot.severity import Severity

Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(str)]
ConditionField = Annotated[Condition, BeforeValidator(lambda v: v if isinstance(v, Condition) else Condition(v))]
TemplateField = Annotated[Template, BeforeValidator(lambda v: v if isinstance(v, Template) else Template(v))]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)]
ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)]
Channel = Annotated[str, Field(pattern=r"^(#[a-z0-9][a-z0-9._-]*|[CGD][A-Z0-9]{6,})$")]
Scalar = str | int | float | bool
NoDataChoice = Literal["keep", "resolve"]
GroupLabel = Literal["model", "rule"]


def _severity(value: object) -> object:
    if isinstance(value, str) and value.upper() in Severity.__members__:
        return value.upper()
    if isinstance(value, str | int):
        raise ValueError(f"unknown severity {value!r}; use one of P0, P1, P2, P3 (P0 is the most severe)")
    return value


SeverityField = Annotated[Severity, BeforeValidator(_severity)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class EngineSettings(Strict):
    evaluation_interval: Duration = timedelta(seconds=30)
    group_wait: Duration = timedelta(seconds=10)
    group_interval: Duration = timedelta(minutes=5)
    stale_after: Duration = timedelta(minutes=15)
    """A sample older than this is no data: a dead exporter must not look healthy forever (the
    lookback of Prometheus, 5m there)."""
    no_data: NoDataChoice = "keep"
    """What a firing alert does while its series is silent: ``keep`` firing, or ``resolve``."""
    keep_firing_for: Duration = timedelta(0)
    """The default hysteresis of every rule (see :attr:`Rule.keep_firing_for`)."""
    group_by: list[GroupLabel] = Field(default_factory=lambda: list[GroupLabel](["model"]))
    """The labels whose alerts make one incident (with the channel they are told in): ``[model]``,
    ``[rule]``, ``[model, rule]`` or ``[]`` (everything in a channel)."""
    storm_threshold: int = Field(default=10, ge=1)
    """More new incidents than this of one rule in one channel within ``group_wait`` fold into one
    storm incident."""
    accept_unknown_models: bool = False
    default_channel: Channel = "#ml-alerts"
    sample_retention: Duration | None = None
    """Keep stored samples at least this long (e.g. ``30d``, so ``/slo status … 30d`` has its data);
    by default they are kept as long as the rules' windows and the SLOs need, plus a margin."""

    @field_validator("group_by")
    @classmethod
    def _distinct_labels(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"group_by {value} names a label twice; use [model], [rule], [model, rule] or []")
        return value

    @field_validator("evaluation_interval")
    @classmethod
    def _at_least_a_second(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("evaluation_interval must be at least 1s")
        return value


ABSENT_RULE_NAME_MAX = 93
"""Rule names fit a 100-character column; an absence alert's ``absent:<rule>`` adds seven."""


class Rule(Strict):
    name: Identifier
    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    condition: ConditionField
    for_: Duration = Field(default=timedelta(0), alias="for")
    severity: SeverityField
    title: TemplateField
    description: TemplateField = Template("")
    cooldown: Duration = timedelta(minutes=30)
    keep_firing_for: Duration | None = None
    """A firing alert whose condition clears for less than this does not resolve (Prometheus'
    ``keep_firing_for``); default ``settings.keep_firing_for``."""
    no_data: NoDataChoice | None = None
    """Default ``settings.no_data``."""
    runbook: str | None = None
    channel: Channel | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    links: list[Link] = Field(default_factory=list)  # buttons on its alerts and pages (bot.notify.links)
    email: list[EmailAddress] = Field(default_factory=list)  # also emailed about its incidents (routing.email)
    absent_after: Duration | None = None
    """Alert when a metric the rule reads has had no sample this long (:mod:`bot.evaluation.absence`)."""
    absent_severity: SeverityField = Severity.P2
    """The severity of that alert: P2, as an SLO's absent-metric alert, unless the rule says otherwise."""

    @model_validator(mode="after")
    def _absence_fits(self) -> Rule:
        if self.absent_after is None:
            return self
        if self.absent_after <= timedelta(0):
            raise ValueError("absent_after must be positive, e.g. 15m")
        if len(self.name) > ABSENT_RULE_NAME_MAX:
            raise ValueError(
                f"a rule with absent_after needs a name of at most {ABSENT_RULE_NAME_MAX} characters "
                "(its alert is named absent:<rule>); shorten the name"
            )
        return self

    def applies_to(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


class Model(Strict):
    """A monitored model. Keys beyond the named ones are free-form settings: they feed
    conditions (``baseline_accuracy``) and runbook fields (``{rollback_command}``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: ModelName
    channel: Channel | None = None
    team: str | None = None
    endpoint: str | None = None
    dashboard: str | None = None
    runbook: str | None = None
    escalation: str = "default"
    email: list[EmailAddress] = Field(default_factory=list)  # emailed about its incidents (routing.email)
    links: list[Link] = Field(default_factory=list)  # buttons on its alerts and pages (bot.notify.links)

    @model_validator(mode="after")
    def _settings_are_scalars(self) -> Model:
        for key, value in (self.model_extra or {}).items():
            if not re.match(r"^[a-z][a-z0-9_]*$", key):
                raise ValueError(f"setting {key!r}: names are lower_snake_case")
            if not isinstance(value, Scalar):
                close = difflib.get_close_matches(key, type(self).model_fields, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"setting {key!r} must be a number or text, not {type(value).__name__}{hint}")
        return self

    @property
    def settings(self) -> dict[str, Scalar]:
        """Every key of the model as a flat mapping, for templates and conditions."""
        named = {k: v for k, v in self.model_dump(exclude={"escalation", "email", "links"}).items() if v is not None}
        return named


class Objective(Strict):
    direction: Literal["below", "above"]
    target: float


def _objective(value: object) -> object:
    if isinstance(value, str):
        match = re.match(r"^\s*(below|above)\s+\$?(-?[0-9.]+(?:e-?\d+)?)\s*(%?)\s*$", value)
        if not match:
            raise ValueError(
                f"objective {value!r} must read 'below <number>' or 'above <number>' ('below 1%', 'below $0.05')"
            )
        target = float(match.group(2)) / (100.0 if match.group(3) else 1.0)
        return {"direction": match.group(1), "target": target}
    return value


SLO_LABEL_MAX = 96
"""An SLO's alerts carry the rule name ``slo:<label>``, stored in a 100-character column."""


class Slo(Strict):
    """One SLO (seed 000). ``kind: threshold`` (default) holds ``metric`` to its objective over
    time; ``kind: ratio`` divides two per-interval counts, ``good_metric / total_metric`` (above
    its objective) or ``bad_metric / total_metric`` (an error rate, below it); ``kind: quotient``
    holds ``numerator_metric / denominator_metric`` per interval (cost per query) to its objective
    over time. For the last two ``metric`` is only the SLI's label (default ``<good or bad or
    numerator>_per_<denominator>``). Keys left out take the defaults of :mod:`bot.slo.spec` (``None``
    here means "the default")."""

    model: ModelName
    metric: Identifier
    objective: Annotated[Objective, BeforeValidator(_objective)]
    warning: float
    critical: float
    window: Duration = timedelta(days=7)
    name: str | None = None
    kind: Literal["threshold", "ratio", "quotient"] = "threshold"
    good_metric: Identifier | None = None
    bad_metric: Identifier | None = None
    total_metric: Identifier | None = None
    numerator_metric: Identifier | None = None
    denominator_metric: Identifier | None = None
    target_compliance: float | None = None
    """Threshold SLOs: the share of the window the objective must hold (default 0.99)."""
    min_events: int | None = Field(default=None, ge=0)
    """Ratio SLOs: no burn alert on fewer events than this in the long window (default 100)."""
    min_coverage: float | None = None
    """Threshold SLOs: no burn alert on a long window with data for less than this share (default 0.5)."""
    absent_after: Duration | None = None
    """Alert when the SLI's metric has had no sample this long (default: ``settings.stale_after``)."""
    burn_alerts: bool = True

    @model_validator(mode="before")
    @classmethod
    def _ratio_label(cls, data: object) -> object:
        """A ratio or quotient SLO needs no ``metric:``: its label defaults to ``<good or bad
        metric>_ratio`` or ``<numerator>_per_<denominator>``."""
        if isinstance(data, dict) and data.get("kind") in ("ratio", "quotient") and "metric" not in data:
            first = data.get("good_metric") or data.get("bad_metric") or data.get("numerator_metric")
            denominator = data.get("denominator_metric")
            if isinstance(first, str):
                label = f"{first}_per_{denominator}" if isinstance(denominator, str) else f"{first}_ratio"
                return {**data, "metric": label}
        return data

    @model_validator(mode="after")
    def _kind_keys(self) -> Slo:
        given = {
            key
            for key in ("good_metric", "bad_metric", "total_metric", "numerator_metric", "denominator_metric")
            if getattr(self, key)
        }
        problem = _kind_problem(self.kind, given, self.objective)
        if problem is not None:
            raise ValueError(problem)
        if self.kind == "ratio" and (self.target_compliance is not None or self.min_coverage is not None):
            raise ValueError(
                "target_compliance and min_coverage apply to threshold and quotient SLOs; a ratio SLO's objective "
                "is its target and min_events its traffic guard: remove them"
            )
        if self.kind != "ratio" and self.min_events is not None:
            raise ValueError("min_events applies to kind: ratio; for a threshold or quotient SLO use min_coverage")
        if self.target_compliance is not None and not 0.0 < self.target_compliance < 1.0:
            raise ValueError(
                f"target_compliance must lie strictly between 0 and 1, e.g. 0.99 for 99% of the time "
                f"(got {self.target_compliance:g})"
            )
        if self.min_coverage is not None and not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(f"min_coverage must lie between 0 and 1, e.g. 0.5 (got {self.min_coverage:g})")
        if self.window <= timedelta(0):
            raise ValueError("window must be positive, e.g. 7d, 28d or 30d")
        if self.absent_after is not None and self.absent_after <= timedelta(0):
            raise ValueError("absent_after must be positive, e.g. 15m")
        if len(self.name or self.metric) > SLO_LABEL_MAX:
            raise ValueError(f"the SLO's label is too long; give it a name: of at most {SLO_LABEL_MAX} characters")
        return self

    @model_validator(mode="after")
    def _levels_in_order(self) -> Slo:
        target = self.objective.target
        ordered = (
            target <= self.warning <= self.critical
            if self.objective.direction == "below"
            else target >= self.warning >= self.critical
        )
        if not ordered:
            word = "above" if self.objective.direction == "below" else "below"
            raise ValueError(
                f"for an objective '{self.objective.direction} {target:g}', warning and critical "
                f"must lie {word} the target, critical furthest (got warning {self.warning:g}, "
                f"critical {self.critical:g})"
            )
        return self


_KIND_METRICS: dict[str, tuple[frozenset[str], ...]] = {
    "threshold": (frozenset(),),
    "ratio": (frozenset({"good_metric", "total_metric"}), frozenset({"bad_metric", "total_metric"})),
    "quotient": (frozenset({"numerator_metric", "denominator_metric"}),),
}
_KIND_HINTS = {
    "threshold": "a threshold SLO reads metric: alone; for counts add kind: ratio or kind: quotient",
    "ratio": "a ratio SLO needs total_metric: and one of good_metric: (successes) or bad_metric: (errors), "
    "counts per push such as responses_ok and responses_total",
    "quotient": "a quotient SLO needs numerator_metric: and denominator_metric:, e.g. cost_usd and queries per push",
}


def _kind_problem(kind: str, given: set[str], objective: Objective) -> str | None:
    """What is wrong with an SLO's metric keys and objective for its ``kind``, or None."""
    if frozenset(given) not in _KIND_METRICS[kind]:
        return _KIND_HINTS[kind] + f" (got {', '.join(sorted(given)) or 'none of them'})"
    if kind != "ratio":
        return None
    wanted = "below" if "bad_metric" in given else "above"
    if objective.direction != wanted or not 0.0 < objective.target < 1.0:
        share = "'below 0.01' (or 'below 1%'): the share of bad events" if wanted == "below" else (
            "'above 0.995': the share of good events"
        )
        return f"this ratio SLO's objective reads {share} (got '{objective.direction} {objective.target:g}')"
    return None


class EscalationStep(Strict):
    after: Duration
    severity: SeverityField
    mention: str | None = None
    pagerduty_routing_key: str | None = None


class Routing(Strict):
    page: list[SeverityField] = Field(default_factory=lambda: [Severity.P0, Severity.P1])
    quiet_channel: Channel | None = None
    email: list[SeverityField] = Field(default_factory=lambda: [Severity.P3])  # emailed incidents (seed 001: P3)
    reports: Reports = Field(default_factory=Reports)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WORKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")


class BusinessHours(Strict):
    timezone: str
    days: list[Weekday] = Field(default_factory=lambda: list(WORKDAYS))
    start: time = time(9, 0)
    end: time = time(18, 0)
    holidays: str | None = None
    """A country code for the ``holidays`` library, e.g. ``US`` or ``DE``."""
    outside: Literal["quiet_channel", "next_morning"] = "next_morning"

    @model_validator(mode="after")
    def _start_before_end(self) -> BusinessHours:
        if self.start >= self.end:
            raise ValueError(
                f"business hours must start before they end (got {self.start:%H:%M}–{self.end:%H:%M}); "
                "hours that span midnight are not supported"
            )
        return self

    @field_validator("holidays")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        import holidays

        if value is not None and value.upper() not in holidays.list_supported_countries():
            raise ValueError(f"unknown holiday calendar {value!r}; use a country code such as US, DE or GB")
        return value.upper() if value else value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from None
        return value


class Access(Strict):
    """Who may acknowledge, resolve or silence from Slack."""

    allow: Literal["anyone", "channel_members", "usergroup"] = "anyone"
    usergroup: str | None = None
    """A Slack user group ID (``S0123ABC``) when ``allow: usergroup``."""

    @model_validator(mode="after")
    def _usergroup_named(self) -> Access:
        if self.allow == "usergroup" and not self.usergroup:
            raise ValueError("allow: usergroup needs usergroup: <Slack user group ID, e.g. S0123ABC>")
        return self


class MetricInfo(Strict):
    name: Identifier
    description: str = ""
    unit: str = ""


class RulesFile(Strict):
    """One ``rules/*.yaml`` file. Lists merge across files; single sections may appear once."""

    settings: EngineSettings | None = None
    metrics: list[MetricInfo] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    models: list[Model] = Field(default_factory=list)
    slos: list[Slo] = Field(default_factory=list)
    escalation: dict[Identifier, list[EscalationStep]] = Field(default_factory=dict)
    routing: Routing | None = None
    business_hours: BusinessHours | None = None
    access: Access | None = None
    prometheus: PrometheusSection | None = None
    alertmanager: AlertmanagerSection | None = None
    webhooks: list[Webhook] = Field(default_factory=list)

    @field_validator("escalation")
    @classmethod
    def _steps_climb(cls, value: dict[str, list[EscalationStep]]) -> dict[str, list[EscalationStep]]:
        for name, steps in value.items():
            afters = [s.after for s in steps]
            if afters != sorted(afters):
                raise ValueError(f"escalation policy {name!r}: steps must be in order of 'after'")
        return value


def known_keys() -> frozenset[str]:
    """Every key the schema accepts anywhere, for "did you mean" suggestions."""
    models: list[type[BaseModel]] = [
        EngineSettings,
        Rule,
        Model,
        Slo,
        EscalationStep,
        Routing,
        Reports,
        BusinessHours,
        MetricInfo,
        RulesFile,
        Webhook,
    ]
    return frozenset(f.alias or name for m in models for name, f in m.model_fields.items()) | section_keys()
