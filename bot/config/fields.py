"""The field types every section of ``rules/*.yaml`` shares: durations, names, channels,
severities, and :class:`Strict`, the base that forbids unknown keys.

Apart from :mod:`bot.config.schema` so that the sections defined in their own modules
(:mod:`bot.config.slo_schema`, :mod:`bot.config.routing_schema`) and the rule tests read the same
types without importing the whole file's schema.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from bot.config.durations import parse_duration
from bot.severity import Severity

Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(str)]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)]
ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)]
Channel = Annotated[str, Field(pattern=r"^(#[a-z0-9][a-z0-9._-]*|[CGD][A-Z0-9]{6,})$")]


def _severity(value: object) -> object:
    if isinstance(value, str) and value.upper() in Severity.__members__:
        return value.upper()
    if isinstance(value, str | int):
        raise ValueError(f"unknown severity {value!r}; use one of P0, P1, P2, P3 (P0 is the most severe)")
    return value


SeverityField = Annotated[Severity, BeforeValidator(_severity)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def at_least_a_second(value: timedelta, key: str) -> timedelta:
    """A field validator's check of an interval: a loop running more often than once a second is a
    typo (``interval: 30ms``), not a wish."""
    if value < timedelta(seconds=1):
        raise ValueError(f"{key} must be at least 1s")
    return value


def not_blank(problem: str) -> AfterValidator:
    """The check of a text field that must say something: the value without the surrounding white
    space, or ``problem`` when nothing else is left (``Annotated[str, not_blank("...")]``)."""

    def check(value: str) -> str:
        if not value.strip():
            raise ValueError(problem)
        return value.strip()

    return AfterValidator(check)


ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
"""``${NAME}``: a secret read from the environment at load, so it never sits in git."""


def from_environment(value: str) -> str | None:
    """The environment variable ``value`` names as ``${NAME}`` (raising when it is unset or empty),
    or None when ``value`` names none."""
    reference = ENV_REFERENCE.match(value.strip())
    if reference is None:
        return None
    found = os.environ.get(reference[1], "")
    if not found:
        raise ValueError(f"environment variable {reference[1]} is not set (or is empty); export it")
    return found
