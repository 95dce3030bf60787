"""The shape of ``rules/*.yaml``: the contract users write against (SPEC §3).

Every model forbids unknown keys, so a typo such as ``sevrity:`` is an error with a suggestion
rather than a silently ignored line. Conditions and templates are compiled here, at load, so a
bad one never reaches the evaluation loop.
"""

from __future__ import annotations

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
from bot.config.templates import Template
from bot.severity import Severity
from bot.sources.schema import AlertmanagerSection, PrometheusSection, section_keys

Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(str)]
ConditionField = Annotated[Condition, BeforeValidator(lambda v: v if isinstance(v, Condition) else Condition(v))]
TemplateField = Annotated[Template, BeforeValidator(lambda v: v if isinstance(v, Template) else Template(v))]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)]
ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)]
Channel = Annotated[str, Field(pattern=r"^(#[a-z0-9][a-z0-9._-]*|[CGD][A-Z0-9]{6,})$")]
Scalar = str | int | float | bool


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
    """A sample older than this is no data: a dead exporter must not look healthy forever."""
    accept_unknown_models: bool = False
    default_channel: Channel = "#ml-alerts"

    @field_validator("evaluation_interval")
    @classmethod
    def _at_least_a_second(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("evaluation_interval must be at least 1s")
        return value


class Rule(Strict):
    name: Identifier
    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    condition: ConditionField
    for_: Duration = Field(default=timedelta(0), alias="for")
    severity: SeverityField
    title: TemplateField
    description: TemplateField = Template("")
    cooldown: Duration = timedelta(minutes=30)
    runbook: str | None = None
    channel: Channel | None = None
    labels: dict[str, str] = Field(default_factory=dict)

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

    @model_validator(mode="after")
    def _settings_are_scalars(self) -> Model:
        for key, value in (self.model_extra or {}).items():
            if not re.match(r"^[a-z][a-z0-9_]*$", key):
                raise ValueError(f"setting {key!r}: names are lower_snake_case")
            if not isinstance(value, Scalar):
                raise ValueError(f"setting {key!r} must be a number or text, not {type(value).__name__}")
        return self

    @property
    def settings(self) -> dict[str, Scalar]:
        """Every key of the model as a flat mapping, for templates and conditions."""
        named = {k: v for k, v in self.model_dump(exclude={"escalation"}).items() if v is not None}
        return named


class Objective(Strict):
    direction: Literal["below", "above"]
    target: float


def _objective(value: object) -> object:
    if isinstance(value, str):
        match = re.match(r"^\s*(below|above)\s+(-?[0-9.]+(?:e-?\d+)?)\s*$", value)
        if not match:
            raise ValueError(f"objective {value!r} must read 'below <number>' or 'above <number>'")
        return {"direction": match.group(1), "target": float(match.group(2))}
    return value


class Slo(Strict):
    model: ModelName
    metric: Identifier
    objective: Annotated[Objective, BeforeValidator(_objective)]
    warning: float
    critical: float
    window: Duration = timedelta(days=7)
    name: str | None = None

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


class EscalationStep(Strict):
    after: Duration
    severity: SeverityField
    mention: str | None = None
    pagerduty_routing_key: str | None = None


class Routing(Strict):
    page: list[SeverityField] = Field(default_factory=lambda: [Severity.P0, Severity.P1])
    quiet_channel: Channel | None = None


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
        BusinessHours,
        MetricInfo,
        RulesFile,
    ]
    return frozenset(f.alias or name for m in models for name, f in m.model_fields.items()) | section_keys()
