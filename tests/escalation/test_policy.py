"""escalate(): the pure escalation step of an incident, counted from when it opened.

The shipped default policy (seed 001): P3 at 15 min, P2 at 30 min, P1 at 60 min. Each call runs
at most one step; the new severity is the more severe of the incident's and the step's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.alerts.lifecycle import SYSTEM_ACTOR, PolicyStep
from bot.escalation.policy import escalate
from bot.incidents.incident import (
    Incident,
    IncidentEventKind,
    IncidentState,
    IncidentTransition,
    acknowledge,
    next_deadline,
    resolve,
)
from bot.severity import Severity

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DEFAULT_POLICY = (
    PolicyStep(15 * MINUTE, Severity.P3),
    PolicyStep(30 * MINUTE, Severity.P2),
    PolicyStep(60 * MINUTE, Severity.P1, mention="@ml-oncall", routing_key="L2-KEY"),
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def firing(severity: Severity = Severity.P2, policy: tuple[PolicyStep, ...] = DEFAULT_POLICY) -> Incident:
    """An incident that opened at T0, as its first alert leaves it: its first deadline set."""
    incident = Incident(
        group_key="#ml-alerts|model=fraud-detector-v2",
        channel="#ml-alerts",
        severity=severity,
        state=IncidentState.FIRING,
        opened_at=T0,
        policy=policy,
    )
    return replace(incident, next_escalation_at=next_deadline(incident))


def climb(incident: Incident, now: datetime) -> list[IncidentTransition]:
    """What a sweep at ``now`` does: call escalate() until nothing more is due."""
    changes: list[IncidentTransition] = []
    while (change := escalate(incident, now=now)) is not None:
        changes.append(change)
        incident = change.incident
    return changes


def test_an_opened_incident_knows_its_first_deadline() -> None:
    assert firing().next_escalation_at == at(15)


@pytest.mark.parametrize("minutes", [0, 1, 14, 14.99])
def test_nothing_runs_before_the_first_deadline(minutes: float) -> None:
    assert escalate(firing(), now=at(minutes)) is None


def test_step_one_runs_at_exactly_opened_at_plus_fifteen_minutes() -> None:
    change = escalate(firing(Severity.P3), now=at(15))

    assert change is not None
    assert change.event.kind is IncidentEventKind.ESCALATED
    assert change.event.actor == SYSTEM_ACTOR and change.event.at == at(15)
    assert change.incident.escalation_step == 1
    assert change.incident.state is IncidentState.FIRING


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # a P3 alert climbs the whole ladder
        (Severity.P3, [Severity.P3, Severity.P2, Severity.P1]),
        # a P2 alert stays P2 at the P3 step, then reaches P1
        (Severity.P2, [Severity.P2, Severity.P2, Severity.P1]),
        # a P1 alert stays P1 through the P3 and P2 steps: escalation never lowers severity
        (Severity.P1, [Severity.P1, Severity.P1, Severity.P1]),
        (Severity.P0, [Severity.P0, Severity.P0, Severity.P0]),
    ],
)
def test_severity_becomes_the_more_severe_of_current_and_step(start: Severity, expected: list[Severity]) -> None:
    alert = firing(start)
    seen = []
    for minutes in (15, 30, 60):
        change = escalate(alert, now=at(minutes))
        assert change is not None
        alert = change.incident
        seen.append(alert.severity)
    assert seen == expected


def test_one_step_per_call_even_when_several_are_overdue() -> None:
    change = escalate(firing(), now=at(90))

    assert change is not None
    assert change.incident.escalation_step == 1
    assert change.event.data["step"] == 1
    assert change.incident.next_escalation_at == at(30)  # still overdue: the caller loops


def test_after_downtime_a_loop_runs_each_overdue_step_once_in_order() -> None:
    changes = climb(firing(), now=at(90))  # the bot was down from T0 to T0+90m

    assert [c.event.data["step"] for c in changes] == [1, 2, 3]
    assert [c.event.data["to_severity"] for c in changes] == ["P2", "P2", "P1"]
    assert all(c.event.at == at(90) for c in changes)
    assert changes[-1].incident.escalation_step == 3
    assert changes[-1].incident.next_escalation_at is None
    assert escalate(changes[-1].incident, now=at(90)) is None


def test_a_loop_only_runs_the_steps_that_are_due() -> None:
    changes = climb(firing(), now=at(45))

    assert [c.event.data["step"] for c in changes] == [1, 2]
    assert changes[-1].incident.next_escalation_at == at(60)


def test_calling_again_at_the_same_instant_runs_nothing_more() -> None:
    change = escalate(firing(), now=at(15))
    assert change is not None

    assert escalate(change.incident, now=at(15)) is None
    assert escalate(change.incident, now=at(29)) is None


def test_an_acknowledged_incident_never_climbs() -> None:
    acked = acknowledge(firing(), actor="U_ANA", now=at(10)).incident

    assert acked.next_escalation_at is None
    assert climb(acked, now=at(120)) == []


def test_acknowledging_midway_stops_the_climb() -> None:
    after_first = escalate(firing(), now=at(15))
    assert after_first is not None
    acked = acknowledge(after_first.incident, actor="U_ANA", now=at(20)).incident

    assert acked.next_escalation_at is None
    assert acked.escalation_step == 1
    assert climb(acked, now=at(120)) == []


@pytest.mark.parametrize("minutes", [5, 45])
def test_a_resolved_incident_never_climbs(minutes: float) -> None:
    alert = firing()
    for change in climb(alert, now=at(minutes)):
        alert = change.incident
    done = resolve(alert, actor="U_BEN", now=at(minutes)).incident

    assert done.next_escalation_at is None
    assert climb(done, now=at(120)) == []


def test_an_incident_without_a_policy_never_climbs() -> None:
    incident = firing(policy=())

    assert incident.next_escalation_at is None
    assert escalate(incident, now=at(120)) is None


def test_the_event_carries_the_step_facts_for_notifiers() -> None:
    changes = climb(firing(Severity.P2), now=at(60))
    first, last = changes[0].event, changes[-1].event

    assert dict(first.data) == {
        "step": 1,
        "steps": 3,
        "after_seconds": 900.0,
        "from_severity": "P2",
        "to_severity": "P2",
        "mention": None,
        "routing_key": None,
    }
    assert dict(last.data) == {
        "step": 3,
        "steps": 3,
        "after_seconds": 3600.0,
        "from_severity": "P2",
        "to_severity": "P1",
        "mention": "@ml-oncall",
        "routing_key": "L2-KEY",
    }
    assert first.detail == "unacknowledged for 15 min"
    assert last.detail == "unacknowledged for 1 h; severity P2 → P1"


def test_a_seconds_long_policy_is_described_in_seconds() -> None:
    change = escalate(firing(policy=(PolicyStep(timedelta(seconds=5), Severity.P1),)), now=T0 + timedelta(seconds=5))

    assert change is not None
    assert change.event.detail == "unacknowledged for 5 s; severity P2 → P1"


def test_next_escalation_at_moves_to_each_next_step_then_none_after_the_last() -> None:
    alert = firing()
    deadlines = [alert.next_escalation_at]
    for minutes in (15, 30, 60):
        change = escalate(alert, now=at(minutes))
        assert change is not None
        alert = change.incident
        deadlines.append(alert.next_escalation_at)

    assert deadlines == [at(15), at(30), at(60), None]
    assert next_deadline(alert) is None
    assert escalate(alert, now=at(600)) is None


def test_escalation_does_not_touch_what_the_incident_is_about() -> None:
    incident = replace(firing(), title="drift", paged_keys=("",), id=7, version=3)
    change = escalate(incident, now=at(15))

    assert change is not None
    assert change.incident.title == "drift"
    assert change.incident.paged_keys == ("",)  # who gets paged is routing's business, not the policy's
    assert (change.incident.id, change.incident.version) == (7, 3)  # the store bumps the version


def test_the_page_names_the_incident_and_stays_the_same_across_the_climb() -> None:
    incident = replace(firing(), id=12)
    changes = climb(incident, now=at(60))

    assert incident.occurrence == "incident:12:20260105T090000Z"
    assert {c.incident.occurrence for c in changes} == {incident.occurrence}


