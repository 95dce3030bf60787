"""Routes: seed 001's routing table, business hours and who gets paged, now per incident.

    an alert event → chat only (its section of the incident's message, a thread reply)
    an incident opened / joined / escalated at P0/P1 → one page per incident and routing key
    a step naming a routing key → page that key        acknowledge / resolve → every key paged

The incident is seen with the keys paged *before* the event (the service records this event's
pages after asking), so a key already paged is never paged twice.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, AlertState, Event, EventKind
from bot.config.loader import Config
from bot.config.routing_schema import BusinessHours, Routing
from bot.incidents.incident import Incident, IncidentEvent, IncidentEventKind, IncidentState
from bot.notify.routing import Delivery, Held, every_channel, pages_to
from bot.severity import Severity

MONDAY_MORNING = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # 10:00 in Berlin: open
SATURDAY = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
NEXT_MONDAY_OPENING = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
GROUP_WAIT = timedelta(seconds=10)  # the shipped settings.group_wait
SLACK_WAITS = Delivery("slack", GROUP_WAIT, held=Held.GROUP_WAIT)
"""A fire's Slack post, waiting for the alerts that fire with it."""
ROUTES = every_channel(["slack", "recording", "pagerduty"])
MODEL = "fraud-detector-v2"


def alert(severity: Severity) -> Alert:
    return Alert("some_rule", MODEL, severity, AlertState.FIRING, MONDAY_MORNING, fired_at=MONDAY_MORNING, id=1)


def incident(severity: Severity, *, paged: tuple[str, ...] = ()) -> Incident:
    return Incident(
        group_key=f"#ml-alerts|model={MODEL}",
        channel="#ml-alerts",
        severity=severity,
        state=IncidentState.FIRING,
        opened_at=MONDAY_MORNING,
        paged_keys=paged,
        id=1,
        version=1,
    )


def happened(kind: IncidentEventKind, **data: object) -> IncidentEvent:
    return IncidentEvent(kind, SYSTEM_ACTOR, MONDAY_MORNING, data=data)


def chat(kind: EventKind, severity: Severity, config: Config, now: datetime, *, urgent: bool = False) -> list[Delivery]:
    event = Event(kind, SYSTEM_ACTOR, now)
    return ROUTES.for_alert(alert(severity), event, config=config, now=now, silenced=False, urgent=urgent)


def closed_hours(config: Config, outside: str, quiet_channel: str | None = "#ml-quiet") -> Config:
    hours = BusinessHours(timezone="Europe/Berlin", holidays="DE", outside=outside)  # type: ignore[arg-type]
    return replace(config, business_hours=hours, routing=Routing(quiet_channel=quiet_channel))


def with_model_key(config: Config, key: str) -> Config:
    models = dict(config.models)
    models[MODEL] = models[MODEL].model_copy(update={"pagerduty_routing_key": key})
    return replace(config, models=models)


# --------------------------------------------------------------------------- alerts: chat only


@pytest.mark.parametrize("severity", list(Severity))
def test_an_alert_event_goes_to_chat_only_and_only_a_slack_fire_waits_for_group_wait(
    config: Config, severity: Severity
) -> None:
    assert chat(EventKind.FIRED, severity, config, MONDAY_MORNING) == [
        SLACK_WAITS,
        Delivery("recording"),
    ]
    assert chat(EventKind.ACKNOWLEDGED, severity, config, MONDAY_MORNING) == [Delivery("slack"), Delivery("recording")]


@pytest.mark.parametrize("kind", [EventKind.PENDING, EventKind.PENDING_CLEARED, EventKind.KEPT_FIRING])
def test_bookkeeping_is_not_news(config: Config, kind: EventKind) -> None:
    assert chat(kind, Severity.P1, config, MONDAY_MORNING) == []


