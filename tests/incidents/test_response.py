"""Incident response, pure: declaring, the room's name, commander, updates, notes, release."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.alerts.lifecycle import Alert, AlertState, PolicyStep
from bot.errors import ActionRefused
from bot.escalation.policy import escalate
from bot.incidents.incident import Incident, IncidentEventKind, IncidentState, acknowledge, open_with, resolve
from bot.incidents.response import (
    add_resolution_note,
    declare,
    note,
    numbered,
    post_update,
    release,
    room_name,
    take_command,
)
from bot.severity import Severity

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
POLICY = (PolicyStep(timedelta(minutes=15), Severity.P1), PolicyStep(timedelta(minutes=45), Severity.P0))


def incident() -> Incident:
    alert = Alert(
        rule="accuracy_drop",
        model="fraud-v2",
        severity=Severity.P2,
        state=AlertState.FIRING,
        started_at=T0,
        fired_at=T0,
        policy=POLICY,
    )
    opened = open_with(alert, key="#ml|model=fraud-v2", labels={"model": "fraud-v2"}, channel="#ml", now=T0).incident
    return replace(opened, id=7)


def test_the_room_is_named_prefix_date_model_rule_in_slack_s_alphabet() -> None:
    name = room_name("inc-", day=date(2026, 12, 4), model="Fraud.V2", rule="accuracy drop")

    assert name == "inc-2026-12-04-fraud-v2-accuracy-drop"


def test_a_taken_name_gets_the_next_number_and_every_name_fits_80_characters() -> None:
    taken = {"inc-2026-12-04-m-r", "inc-2026-12-04-m-r-2"}

    assert room_name("inc-", day=date(2026, 12, 4), model="m", rule="r", taken=taken) == "inc-2026-12-04-m-r-3"
    long = room_name("inc-", day=date(2026, 12, 4), model="m" * 70, rule="r" * 30)
    assert len(long) == 80
    assert len(numbered(long, 12)) == 80 and numbered(long, 12).endswith("-12")


def test_declaring_records_who_when_and_the_room_and_a_second_declaration_is_told_where_it_is() -> None:
    change = declare(incident(), actor="U1", room="inc-x", now=T0 + timedelta(minutes=3))

    assert change.incident.declared_by == "U1" and change.incident.room == "inc-x"
    assert change.event.kind is IncidentEventKind.DECLARED and change.event.detail == "inc-x"
    with pytest.raises(ActionRefused, match=r"Already declared by <@U1> at 09:03 UTC: the room is #inc-x"):
        declare(change.incident, actor="U2", room="inc-y", now=T0 + timedelta(minutes=4))
    created = replace(change.incident, room_id="C42")
    with pytest.raises(ActionRefused, match="the room is <#C42>"):
        declare(created, actor="U2", room="inc-y", now=T0 + timedelta(minutes=4))


def test_a_resolved_incident_cannot_be_declared_or_given_a_commander() -> None:
    done = resolve(incident(), actor="U1", now=T0).incident

    with pytest.raises(ActionRefused, match="resolved"):
        declare(done, actor="U2", room="inc-x", now=T0)
    with pytest.raises(ActionRefused, match="resolved"):
        take_command(done, actor="U2", commander="U2", now=T0)


def test_the_commander_changes_hands_and_the_event_remembers_the_previous_one() -> None:
    first = take_command(incident(), actor="U1", commander="U1", now=T0).incident
    second = take_command(first, actor="U1", commander="U3", now=T0)

    assert second.incident.commander == "U3"
    assert second.event.data == {"from": "U1"} and second.event.detail == "U3"
    with pytest.raises(ActionRefused, match="already the commander"):
        take_command(second.incident, actor="U3", commander="U3", now=T0)


def test_updates_and_notes_are_events_that_leave_the_incident_as_it_was() -> None:
    before = incident()
    update = post_update(before, actor="U1", text="  rolled back to v41  ", now=T0)
    noted = note(before, actor="U2", text="error rate is back under 1%", now=T0, data={"ts": "1.2"})

    assert update.incident == before and update.event.detail == "rolled back to v41"
    assert noted.event.kind is IncidentEventKind.NOTED and noted.event.data == {"ts": "1.2"}
    with pytest.raises(ActionRefused, match="needs some text"):
        post_update(before, actor="U1", text="   ", now=T0)


def test_a_resolution_note_keeps_cause_fix_author_and_time() -> None:
    change = add_resolution_note(incident(), actor="U1", cause="prompt v42", fix="rolled back", now=T0)

    assert change.incident.resolution_note == {
        "cause": "prompt v42",
        "fix": "rolled back",
        "by": "U1",
        "at": T0.isoformat(),
    }
    with pytest.raises(ActionRefused, match="cause or a fix"):
        add_resolution_note(incident(), actor="U1", cause=" ", fix="", now=T0)


def test_a_released_incident_fires_again_and_climbs_with_the_time_that_was_left() -> None:
    acked = acknowledge(incident(), actor="U1", now=T0 + timedelta(minutes=10)).incident
    released = release(acked, actor="U1", now=T0 + timedelta(hours=2))

    assert released.incident.state is IncidentState.FIRING
    assert released.incident.acknowledged_by is None
    assert released.incident.next_escalation_at == T0 + timedelta(hours=2, minutes=5), "5 of 15 minutes were left"
    assert released.event.kind is IncidentEventKind.RELEASED
    with pytest.raises(ActionRefused, match="Only an acknowledged incident"):
        release(released.incident, actor="U1", now=T0)


def test_after_a_release_every_later_step_keeps_its_spacing() -> None:
    acked = acknowledge(incident(), actor="U1", now=T0 + timedelta(minutes=10)).incident
    released = release(acked, actor="U1", now=T0 + timedelta(hours=2)).incident  # 1 h 50 min acknowledged

    assert escalate(released, now=T0 + timedelta(hours=2, minutes=4)) is None
    first = escalate(released, now=T0 + timedelta(hours=2, minutes=5))
    assert first is not None and first.incident.severity is Severity.P1
    assert first.incident.next_escalation_at == T0 + timedelta(hours=2, minutes=35), "45 min after opening, moved"
    assert escalate(first.incident, now=T0 + timedelta(hours=2, minutes=34)) is None
