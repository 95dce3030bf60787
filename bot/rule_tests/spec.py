"""The shape of a rule test file: pydantic models and their field validators."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, model_validator

from bot.config.fields import Duration, SeverityField, Strict
from bot.rule_tests.notation import MAX_VALUES, expand_series


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


class SeriesSpec(Strict):
    model: str
    metric: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    values: Annotated[tuple[float | None, ...] | None, BeforeValidator(_values_field)] = None
    labels: Annotated[tuple[str | None, ...] | None, BeforeValidator(_labels_field)] = None

    @model_validator(mode="after")
    def _one_kind(self) -> SeriesSpec:
        if (self.values is None) == (self.labels is None):
            raise ValueError("give a series either values: (numbers) or labels: (texts), not both or neither")
        return self


class ExpectedAlert(Strict):
    rule: str
    model: str
    severity: SeverityField
    state: Annotated[Literal["firing", "acknowledged"] | None, BeforeValidator(_listed_state)] = None
    title: str | None = None
    description: str | None = None
    values: dict[str, float | str] | None = None


class ExpectedIncident(Strict):
    """An open incident, named by the open alerts it holds (``rule:model`` keys)."""

    alerts: list[str] = Field(min_length=1)
    severity: SeverityField | None = None
    state: Literal["firing", "acknowledged"] | None = None
    storm: bool | None = None


class AlertCheck(Strict):
    eval_time: Duration
    alerts: list[ExpectedAlert] | None = None
    """Every open alert people were told about; ``[]`` = none; left out = not checked."""
    incidents: list[ExpectedIncident] | None = None
    """Every open incident; ``[]`` = none; left out = not checked."""

    @model_validator(mode="after")
    def _checks_something(self) -> AlertCheck:
        if self.alerts is None and self.incidents is None:
            raise ValueError("give alerts: or incidents: (or both) to check at this eval_time")
        return self


class ActionSpec(Strict):
    at: Duration
    action: Literal["acknowledge", "resolve"]
    rule: str
    model: str
    by: str = "@rule-test"


class CaseSpec(Strict):
    name: str = Field(min_length=1)
    interval: Step | None = None
    input_series: list[SeriesSpec] = Field(default_factory=list)
    actions: list[ActionSpec] = Field(default_factory=list)
    alert_rule_test: list[AlertCheck] = Field(min_length=1)


class FileSpec(Strict):
    config_dir: str | None = None
    evaluation_interval: Step | None = None
    tests: list[CaseSpec] = Field(min_length=1)


_SPECS: tuple[type[BaseModel], ...] = (
    SeriesSpec,
    ExpectedAlert,
    ExpectedIncident,
    AlertCheck,
    ActionSpec,
    CaseSpec,
    FileSpec,
)
_KEYS = frozenset(f.alias or name for spec in _SPECS for name, f in spec.model_fields.items())
