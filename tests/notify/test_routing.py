"""route() and pages_to(): seed 001's routing table, business hours and who gets paged.

    P0/P1 fired → Slack + PagerDuty at once      P2/P3 fired → Slack only
    escalated into P0/P1 from P2/P3 → page       a step naming a routing key → page that key
    acknowledge / resolve → every key this alert paged

``route`` sees the alert with the keys paged *before* the event (the service records this
event's pages after asking), so a key already paged is never paged twice.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, AlertState, Event, EventKind
from bot.config.loader import Config
from bot.config.schema import BusinessHours, Routing
from bot.notify.routing import Delivery, pages_to, route
from bot.severity import Severity

MONDAY_MORNING = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # 10:00 in Berlin: open
SATURDAY = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
NEXT_MONDAY_OPENING = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
GROUP_WAIT = timedelta(seconds=10)  # the shipped settings.group_wait
CHANNELS = ["slack", "recording", "pagerduty"]
PD = {"pagerduty_routing_key": "L2-KEY"}


def alert(severity: Severity, *, paged: tuple[str, ...] = (), model: str = "fraud-detector-v2") -> Alert:
    return Alert(
        rule="some_rule",
        model=model,
        severity=severity,
        state=AlertState.FIRING,
        started_at=MONDAY_MORNING,
        fired_at=MONDAY_MORNING,
        paged_keys=paged,
        id=1,
        version=1,
    )


def event(kind: EventKind, **data: object) -> Event:
    return Event(kind, SYSTEM_ACTOR, MONDAY_MORNING, data=data)


def escalated(from_severity: Severity, to_severity: Severity, routing_key: str | None = None) -> Event:
    return event(
        EventKind.ESCALATED, from_severity=from_severity.value, to_severity=to_severity.value, routing_key=routing_key
    )


def closed_hours(config: Config, outside: str, quiet_channel: str | None = "#ml-quiet") -> Config:
    hours = BusinessHours(timezone="Europe/Berlin", holidays="DE", outside=outside)  # type: ignore[arg-type]
    return replace(config, business_hours=hours, routing=Routing(quiet_channel=quiet_channel))


def with_model_key(config: Config, model: str, key: str) -> Config:
    models = dict(config.models)
    models[model] = models[model].model_copy(update={"pagerduty_routing_key": key})
    return replace(config, models=models)


# --------------------------------------------------------------------------- the severity table


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.P0, [Delivery("slack", GROUP_WAIT), Delivery("recording"), Delivery("pagerduty")]),
        (Severity.P1, [Delivery("slack", GROUP_WAIT), Delivery("recording"), Delivery("pagerduty")]),
        (Severity.P2, [Delivery("slack", GROUP_WAIT), Delivery("recording")]),
        (Severity.P3, [Delivery("slack", GROUP_WAIT), Delivery("recording")]),
    ],
)
def test_a_fired_alert_goes_to_chat_and_pages_only_at_p0_and_p1(
    config: Config, severity: Severity, expected: list[Delivery]
) -> None:
    assert route(alert(severity), event(EventKind.FIRED), config=config, channels=CHANNELS, now=MONDAY_MORNING) == (
        expected
    )


@pytest.mark.parametrize(
    "kind", [EventKind.ACKNOWLEDGED, EventKind.RESOLVED, EventKind.AUTO_RESOLVED, EventKind.ESCALATED]
)
def test_only_a_slack_fire_waits_for_group_wait(config: Config, kind: EventKind) -> None:
    deliveries = route(alert(Severity.P2), event(kind), config=config, channels=["slack", "log"], now=MONDAY_MORNING)

    assert deliveries == [Delivery("slack"), Delivery("log")]


def test_the_group_wait_comes_from_the_settings(config: Config) -> None:
    slower = replace(config, settings=config.settings.model_copy(update={"group_wait": timedelta(seconds=45)}))

    deliveries = route(
        alert(Severity.P3), event(EventKind.FIRED), config=slower, channels=["slack"], now=MONDAY_MORNING
    )

    assert deliveries == [Delivery("slack", timedelta(seconds=45))]


@pytest.mark.parametrize("kind", [EventKind.PENDING, EventKind.PENDING_CLEARED])
def test_pending_alerts_are_not_news(config: Config, kind: EventKind) -> None:
    assert route(alert(Severity.P0), event(kind), config=config, channels=CHANNELS, now=MONDAY_MORNING) == []


@pytest.mark.parametrize("kind", list(EventKind))
def test_a_silenced_alert_notifies_no_one(config: Config, kind: EventKind) -> None:
    muted = route(
        alert(Severity.P0, paged=("",)),
        event(kind),
        config=config,
        channels=CHANNELS,
        now=MONDAY_MORNING,
        silenced=True,
    )

    assert muted == []


def test_without_the_pagerduty_channel_nothing_pages(config: Config) -> None:
    deliveries = route(alert(Severity.P0), event(EventKind.FIRED), config=config, channels=["log"], now=MONDAY_MORNING)

    assert deliveries == [Delivery("log")]


def test_the_paging_severities_are_configurable(config: Config) -> None:
    only_p0 = replace(config, routing=Routing(page=[Severity.P0]))

    p1 = route(alert(Severity.P1), event(EventKind.FIRED), config=only_p0, channels=["pagerduty"], now=MONDAY_MORNING)
    p0 = route(alert(Severity.P0), event(EventKind.FIRED), config=only_p0, channels=["pagerduty"], now=MONDAY_MORNING)

    assert p1 == []
    assert p0 == [Delivery("pagerduty")]


def test_a_model_with_its_own_routing_key_pages_that_key(config: Config) -> None:
    own = with_model_key(config, "fraud-detector-v2", "FRAUD-KEY")

    deliveries = route(alert(Severity.P1), event(EventKind.FIRED), config=own, channels=["pagerduty"], now=SATURDAY)

    assert deliveries == [Delivery("pagerduty", extra={"pagerduty_routing_key": "FRAUD-KEY"})]


# --------------------------------------------------------------------------- business hours


@pytest.mark.parametrize("severity", [Severity.P2, Severity.P3])
def test_outside_business_hours_p2_and_p3_wait_for_the_next_morning(config: Config, severity: Severity) -> None:
    closed = closed_hours(config, "next_morning")

    deliveries = route(alert(severity), event(EventKind.FIRED), config=closed, channels=["slack", "log"], now=SATURDAY)

    assert deliveries == [
        Delivery("slack", NEXT_MONDAY_OPENING - SATURDAY),
        Delivery("log", NEXT_MONDAY_OPENING - SATURDAY),
    ]


def test_outside_business_hours_an_escalation_below_paging_also_waits(config: Config) -> None:
    closed = closed_hours(config, "next_morning")

    deliveries = route(
        alert(Severity.P2), escalated(Severity.P3, Severity.P2), config=closed, channels=["slack"], now=SATURDAY
    )

    assert deliveries == [Delivery("slack", NEXT_MONDAY_OPENING - SATURDAY)]


@pytest.mark.parametrize("severity", [Severity.P2, Severity.P3])
def test_outside_business_hours_p2_and_p3_go_to_the_quiet_channel_when_configured(
    config: Config, severity: Severity
) -> None:
    quiet = closed_hours(config, "quiet_channel")

    deliveries = route(alert(severity), event(EventKind.FIRED), config=quiet, channels=["slack", "log"], now=SATURDAY)

    assert deliveries == [
        Delivery("slack", GROUP_WAIT, {"slack_channel": "#ml-quiet"}),
        Delivery("log", timedelta(0), {"slack_channel": "#ml-quiet"}),
    ]


def test_quiet_channel_mode_without_a_quiet_channel_waits_for_the_morning(config: Config) -> None:
    nowhere = closed_hours(config, "quiet_channel", quiet_channel=None)

    deliveries = route(alert(Severity.P3), event(EventKind.FIRED), config=nowhere, channels=["slack"], now=SATURDAY)

    assert deliveries == [Delivery("slack", NEXT_MONDAY_OPENING - SATURDAY)]


def test_a_holiday_is_outside_business_hours(config: Config) -> None:
    good_friday = datetime(2026, 4, 3, 10, 0, tzinfo=UTC)  # Berlin: Easter Tuesday 7 Apr 09:00 CEST is next
    closed = closed_hours(config, "next_morning")

    deliveries = route(alert(Severity.P2), event(EventKind.FIRED), config=closed, channels=["log"], now=good_friday)

    assert deliveries == [Delivery("log", datetime(2026, 4, 7, 7, 0, tzinfo=UTC) - good_friday)]


@pytest.mark.parametrize("outside", ["next_morning", "quiet_channel"])
def test_inside_business_hours_nothing_is_held_or_redirected(config: Config, outside: str) -> None:
    open_now = closed_hours(config, outside)

    deliveries = route(
        alert(Severity.P3), event(EventKind.FIRED), config=open_now, channels=["slack", "log"], now=MONDAY_MORNING
    )

    assert deliveries == [Delivery("slack", GROUP_WAIT), Delivery("log")]


@pytest.mark.parametrize("outside", ["next_morning", "quiet_channel"])
@pytest.mark.parametrize("severity", [Severity.P0, Severity.P1])
def test_p0_and_p1_are_never_held_or_redirected(config: Config, outside: str, severity: Severity) -> None:
    closed = closed_hours(config, outside)

    deliveries = route(alert(severity), event(EventKind.FIRED), config=closed, channels=CHANNELS, now=SATURDAY)

    assert deliveries == [Delivery("slack", GROUP_WAIT), Delivery("recording"), Delivery("pagerduty")]


def test_an_escalation_into_p1_at_night_pages_and_posts_at_once(config: Config) -> None:
    closed = closed_hours(config, "next_morning")

    deliveries = route(
        alert(Severity.P1), escalated(Severity.P2, Severity.P1), config=closed, channels=CHANNELS, now=SATURDAY
    )

    assert deliveries == [Delivery("slack"), Delivery("recording"), Delivery("pagerduty")]


@pytest.mark.parametrize("outside", ["next_morning", "quiet_channel"])
@pytest.mark.parametrize("kind", [EventKind.ACKNOWLEDGED, EventKind.RESOLVED, EventKind.AUTO_RESOLVED])
def test_acknowledge_and_resolve_are_never_held(config: Config, outside: str, kind: EventKind) -> None:
    """The fire may have gone out in office hours: its follow-ups belong in the same place, now."""
    closed = closed_hours(config, outside)

    deliveries = route(alert(Severity.P3), event(kind), config=closed, channels=["slack", "log"], now=SATURDAY)

    assert deliveries == [Delivery("slack"), Delivery("log")]


# --------------------------------------------------------------------------- who gets paged


@pytest.mark.parametrize(
    ("severity", "expected"),
    [(Severity.P0, [""]), (Severity.P1, [""]), (Severity.P2, []), (Severity.P3, [])],
)
def test_a_fire_pages_the_default_key_at_paging_severities(
    config: Config, severity: Severity, expected: list[str]
) -> None:
    assert pages_to(alert(severity), event(EventKind.FIRED), config) == expected


@pytest.mark.parametrize(
    ("before", "after", "step_key", "expected"),
    [
        pytest.param(Severity.P2, Severity.P1, None, [""], id="P2-into-P1-pages"),
        pytest.param(Severity.P3, Severity.P0, None, [""], id="P3-into-P0-pages"),
        pytest.param(Severity.P1, Severity.P1, None, [], id="P1-stays-P1-already-paged-at-fire"),
        pytest.param(Severity.P1, Severity.P0, None, [], id="P1-into-P0-was-already-paging"),
        pytest.param(Severity.P3, Severity.P2, None, [], id="P3-into-P2-does-not-page"),
        pytest.param(Severity.P2, Severity.P2, "L2-KEY", ["L2-KEY"], id="a-step-key-pages-even-below-P1"),
        pytest.param(Severity.P2, Severity.P1, "L2-KEY", ["", "L2-KEY"], id="into-P1-with-a-step-key-pages-both"),
        pytest.param(Severity.P1, Severity.P1, "L2-KEY", ["L2-KEY"], id="P1-step-key-pages-the-L2-only"),
    ],
)
def test_pages_on_escalation(
    config: Config, before: Severity, after: Severity, step_key: str | None, expected: list[str]
) -> None:
    paged_at_fire = ("",) if before.pages else ()

    assert pages_to(alert(after, paged=paged_at_fire), escalated(before, after, step_key), config) == expected


def test_a_key_already_paged_is_not_paged_again(config: Config) -> None:
    already = alert(Severity.P1, paged=("", "L2-KEY"))

    assert pages_to(already, escalated(Severity.P2, Severity.P1, "L2-KEY"), config) == []
    assert pages_to(already, event(EventKind.FIRED), config) == []


def test_a_step_naming_the_models_own_key_pages_it_once(config: Config) -> None:
    own = with_model_key(config, "fraud-detector-v2", "FRAUD-KEY")

    assert pages_to(alert(Severity.P1), escalated(Severity.P2, Severity.P1, "FRAUD-KEY"), own) == ["FRAUD-KEY"]


@pytest.mark.parametrize("kind", [EventKind.ACKNOWLEDGED, EventKind.RESOLVED, EventKind.AUTO_RESOLVED])
def test_pages_to_is_only_about_fires_and_escalations(config: Config, kind: EventKind) -> None:
    assert pages_to(alert(Severity.P0), event(kind), config) == []


def test_route_pages_what_pages_to_names_for_an_escalation(config: Config) -> None:
    deliveries = route(
        alert(Severity.P1),
        escalated(Severity.P2, Severity.P1, "L2-KEY"),
        config=config,
        channels=["pagerduty"],
        now=MONDAY_MORNING,
    )

    assert deliveries == [Delivery("pagerduty"), Delivery("pagerduty", extra=PD)]


@pytest.mark.parametrize("kind", [EventKind.ACKNOWLEDGED, EventKind.RESOLVED, EventKind.AUTO_RESOLVED])
def test_acknowledge_and_resolve_reach_every_key_the_alert_paged(config: Config, kind: EventKind) -> None:
    paged = alert(Severity.P1, paged=("", "L2-KEY"))

    deliveries = route(paged, event(kind), config=config, channels=["pagerduty"], now=SATURDAY)

    assert deliveries == [Delivery("pagerduty"), Delivery("pagerduty", extra=PD)]


@pytest.mark.parametrize("kind", [EventKind.ACKNOWLEDGED, EventKind.RESOLVED, EventKind.AUTO_RESOLVED])
def test_an_alert_that_never_paged_sends_pagerduty_nothing(config: Config, kind: EventKind) -> None:
    """A P1 reached by escalation at P1 but never paged (say, silenced then) has no incident to close."""
    assert route(alert(Severity.P1), event(kind), config=config, channels=["pagerduty"], now=SATURDAY) == []
