"""Incidents: the unit people hear about. Pure: no I/O, the clock passed in.

An incident is the alerts of one *group* (their ``settings.group_by`` labels and the channel they
are told in, as Alertmanager groups per route) while any of them is open::

    (none) ──an alert fires──▶ FIRING ──acknowledge──▶ ACKNOWLEDGED
                                  │   ◀──an alert joins── (stays acknowledged)
                                  └──the last alert closes / resolve──▶ RESOLVED

* an alert that fires joins the open incident of its group, or opens one; a later alert of the
  group after the incident resolved opens a new incident;
* the incident's severity is the worst of its alerts and of its escalation steps; it escalates
  and pages as one (:mod:`bot.escalation`), so one incident is one root message and one page;
* a storm: when a pass would open more than ``storm_threshold`` incidents of one rule in one
  channel, those alerts join one *storm* incident instead, one root message for the fleet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, PolicyStep
from bot.errors import ActionRefused
from bot.severity import Severity

GROUP_LABELS = ("model", "rule")
"""The labels ``settings.group_by`` may name."""


class IncidentState(StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"

    @property
    def is_open(self) -> bool:
        return self is not IncidentState.RESOLVED


class IncidentEventKind(StrEnum):
    OPENED = "opened"
    JOINED = "joined"
    """An alert joined (or a silenced one was released into) the incident."""
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    """A person resolved the whole incident."""
    AUTO_RESOLVED = "auto_resolved"
    """Its last open alert closed."""
    ESCALATED = "escalated"
    DECLARED = "declared"
    """A person declared it an incident: it gets a room (:mod:`bot.incidents.response`)."""
    COMMANDER = "commander"
    UPDATE = "update"
    """A status update posted by a person (``detail``: the text)."""
    NOTED = "noted"
    """A room message added to the timeline (⏱ reaction or the **Add to timeline** shortcut)."""
    RESOLUTION_NOTE = "resolution_note"
    REMINDED = "reminded"
    """"Still on it?" was asked of its acknowledger (``settings.ack_reminder``)."""
    STILL_ON_IT = "still_on_it"
    RELEASED = "released"
    """Its acknowledger let it go (or did not answer a reminder): it climbs again."""


@dataclass(frozen=True)
class IncidentEvent:
    kind: IncidentEventKind
    actor: str
    at: datetime
    detail: str = ""
    data: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Incident:
    group_key: str
    """The group's identity: channel and group labels (``#ml-alerts|model=fraud-v2``)."""
    channel: str
    """Where people are told (the alerts' channel); a quiet channel is a delivery choice."""
    severity: Severity
    state: IncidentState
    opened_at: datetime
    title: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    storm_rule: str | None = None
    """Set on a storm incident: the rule that breached across the fleet."""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    policy: tuple[PolicyStep, ...] = ()
    escalation_step: int = 0
    """Index of the next policy step to run."""
    paused: timedelta = timedelta(0)
    """How long it was acknowledged before being released: its climb's deadlines move by that
    much, so a released incident resumes where it stopped (:func:`bot.incidents.response.release`)."""
    next_escalation_at: datetime | None = None
    paged_keys: tuple[str, ...] = ()
    """PagerDuty routing keys this incident paged ("" = the default key): they hear ack and resolve."""
    page_key: str | None = None
    """The key PagerDuty knows this incident by, when not ``incident:<id>`` (an alert adopted
    from before incidents existed keeps the key it paged under)."""
    declared_at: datetime | None = None
    declared_by: str | None = None
    room: str | None = None
    """The name of its Slack channel (``inc-2026-12-04-fraud-v2-accuracy-drop``), once declared."""
    room_id: str | None = None
    """The channel's ID, once Slack created it."""
    commander: str | None = None
    resolution_note: Mapping[str, str] | None = None
    """``cause``, ``fix``, ``by``, ``at``: what the resolver wrote down."""
    id: int | None = None
    version: int = 0

    @property
    def page_name(self) -> str:
        """The key PagerDuty dedups this incident's pages on, before the time of opening is added."""
        return self.page_key or f"incident:{self.id}"

    @property
    def occurrence(self) -> str:
        """Names this incident for PagerDuty: one dedup key, however many alerts it holds."""
        return f"{self.page_name}:{self.opened_at:%Y%m%dT%H%M%SZ}"


@dataclass(frozen=True)
class IncidentTransition:
    incident: Incident
    event: IncidentEvent


def group_key(alert: Alert, *, group_by: Sequence[str], channel: str) -> tuple[str, dict[str, str]]:
    """The group an alert belongs to: its channel plus the ``group_by`` labels' values."""
    labels = {name: (alert.model if name == "model" else alert.rule) for name in group_by}
    return channel + "|" + ",".join(f"{k}={v}" for k, v in labels.items()), labels


def storm_key(rule: str, channel: str) -> str:
    return f"{channel}|storm:{rule}"


