"""The ``prometheus:`` and ``alertmanager:`` sections of ``rules/*.yaml`` (SPEC §2 sources b and c).

They say where data comes from, not what to alert on; they live with the rest of the
configuration's schema (the sources read them; configuration never imports the sources), and
:class:`bot.config.schema.RulesFile` includes them. Like every section they forbid unknown keys,
so ``intreval:`` is an error at ``incident-bot check`` time, not a silently default interval.
This module must not import :mod:`bot.config.schema` (that module imports this one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, field_validator, model_validator

from bot.config.durations import humanize
from bot.config.fields import Duration, ModelName, Strict, at_least_a_second, from_environment, not_blank
from bot.severity import Severity

MetricName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)]
LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=100)]
"""A Prometheus label name."""
ANY_MODEL = "*"
SHARD = "{shard}"
"""In a ``model: "*"`` query, where the bot may put a regular expression over model names
(``{model=~"{shard}"}``) to split a result too big for one answer (``max_series``)."""

DEFAULT_SEVERITIES: Mapping[str, Severity] = {
    "critical": Severity.P1,
    "page": Severity.P1,
    "error": Severity.P2,
    "warning": Severity.P2,
    "info": Severity.P3,
    "none": Severity.P3,
}
"""Prometheus' customary ``severity`` label values. ``critical`` is P1 (pages), not P0: P0 is kept
for what a team declares as such, by writing ``severity: P0`` or mapping a value to it."""


def _severity(value: object) -> object:
    if isinstance(value, str) and value.strip().upper() in Severity.__members__:
        return value.strip().upper()
    if isinstance(value, str | int):
        raise ValueError(f"unknown severity {value!r}; use one of P0, P1, P2, P3 (P0 is the most severe)")
    return value


SeverityField = Annotated[Severity, BeforeValidator(_severity)]


class PrometheusQuery(Strict):
    """One PromQL query whose value is stored as ``metric`` for ``model``, like a pushed sample."""

    model: str
    """A model name, or ``"*"``: then each series of the result names its model in ``model_label``."""
    metric: MetricName
    query: Annotated[str, not_blank("query is empty; write a PromQL expression, e.g. sum(rate(requests_total[5m]))")]
    model_label: LabelName = "model"
    """With ``model: "*"``: the series label that holds the model name."""

    @field_validator("model")
    @classmethod
    def _model_or_any(cls, value: str) -> str:
        if value != ANY_MODEL and not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", value):
            raise ValueError(f'model {value!r} must be a model name from models: or "*" (one model per series)')
        return value

    @property
    def name(self) -> str:
        """How logs name the query: ``support-bot/p99_latency_ms``."""
        return f"{self.model}/{self.metric}"

    @model_validator(mode="after")
    def _shard_needs_every_model(self) -> PrometheusQuery:
        if SHARD in self.query and self.model != ANY_MODEL:
            raise ValueError(f'{SHARD} splits a query over many models; it needs model: "*"')
        return self


HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,100}$")]


def _header_value(value: object) -> object:
    if not isinstance(value, str | SecretStr):
        raise ValueError("a header value must be text; quote it")
    if isinstance(value, SecretStr):
        return value
    return SecretStr(from_environment(value) or value)


def _bearer_token(value: object) -> object:
    if isinstance(value, SecretStr) or value is None:
        return value
    token = from_environment(value) if isinstance(value, str) else None
    if token is None:
        raise ValueError("bearer_token must name an environment variable, e.g. ${PROMETHEUS_TOKEN}; export the token")
    return SecretStr(token)


class PrometheusSection(Strict):
    """Pulled from ``PROMETHEUS_URL`` every ``interval``; a query slower than ``timeout`` is no data."""

    interval: Duration = timedelta(seconds=30)
    timeout: Duration = timedelta(seconds=10)
    queries: list[PrometheusQuery] = Field(min_length=1)
    failing_after: int = Field(default=3, ge=1)
    """A query that fails this many pulls in a row raises the bot's own alert (:mod:`bot.sources.source_health`)."""
    headers: dict[HeaderName, Annotated[SecretStr, BeforeValidator(_header_value)]] = Field(default_factory=dict)
    """Sent with every query: a multi-tenant store's tenant (Mimir, Cortex: ``X-Scope-OrgID``);
    a value may be ``${ENV_NAME}``, read from the environment at load."""
    bearer_token: Annotated[SecretStr, BeforeValidator(_bearer_token)] | None = None
    """``${ENV_NAME}`` only: a token in git would be a leaked token. Sent as ``Authorization: Bearer``."""
    max_series: int | None = Field(default=None, ge=1)
    """A ``model: "*"`` query with a ``{shard}`` placeholder whose answer holds more series than
    this, or that the store refuses, is asked again in shards of model names."""
    ca_file: Path | None = None
    """A PEM file of the certificate authorities an ``https://`` PROMETHEUS_URL is verified against."""

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"ca_file {value} is not a readable file; give the path of a PEM bundle")
        return value

    @field_validator("headers")
    @classmethod
    def _no_authorization(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if any(name.lower() == "authorization" for name in value):
            raise ValueError(
                "set bearer_token: ${ENV_NAME} (or credentials in PROMETHEUS_URL), not an Authorization header"
            )
        return value

    def request_headers(self) -> dict[str, str]:
        """The headers every query carries (secrets included: never log them)."""
        sent = {name: value.get_secret_value() for name, value in self.headers.items()}
        if self.bearer_token is not None:
            sent["Authorization"] = f"Bearer {self.bearer_token.get_secret_value()}"
        return sent

    @field_validator("interval")
    @classmethod
    def _at_least_a_second(cls, value: timedelta) -> timedelta:
        return at_least_a_second(value, "interval")

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("timeout must be longer than 0s, e.g. 10s")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PrometheusSection:
        if self.timeout > self.interval:
            raise ValueError(
                f"timeout ({humanize(self.timeout)}) is longer than interval ({humanize(self.interval)}); "
                "a pull must finish before the next one is due"
            )
        seen: set[tuple[str, str]] = set()
        for query in self.queries:
            if (query.model, query.metric) in seen:
                raise ValueError(f"two queries for {query.name}; keep one (each metric of a model has one source)")
            seen.add((query.model, query.metric))
        return self


class AlertmanagerSection(Strict):
    """How the webhook maps an Alertmanager alert's labels onto a model and a severity."""

    model_labels: list[LabelName] = Field(default_factory=lambda: ["model", "service", "job"], min_length=1)
    """The first of these labels an alert carries names its model."""
    default_model: ModelName = "unknown"
    """The model of an alert that carries none of ``model_labels``."""
    severity_label: LabelName = "severity"
    severities: dict[str, SeverityField] = Field(default_factory=dict)
    """Label value → severity, over :data:`DEFAULT_SEVERITIES`; ``P0``..``P3`` are always understood."""
    default_severity: SeverityField = Severity.P2

    def severity_of(self, labels: Mapping[str, str]) -> Severity:
        raw = labels.get(self.severity_label, "").strip()
        if raw.upper() in Severity.__members__:
            return Severity(raw.upper())
        table = {**DEFAULT_SEVERITIES, **{k.lower(): v for k, v in self.severities.items()}}
        return table.get(raw.lower(), self.default_severity)


def section_keys() -> frozenset[str]:
    """Every key these sections accept, for the loader's "did you mean" suggestions."""
    models: list[type[BaseModel]] = [PrometheusQuery, PrometheusSection, AlertmanagerSection]
    return frozenset(name for m in models for name in m.model_fields)
