"""The incident core, pure: grouping, joining, closing, people's actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, AlertState, PolicyStep
from bot.errors import ActionRefused
from bot.incidents.incident import (
    IncidentEventKind,
    IncidentState,
    acknowledge,
    alert_closed,
    group_key,
    join,
    open_storm,
    open_with,
    resolve,
    storm_key,
)
from bot.severity import Severity

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
POLICY = (PolicyStep(timedelta(minutes=15), Severity.P3),)


def alert(rule: str = "latency_spike", model: str = "fraud", severity: Severity = Severity.P2) -> Alert:
    return Alert(
        rule=rule, model=model, severity=severity, state=AlertState.FIRING, started_at=T0, fired_at=T0, policy=POLICY
    )


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (["model"], "#a|model=fraud"),
        (["rule"], "#a|rule=latency_spike"),
        (["model", "rule"], "#a|model=fraud,rule=latency_spike"),
        ([], "#a|"),
    ],
)
def test_the_group_is_the_channel_and_the_group_by_labels(group_by: list[str], expected: str) -> None:
    key, labels = group_key(alert(), group_by=group_by, channel="#a")

    assert key == expected
    assert set(labels) == set(group_by)


def test_alerts_of_one_model_share_a_group_and_other_models_do_not() -> None:
    first = group_key(alert("latency_spike"), group_by=["model"], channel="#a")[0]

    assert group_key(alert("accuracy_degradation"), group_by=["model"], channel="#a")[0] == first
    assert group_key(alert("latency_spike", "support-bot"), group_by=["model"], channel="#a")[0] != first
    assert group_key(alert("latency_spike"), group_by=["model"], channel="#b")[0] != first, "one channel, one root"


def test_an_incident_opens_with_its_first_alert_and_climbs_on_its_policy() -> None:
    change = open_with(alert(), key="#a|model=fraud", labels={"model": "fraud"}, channel="#a", now=T0)

    assert change.event.kind is IncidentEventKind.OPENED
    assert change.incident.state is IncidentState.FIRING
    assert change.incident.severity is Severity.P2
    assert change.incident.next_escalation_at == T0 + timedelta(minutes=15)


def test_a_joining_alert_raises_the_severity_never_lowers_it() -> None:
    opened = open_with(alert(severity=Severity.P2), key="k", labels={}, channel="#a", now=T0).incident

    raised = join(opened, alert("accuracy_degradation", severity=Severity.P1), now=T0).incident
    assert raised.severity is Severity.P1
    assert join(raised, alert("drift", severity=Severity.P3), now=T0).incident.severity is Severity.P1


def test_an_acknowledged_incident_stays_acknowledged_when_an_alert_joins() -> None:
    opened = open_with(alert(), key="k", labels={}, channel="#a", now=T0).incident
    acked = acknowledge(opened, actor="U_ANA", now=T0).incident

    assert join(acked, alert("accuracy_degradation"), now=T0).incident.state is IncidentState.ACKNOWLEDGED


def test_the_incident_resolves_with_its_last_open_alert() -> None:
    opened = open_with(alert(), key="k", labels={}, channel="#a", now=T0).incident

    assert alert_closed(opened, still_open=1, actor="rule:latency_spike", now=T0) is None
    done = alert_closed(opened, still_open=0, actor="rule:latency_spike", now=T0 + timedelta(minutes=9))
    assert done is not None
    assert done.event.kind is IncidentEventKind.AUTO_RESOLVED
    assert done.incident.state is IncidentState.RESOLVED
    assert done.incident.next_escalation_at is None
    by_person = alert_closed(opened, still_open=0, actor="U_BEN", now=T0)
    assert by_person is not None and by_person.event.kind is IncidentEventKind.RESOLVED


def test_people_act_once_and_are_told_why_a_second_click_does_nothing() -> None:
    opened = open_with(alert(), key="k", labels={}, channel="#a", now=T0).incident
    acked = acknowledge(opened, actor="U_ANA", now=T0 + timedelta(minutes=2)).incident

    assert acked.next_escalation_at is None, "acknowledge stops the climb"
    with pytest.raises(ActionRefused, match="Already acknowledged by U_ANA at 09:02"):
        acknowledge(acked, actor="U_BEN", now=T0)
    done = resolve(acked, actor="U_BEN", now=T0 + timedelta(minutes=5)).incident
    with pytest.raises(ActionRefused, match="Already resolved by U_BEN"):
        resolve(done, actor="U_ANA", now=T0)
    auto = alert_closed(opened, still_open=0, actor=SYSTEM_ACTOR, now=T0)
    assert auto is not None
    with pytest.raises(ActionRefused, match="auto-resolve"):
        acknowledge(auto.incident, actor="U_ANA", now=T0)


def test_a_storm_names_its_rule_and_takes_the_worst_severity() -> None:
    breached = [alert(model="m1"), alert(model="m2", severity=Severity.P1)]
    change = open_storm(breached, rule="latency_spike", channel="#a", now=T0)

    assert change.incident.storm_rule == "latency_spike"
    assert change.incident.group_key == storm_key("latency_spike", "#a")
    assert change.incident.severity is Severity.P1
