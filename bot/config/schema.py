"""The shape of ``rules/*.yaml``: the contract users write against (SPEC §3).

Every model forbids unknown keys, so a typo such as ``sevrity:`` is an error with a suggestion
rather than a silently ignored line. Conditions and templates are compiled here, at load, so a
bad one never reaches the evaluation loop.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from bot.config.conditions import Condition
from bot.config.email_schema import EmailAddress, Reports
from bot.config.fields import Channel, Duration, Identifier, ModelName, SeverityField, Strict, at_least_a_second
from bot.config.link_schema import Link
from bot.config.routing_schema import BusinessHours, EscalationStep, Routing
from bot.config.slo_schema import Slo
from bot.config.source_schema import AlertmanagerSection, PrometheusSection, section_keys
from bot.config.templates import Template
from bot.config.webhook_schema import Webhook
from bot.severity import Severity

ConditionField = Annotated[Condition, BeforeValidator(lambda v: v if isinstance(v, Condition) else Condition(v))]
TemplateField = Annotated[Template, BeforeValidator(lambda v: v if isinstance(v, Template) else Template(v))]
Scalar = str | int | float | bool
NoDataChoice = Literal["keep", "resolve"]
GroupLabel = Literal["model", "rule"]


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
    change_window: Duration = timedelta(hours=2)
    """An incident's message shows the changes (``POST /api/v1/changes``) made to its models this
    long before it opened: "did something ship?" is the first question."""
    incident_channel_prefix: str = Field(default="inc-", pattern=r"^[a-z0-9_-]{0,20}$")
    """A declared incident's room is named this + date + model + rule (``inc-2026-12-04-fraud-v2-…``)."""
    incident_channel_private: bool = False
    resolution_note_required: list[SeverityField] = Field(default_factory=list)
    """Resolving an incident of these severities from Slack asks for its cause and fix first."""
    thread_updates: Literal["all", "state_changes", "none"] = "all"
    """What the alert thread says: every change, only state changes (fired, acknowledged,
    resolved; not escalation steps, joins or updates), or nothing (the root message still updates)."""
    ack_reminder: Duration | None = None
    """An acknowledged incident quiet this long gets "Still on it?"; unanswered as long again, it is released."""

    @field_validator("group_by")
    @classmethod
    def _distinct_labels(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"group_by {value} names a label twice; use [model], [rule], [model, rule] or []")
        return value

    @field_validator("evaluation_interval")
    @classmethod
    def _at_least_a_second(cls, value: timedelta) -> timedelta:
        return at_least_a_second(value, "evaluation_interval")


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
    oncall: str | None = None
    """A Slack user group (``S0123ABC`` or ``@ml-oncall``) invited to the room of an incident it declares."""
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
        # most rules keep the default "*": matching it as a pattern for every model of a fleet
        # cost a fifth of the first pass after a start
        return "*" in self.models or any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


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
    oncall: str | None = None
    """A Slack user group (``S0123ABC`` or ``@ml-oncall``) invited to its incident rooms."""

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
        """Every key of the model as a flat mapping, for templates and conditions: its scalar
        fields, then its free-form settings. Read from the instance rather than through
        ``model_dump``, which cost a 10,000-model first pass a tenth of its time."""
        named = {k: v for k, v in self.__dict__.items() if k not in _NOT_SETTINGS and v is not None}
        named.update((k, v) for k, v in (self.model_extra or {}).items() if v is not None)
        return named


_NOT_SETTINGS = frozenset({"escalation", "email", "links"})
"""A model's fields that are lists or routing, not values a template or a condition reads."""


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
