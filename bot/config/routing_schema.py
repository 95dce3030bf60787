"""The sections of ``rules/*.yaml`` that say who hears about an incident and when: escalation
steps, ``routing:`` (which severities page or are emailed, the quiet channel) and
``business_hours:``.
"""

from __future__ import annotations

from datetime import time
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.config.email_schema import Reports
from bot.config.fields import Channel, Duration, SeverityField, Strict
from bot.severity import Severity


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
