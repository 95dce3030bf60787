"""Dispatch writes routing's decision down, and says at DEBUG why a notification waits."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, AlertState, Event, EventKind
from bot.config.loader import Config
from bot.config.routing_schema import BusinessHours
from bot.notify.dispatch import Dispatcher
from bot.notify.routing import every_channel
from bot.severity import Severity

SATURDAY = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
MONDAY_MORNING = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def fired(config: Config, now: datetime, caplog: pytest.LogCaptureFixture) -> list[str]:
    """The DEBUG lines of dispatching a P3 fire at ``now`` to Slack and the recorder (nothing is flushed)."""
    alert = Alert("some_rule", "fraud-detector-v2", Severity.P3, AlertState.FIRING, now, fired_at=now, id=1)
    with caplog.at_level(logging.DEBUG, logger="bot.notify.dispatch"), Session() as s:
        Dispatcher(every_channel(["slack", "recording"])).alert_event(
            s, alert, Event(EventKind.FIRED, SYSTEM_ACTOR, now), config, now, silenced=False, urgent=False
        )
    return [r.getMessage() for r in caplog.records]


def test_a_fire_held_for_group_wait_says_so(config: Config, caplog: pytest.LogCaptureFixture) -> None:
    assert fired(replace(config, business_hours=None), MONDAY_MORNING, caplog) == [
        "alert 1 fired to slack held: group wait (10 s)"
    ]


def test_a_fire_held_for_business_hours_says_so(config: Config, caplog: pytest.LogCaptureFixture) -> None:
    closed = replace(config, business_hours=BusinessHours(timezone="Europe/Berlin"))
    assert fired(closed, SATURDAY, caplog) == [
        "alert 1 fired to slack held: business hours (1 d 20 h)",
        "alert 1 fired to recording held: business hours (1 d 20 h)",
    ]
