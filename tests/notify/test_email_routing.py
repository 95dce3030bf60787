"""Who is emailed about an incident event (pure): ``routing.email`` severities, to the union of the
incident's models' and rules' ``email:``, and an emailed incident's readers hear its follow-ups."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, AlertState, Event, EventKind
from bot.config.loader import Config
from bot.config.routing_schema import Routing
from bot.incidents.incident import Incident, IncidentEvent, IncidentEventKind, IncidentState
from bot.notify.email_routing import email_recipients, incident_recipients
from bot.notify.routing import Delivery, every_channel
from bot.severity import Severity

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FRAUD, SUPPORT = "fraud-detector-v2", "support-bot"
ROUTES = every_channel(["slack", "pagerduty", "email"])


def alert(model: str, rule: str, severity: Severity = Severity.P3, alert_id: int = 1) -> Alert:
    return Alert(rule, model, severity, AlertState.FIRING, NOW, fired_at=NOW, id=alert_id)


def incident(severity: Severity, *, storm_rule: str | None = None) -> Incident:
    return Incident(
        group_key=f"#ml-alerts|model={FRAUD}",
        channel="#ml-alerts",
        severity=severity,
        state=IncidentState.FIRING,
        opened_at=NOW,
        storm_rule=storm_rule,
        id=7,
        version=1,
    )


def happened(kind: IncidentEventKind) -> IncidentEvent:
    return IncidentEvent(kind, SYSTEM_ACTOR, NOW)


def with_recipients(config: Config, *, models: dict[str, list[str]], rules: dict[str, list[str]]) -> Config:
    known = {name: m.model_copy(update={"email": models.get(name, [])}) for name, m in config.models.items()}
    shipped = tuple(r.model_copy(update={"email": rules.get(r.name, [])}) for r in config.rules)
    return replace(config, models=known, rules=shipped)


@pytest.fixture
def emailing(config: Config) -> Config:
    """The shipped configuration with recipients on both models and on one rule."""
    rule = config.rules[0].name
    return with_recipients(
        config,
        models={FRAUD: ["fraud@example.com", "oncall@example.com"], SUPPORT: ["llm@example.com"]},
        rules={rule: ["ONCALL@example.com", "ml-leads@example.com"]},
    )


def test_the_recipients_are_the_union_of_the_models_and_rules_each_address_once(emailing: Config) -> None:
    rule = emailing.rules[0].name
    members = [alert(FRAUD, rule), alert(SUPPORT, "no_such_rule", alert_id=2)]

    assert incident_recipients(emailing, members) == [
        "fraud@example.com",
        "oncall@example.com",
        "llm@example.com",
        "ml-leads@example.com",  # ONCALL@example.com is oncall@example.com
    ]


def test_a_storm_incident_reaches_its_rules_recipients(emailing: Config) -> None:
    rule = emailing.rules[0].name

    assert incident_recipients(emailing, [], storm_rule=rule) == ["ONCALL@example.com", "ml-leads@example.com"]


def test_a_p3_incident_opening_is_emailed_and_an_alert_joining_it_is_not(emailing: Config) -> None:
    members = [alert(FRAUD, "nothing")]
    opened = ROUTES.for_incident(
        incident(Severity.P3), happened(IncidentEventKind.OPENED), config=emailing, model=FRAUD,
        by_person=False, members=members,
    )  # fmt: skip
    joined = ROUTES.for_incident(
        incident(Severity.P3), happened(IncidentEventKind.JOINED), config=emailing, model=FRAUD,
        by_person=False, members=members, emailed=True,
    )  # fmt: skip

    assert opened == [Delivery("email", extra={"email_to": ["fraud@example.com", "oncall@example.com"]})]
    assert joined == []


@pytest.mark.parametrize("severity", [Severity.P0, Severity.P1, Severity.P2])
def test_other_severities_are_not_emailed_by_default(emailing: Config, severity: Severity) -> None:
    deliveries = ROUTES.for_incident(
        incident(severity), happened(IncidentEventKind.OPENED), config=emailing, model=FRAUD,
        by_person=False, members=[alert(FRAUD, "x", severity)],
    )  # fmt: skip

    assert "email" not in [d.channel for d in deliveries]


def test_routing_email_chooses_the_severities(emailing: Config) -> None:
    config = replace(emailing, routing=Routing(email=[Severity.P1]))
    event = happened(IncidentEventKind.OPENED)

    p1 = email_recipients(incident(Severity.P1), event, config, members=[alert(FRAUD, "x")], emailed=False)
    p3 = email_recipients(incident(Severity.P3), event, config, members=[alert(FRAUD, "x")], emailed=False)

    assert p1 == ["fraud@example.com", "oncall@example.com"] and p3 == []


@pytest.mark.parametrize(
    "kind",
    [
        IncidentEventKind.ESCALATED,
        IncidentEventKind.ACKNOWLEDGED,
        IncidentEventKind.RESOLVED,
        IncidentEventKind.AUTO_RESOLVED,
    ],
)
def test_an_emailed_incident_that_outgrew_p3_still_tells_its_readers(emailing: Config, kind: IncidentEventKind) -> None:
    members = [alert(FRAUD, "x")]

    told = email_recipients(incident(Severity.P2), happened(kind), emailing, members=members, emailed=True)
    never = email_recipients(incident(Severity.P2), happened(kind), emailing, members=members, emailed=False)

    assert told == ["fraud@example.com", "oncall@example.com"] and never == []


def test_no_recipient_means_no_email(config: Config) -> None:
    deliveries = ROUTES.for_incident(
        incident(Severity.P3), happened(IncidentEventKind.OPENED), config=config, model=FRAUD,
        by_person=False, members=[alert(FRAUD, "x")],
    )  # fmt: skip

    assert deliveries == []


def test_email_never_hears_single_alert_events_nor_the_chat_of_an_escalation(emailing: Config) -> None:
    fired = Event(EventKind.FIRED, SYSTEM_ACTOR, NOW)
    alert_deliveries = ROUTES.for_alert(
        alert(FRAUD, "x"), fired, config=emailing, now=NOW, silenced=False, urgent=False
    )
    escalated = ROUTES.for_incident(
        incident(Severity.P1), happened(IncidentEventKind.ESCALATED), config=emailing, model=FRAUD,
        by_person=False, members=[alert(FRAUD, "x")],
    )  # fmt: skip

    assert [d.channel for d in alert_deliveries] == ["slack"]
    assert [d.channel for d in escalated] == ["slack", "pagerduty"]