def test_a_silenced_alert_notifies_no_one_and_the_debug_log_says_why(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    event = Event(EventKind.FIRED, SYSTEM_ACTOR, MONDAY_MORNING)
    with caplog.at_level(logging.DEBUG, logger="bot.notify.routing"):
        routed = ROUTES.for_alert(
            alert(Severity.P0), event, config=config, now=MONDAY_MORNING, silenced=True, urgent=True
        )
    assert routed == []
    assert [r.getMessage() for r in caplog.records] == ["alert 1 fired: not routed (silence)"]


def test_an_alert_event_sent_at_once_is_held_for_nothing(config: Config) -> None:
    (slack, recording) = chat(EventKind.ACKNOWLEDGED, Severity.P2, closed_hours(config, "next_morning"), SATURDAY)
    assert slack.held is recording.held is Held.NONE
    assert chat(EventKind.FIRED, Severity.P2, config, MONDAY_MORNING)[1] == Delivery("recording", held=Held.NONE)


# --------------------------------------------------------------------------- business hours


@pytest.mark.parametrize("severity", [Severity.P2, Severity.P3])
def test_outside_business_hours_p2_and_p3_wait_for_the_next_morning(config: Config, severity: Severity) -> None:
    closed = closed_hours(config, "next_morning")

    (slack, recording) = chat(EventKind.FIRED, severity, closed, SATURDAY)
    assert slack.hold == recording.hold == NEXT_MONDAY_OPENING - SATURDAY
    assert slack.held is recording.held is Held.BUSINESS_HOURS


def test_outside_business_hours_p2_and_p3_go_to_the_quiet_channel_when_configured(config: Config) -> None:
    closed = closed_hours(config, "quiet_channel")

    assert chat(EventKind.FIRED, Severity.P3, closed, SATURDAY)[0].extra == {"slack_channel": "#ml-quiet"}
    assert chat(EventKind.FIRED, Severity.P3, closed, SATURDAY)[0].held is Held.QUIET_CHANNEL
    assert (
        chat(EventKind.FIRED, Severity.P3, closed_hours(config, "quiet_channel", None), SATURDAY)[0].hold > GROUP_WAIT
    )


@pytest.mark.parametrize("outside", ["next_morning", "quiet_channel"])
def test_an_alert_of_an_incident_that_pages_is_never_held_or_redirected(config: Config, outside: str) -> None:
    closed = closed_hours(config, outside)

    assert chat(EventKind.FIRED, Severity.P2, closed, SATURDAY, urgent=True) == [
        SLACK_WAITS,
        Delivery("recording"),
    ]
    assert chat(EventKind.FIRED, Severity.P1, closed, SATURDAY)[0] == SLACK_WAITS


def test_inside_business_hours_and_on_holidays(config: Config) -> None:
    closed = closed_hours(config, "next_morning")
    new_year = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)

    assert chat(EventKind.FIRED, Severity.P3, closed, MONDAY_MORNING)[0] == SLACK_WAITS
    assert chat(EventKind.FIRED, Severity.P3, closed, new_year)[0].hold > GROUP_WAIT


# --------------------------------------------------------------------------- incidents: pages


@pytest.mark.parametrize(("severity", "pages"), [(Severity.P0, True), (Severity.P1, True), (Severity.P2, False)])
def test_an_incident_opened_at_a_paging_severity_pages_once(config: Config, severity: Severity, pages: bool) -> None:
    routed = ROUTES.for_incident(
        incident(severity), happened(IncidentEventKind.OPENED), config=config, model=MODEL, by_person=False
    )

    assert routed == ([Delivery("pagerduty")] if pages else [])


def test_a_key_already_paged_is_not_paged_again_however_many_alerts_join(config: Config) -> None:
    joined = happened(IncidentEventKind.JOINED)

    assert pages_to(incident(Severity.P1), joined, config, model=MODEL) == [""]
    assert pages_to(incident(Severity.P1, paged=("",)), joined, config, model=MODEL) == []


def test_the_models_own_routing_key_and_a_steps_key_are_paged(config: Config) -> None:
    keyed = with_model_key(config, "MODEL-KEY")
    step = happened(IncidentEventKind.ESCALATED, routing_key="L2-KEY")

    assert pages_to(incident(Severity.P1), step, keyed, model=MODEL) == ["MODEL-KEY", "L2-KEY"]
    assert pages_to(incident(Severity.P3), step, keyed, model=MODEL) == ["L2-KEY"], "a step's key pages at any severity"


def test_the_paging_severities_are_configurable(config: Config) -> None:
    everything = replace(config, routing=Routing(page=[Severity.P0, Severity.P1, Severity.P2]))

    assert pages_to(incident(Severity.P2), happened(IncidentEventKind.OPENED), everything, model=MODEL) == [""]


@pytest.mark.parametrize(
    "kind", [IncidentEventKind.ACKNOWLEDGED, IncidentEventKind.RESOLVED, IncidentEventKind.AUTO_RESOLVED]
)
def test_acknowledge_and_resolve_reach_every_key_the_incident_paged_and_nothing_else(
    config: Config, kind: IncidentEventKind
) -> None:
    paged = incident(Severity.P1, paged=("", "L2-KEY"))
    never = incident(Severity.P3)

    assert ROUTES.for_incident(paged, happened(kind), config=config, model=MODEL, by_person=False) == [
        Delivery("pagerduty"),
        Delivery("pagerduty", extra={"pagerduty_routing_key": "L2-KEY"}),
    ]
    assert ROUTES.for_incident(never, happened(kind), config=config, model=MODEL, by_person=False) == []


def test_an_escalation_and_a_persons_action_on_the_incident_are_said_in_chat(config: Config) -> None:
    step = happened(IncidentEventKind.ESCALATED, routing_key=None)
    acked = happened(IncidentEventKind.ACKNOWLEDGED)

    assert ROUTES.for_incident(incident(Severity.P2), step, config=config, model=MODEL, by_person=False) == [
        Delivery("slack"),
        Delivery("recording"),
    ]
    assert ROUTES.for_incident(incident(Severity.P2), acked, config=config, model=MODEL, by_person=True) == [
        Delivery("slack"),
        Delivery("recording"),
    ]
    assert ROUTES.for_incident(incident(Severity.P2), acked, config=config, model=MODEL, by_person=False) == []


def test_without_the_pagerduty_channel_nothing_pages(config: Config) -> None:
    routes = every_channel(["slack"])

    assert (
        routes.for_incident(
            incident(Severity.P0), happened(IncidentEventKind.OPENED), config=config, model=MODEL, by_person=False
        )
        == []
    )
