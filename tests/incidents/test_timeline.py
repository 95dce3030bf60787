"""The incident timeline, pure: every event with actor and time, echoes left out, pages and silences named."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, AlertState, Event, EventKind
from bot.incidents.incident import IncidentEvent, IncidentEventKind, open_with
from bot.incidents.timeline import Entry, build, timeline_text
from bot.severity import Severity
from bot.silences.silence import Silence

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
ANA = "U0ANA0001"


def alert(rule: str = "latency_spike", alert_id: int = 1) -> Alert:
    return Alert(
        rule=rule,
        model="fraud-v2",
        severity=Severity.P1,
        state=AlertState.RESOLVED,
        started_at=T0,
        fired_at=T0,
        title=f"{rule} on fraud-v2",
        id=alert_id,
    )


def test_every_event_in_time_order_with_its_actor_and_the_person_s_echo_on_the_alert_left_out() -> None:
    first, second = alert(), alert("data_drift", 2)
    incident = replace(open_with(first, key="k", labels={}, channel="#ml", now=T0).incident, resolved_at=T0 + 30 * MIN)
    history = [
        IncidentEvent(IncidentEventKind.OPENED, SYSTEM_ACTOR, T0, first.key, {"paged": [""]}),
        IncidentEvent(IncidentEventKind.JOINED, SYSTEM_ACTOR, T0 + 2 * MIN, second.key),
        IncidentEvent(IncidentEventKind.ESCALATED, SYSTEM_ACTOR, T0 + 15 * MIN, "unacknowledged for 15 min"),
        IncidentEvent(IncidentEventKind.ACKNOWLEDGED, ANA, T0 + 20 * MIN),
        IncidentEvent(IncidentEventKind.NOTED, ANA, T0 + 25 * MIN, "rolled back to v41", {"ts": "1.2"}),
        IncidentEvent(IncidentEventKind.RESOLVED, ANA, T0 + 30 * MIN),
    ]
    histories = {
        1: [
            Event(EventKind.FIRED, SYSTEM_ACTOR, T0),
            Event(EventKind.ACKNOWLEDGED, ANA, T0 + 20 * MIN),  # the echo of the incident's acknowledgement
            Event(EventKind.RESOLVED, ANA, T0 + 30 * MIN),
        ],
        2: [Event(EventKind.FIRED, SYSTEM_ACTOR, T0 + 2 * MIN), Event(EventKind.AUTO_RESOLVED, "rule:x", T0 + 9 * MIN)],
    }
    silence = Silence("data_drift", "fraud-v2", T0 + 5 * MIN, T0 + 65 * MIN, ANA, reason="known drift")

    entries = build(incident, history, [first, second], histories, [silence])

    assert [(e.at - T0, e.kind, e.actor) for e in entries] == [
        (0 * MIN, "fired", SYSTEM_ACTOR),  # the alert that opened the incident comes first
        (0 * MIN, "opened", SYSTEM_ACTOR),
        (0 * MIN, "paged", SYSTEM_ACTOR),
        (2 * MIN, "fired", SYSTEM_ACTOR),
        (2 * MIN, "joined", SYSTEM_ACTOR),
        (5 * MIN, "silenced", ANA),
        (9 * MIN, "resolved", SYSTEM_ACTOR),
        (15 * MIN, "escalated", SYSTEM_ACTOR),
        (20 * MIN, "acknowledged", ANA),
        (25 * MIN, "noted", ANA),
        (30 * MIN, "resolved", ANA),
    ]
    texts = [e.text for e in entries]
    assert "paged PagerDuty (the default service)" in texts
    assert "data_drift:fraud-v2 cleared (auto-resolved)" in texts
    assert "silenced data_drift on fraud-v2 for 1 h: known drift" in texts
    assert "rolled back to v41" in texts


def test_a_silence_before_the_incident_or_on_another_model_is_not_part_of_it() -> None:
    first = alert()
    incident = open_with(first, key="k", labels={}, channel="#ml", now=T0).incident
    before = Silence(None, "fraud-v2", T0 - MIN, T0 + MIN, ANA)
    elsewhere = Silence(None, "support-bot", T0 + MIN, T0 + 9 * MIN, ANA)

    assert build(incident, [], [first], {}, [before, elsewhere]) == []


def test_the_text_names_time_kind_and_person_as_a_mention_in_slack_and_plain_in_markdown() -> None:
    entries = [
        Entry(T0, SYSTEM_ACTOR, "fired", "latency_spike:fraud-v2 fired"),
        Entry(T0 + 3 * MIN, ANA, "acknowledged", "acknowledged the whole incident"),
    ]

    assert timeline_text(entries) == (
        "- 09:00 UTC · fired · incident-bot: latency_spike:fraud-v2 fired\n"
        f"- 09:03 UTC · acknowledged · @{ANA}: acknowledged the whole incident"
    )
    said = [*entries, Entry(T0 + 4 * MIN, ANA, "noted", "<!channel> rolled back")]
    in_slack = timeline_text(said, slack=lambda t: t.replace("<", "&lt;").replace(">", "&gt;"))
    assert f"· <@{ANA}>: &lt;!channel&gt; rolled back" in in_slack
    assert timeline_text(entries, limit=1).splitlines()[0] == "- … 1 earlier entries"
    spanning = [*entries, Entry(T0 + timedelta(days=1), ANA, "resolved", "resolved")]
    assert timeline_text(spanning).splitlines()[-1].startswith("- 05 Dec 09:00 UTC · resolved")
    assert timeline_text([]) == "_No events recorded._"
