"""Which alert and incident events reach which webhook (bot.notify.routing, pure).

alert fired → fired                      incident acknowledged → acknowledged
incident resolved / auto_resolved → resolved   incident escalated → escalated
an incident event that newly pages PagerDuty → paged
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.alerts.lifecycle import SYSTEM_ACTOR, Event, EventKind
from bot.config.loader import Config
from bot.config.webhook_schema import WEBHOOK_EVENTS, Webhook
from bot.incidents.incident import IncidentEventKind
from bot.notify.routing import Delivery, every_channel
from bot.severity import Severity
from tests.notify.test_routing import MODEL, MONDAY_MORNING, alert, happened, incident

SECRET = "whsec-0123456789abcdef"
ROUTES = every_channel(["slack", "pagerduty", "webhook:ops", "webhook:tickets"])


def hooked(config: Config) -> Config:
    every = Webhook.model_validate(
        {"name": "ops", "url": "https://a.example/x", "secret": SECRET, "events": WEBHOOK_EVENTS}
    )
    tickets = Webhook.model_validate(
        {"name": "tickets", "url": "https://b.example/x", "secret": SECRET, "events": ["fired", "resolved"]}
    )
    return replace(config, webhooks=(every, tickets))


def webhook_events(deliveries: list[Delivery]) -> list[tuple[str, object]]:
    return [(d.channel, d.extra.get("webhook_event")) for d in deliveries if d.channel.startswith("webhook:")]


def test_a_fired_alert_reaches_every_webhook_that_asked_for_fired_and_no_chat_row_goes_to_one(config: Config) -> None:
    event = Event(EventKind.FIRED, SYSTEM_ACTOR, MONDAY_MORNING)
    deliveries = ROUTES.for_alert(
        alert(Severity.P2), event, config=hooked(config), now=MONDAY_MORNING, silenced=False, urgent=False
    )
    assert webhook_events(deliveries) == [("webhook:ops", "fired"), ("webhook:tickets", "fired")]
    assert [d.channel for d in deliveries if not d.channel.startswith("webhook:")] == ["slack"]
    assert all(d.hold == timedelta(0) for d in deliveries if d.channel.startswith("webhook:"))  # no group_wait


@pytest.mark.parametrize(("kind", "silenced"), [(EventKind.FIRED, True), (EventKind.ACKNOWLEDGED, False)])
def test_a_silenced_alert_and_the_alert_level_follow_ups_reach_no_webhook(
    config: Config, kind: EventKind, silenced: bool
) -> None:
    event = Event(kind, SYSTEM_ACTOR, MONDAY_MORNING)
    deliveries = ROUTES.for_alert(
        alert(Severity.P1), event, config=hooked(config), now=MONDAY_MORNING, silenced=silenced, urgent=False
    )
    assert webhook_events(deliveries) == []


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (IncidentEventKind.ACKNOWLEDGED, [("webhook:ops", "acknowledged")]),
        (IncidentEventKind.RESOLVED, [("webhook:ops", "resolved"), ("webhook:tickets", "resolved")]),
        (IncidentEventKind.AUTO_RESOLVED, [("webhook:ops", "resolved"), ("webhook:tickets", "resolved")]),
        (IncidentEventKind.ESCALATED, [("webhook:ops", "escalated")]),
        (IncidentEventKind.JOINED, []),
        (IncidentEventKind.OPENED, []),
    ],
)
def test_incident_events_map_onto_the_webhook_events(
    config: Config, kind: IncidentEventKind, expected: list[tuple[str, str]]
) -> None:
    quiet = incident(Severity.P3)  # pages nobody
    deliveries = ROUTES.for_incident(quiet, happened(kind), config=hooked(config), model=MODEL, by_person=False)
    assert webhook_events(deliveries) == expected


@pytest.mark.parametrize("kind", [IncidentEventKind.OPENED, IncidentEventKind.JOINED, IncidentEventKind.ESCALATED])
def test_an_incident_event_that_newly_pages_is_also_paged_once(config: Config, kind: IncidentEventKind) -> None:
    loud = incident(Severity.P1)
    deliveries = ROUTES.for_incident(loud, happened(kind), config=hooked(config), model=MODEL, by_person=False)
    assert ("webhook:ops", "paged") in webhook_events(deliveries)
    already = incident(Severity.P1, paged=("",))  # the default key was paged before: no new page
    again = ROUTES.for_incident(already, happened(kind), config=hooked(config), model=MODEL, by_person=False)
    assert ("webhook:ops", "paged") not in webhook_events(again)


def test_without_pagerduty_nothing_is_paged_and_a_webhook_without_a_channel_hears_nothing(config: Config) -> None:
    """``paged`` means PagerDuty was paged; a webhook added by a reload has no lane until a restart."""
    routes = every_channel(["slack", "webhook:ops"])
    deliveries = routes.for_incident(
        incident(Severity.P0), happened(IncidentEventKind.OPENED), config=hooked(config), model=MODEL, by_person=False
    )
    assert webhook_events(deliveries) == []
    resolved = routes.for_incident(
        incident(Severity.P0), happened(IncidentEventKind.RESOLVED), config=hooked(config), model=MODEL, by_person=False
    )
    assert webhook_events(resolved) == [("webhook:ops", "resolved")]