def open_with(alert: Alert, *, key: str, labels: Mapping[str, str], channel: str, now: datetime) -> IncidentTransition:
    """A new incident, opened by ``alert`` firing; it escalates on the alert's policy snapshot."""
    incident = Incident(
        group_key=key,
        channel=channel,
        severity=alert.severity,
        state=IncidentState.FIRING,
        opened_at=now,
        title=alert.title,
        labels=dict(labels),
        policy=alert.policy,
    )
    incident = replace(incident, next_escalation_at=next_deadline(incident))
    return IncidentTransition(incident, IncidentEvent(IncidentEventKind.OPENED, SYSTEM_ACTOR, now, alert.key))


def open_storm(alerts: Sequence[Alert], *, rule: str, channel: str, now: datetime) -> IncidentTransition:
    """One incident for a fleet-wide breach of ``rule``: the alerts join it as they are recorded."""
    worst = min(a.severity for a in alerts)
    first = alerts[0]
    incident = Incident(
        group_key=storm_key(rule, channel),
        channel=channel,
        severity=worst,
        state=IncidentState.FIRING,
        opened_at=now,
        title=f"Storm: {rule} on {len(alerts)} models",
        labels={"rule": rule},
        storm_rule=rule,
        policy=first.policy,
    )
    incident = replace(incident, next_escalation_at=next_deadline(incident))
    detail = f"{len(alerts)} models breached {rule} at once"
    return IncidentTransition(incident, IncidentEvent(IncidentEventKind.OPENED, SYSTEM_ACTOR, now, detail))


def join(incident: Incident, alert: Alert, *, now: datetime) -> IncidentTransition:
    """``alert`` fired (or was released from a silence) into the open ``incident``: its severity
    is the worse of the two; an acknowledged incident stays acknowledged (someone is on it)."""
    if not incident.state.is_open:
        raise ValueError("an alert joins an open incident only")
    severity = min(incident.severity, alert.severity)
    joined = replace(incident, severity=severity)
    data = {"from_severity": incident.severity.value, "to_severity": severity.value}
    return IncidentTransition(joined, IncidentEvent(IncidentEventKind.JOINED, SYSTEM_ACTOR, now, alert.key, data))


def alert_closed(incident: Incident, *, still_open: int, actor: str, now: datetime) -> IncidentTransition | None:
    """One of its alerts resolved: the incident resolves with its last open alert."""
    if still_open or not incident.state.is_open:
        return None
    done = replace(
        incident, state=IncidentState.RESOLVED, resolved_at=now, resolved_by=actor, next_escalation_at=None
    )
    kind = IncidentEventKind.AUTO_RESOLVED if actor.startswith("rule:") or actor == SYSTEM_ACTOR else (
        IncidentEventKind.RESOLVED
    )
    return IncidentTransition(done, IncidentEvent(kind, actor, now, "its last open alert closed"))


def acknowledge(incident: Incident, *, actor: str, now: datetime) -> IncidentTransition:
    """A person takes the whole incident: the climb stops (the service acknowledges its alerts)."""
    if incident.state is IncidentState.FIRING:
        acked = replace(
            incident,
            state=IncidentState.ACKNOWLEDGED,
            acknowledged_at=now,
            acknowledged_by=actor,
            next_escalation_at=None,
        )
        return IncidentTransition(acked, IncidentEvent(IncidentEventKind.ACKNOWLEDGED, actor, now))
    raise ActionRefused(_refusal(incident, "acknowledge"))


def resolve(incident: Incident, *, actor: str, now: datetime) -> IncidentTransition:
    """A person declares the whole incident over (the service resolves its open alerts)."""
    if incident.state.is_open:
        done = replace(
            incident, state=IncidentState.RESOLVED, resolved_at=now, resolved_by=actor, next_escalation_at=None
        )
        return IncidentTransition(done, IncidentEvent(IncidentEventKind.RESOLVED, actor, now))
    raise ActionRefused(_refusal(incident, "resolve"))


def next_deadline(incident: Incident) -> datetime | None:
    """When the next escalation step is due: only a firing incident climbs, from when it opened."""
    if incident.state is not IncidentState.FIRING or incident.escalation_step >= len(incident.policy):
        return None
    return incident.opened_at + incident.paused + incident.policy[incident.escalation_step].after


def _refusal(incident: Incident, verb: str) -> str:
    if incident.state is IncidentState.ACKNOWLEDGED and verb == "acknowledge":
        return f"Already acknowledged by {incident.acknowledged_by} at {incident.acknowledged_at:%H:%M} UTC."
    if incident.state is IncidentState.RESOLVED:
        who = incident.resolved_by if incident.resolved_by != SYSTEM_ACTOR else "auto-resolve"
        if who and who.startswith("rule:"):
            who = "auto-resolve"
        return f"Already resolved by {who} at {incident.resolved_at:%H:%M} UTC; it cannot be changed."
    return f"Cannot {verb} an incident that is {incident.state.value}."
