"""Escalation planning, pure: the next step of an unacknowledged incident, if it is due.

The policy is the one snapshotted when the incident opened (a configuration reload does not
change a climb in progress); each step, counted from when the incident opened, may raise its
severity. Acknowledge stops the climb; Resolve ends it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from bot.alerts.lifecycle import SYSTEM_ACTOR
from bot.config.durations import humanize
from bot.incidents.incident import (
    Incident,
    IncidentEvent,
    IncidentEventKind,
    IncidentState,
    IncidentTransition,
    next_deadline,
)


def escalate(incident: Incident, *, now: datetime) -> IncidentTransition | None:
    """Run the next policy step if its time has come; ``None`` when nothing is due.

    One step per call: after downtime the caller loops, so each overdue step still happens,
    once, in order. The new severity is the more severe of the current one and the step's.
    """
    if incident.state is not IncidentState.FIRING or incident.escalation_step >= len(incident.policy):
        return None
    step = incident.policy[incident.escalation_step]
    if incident.opened_at + incident.paused + step.after > now:
        return None
    number = incident.escalation_step + 1
    severity = min(incident.severity, step.severity)
    climbed = replace(incident, severity=severity, escalation_step=number)
    climbed = replace(climbed, next_escalation_at=next_deadline(climbed))
    raised = f"severity {incident.severity.value} → {severity.value}" if severity != incident.severity else ""
    detail = f"unacknowledged for {humanize(step.after)}" + (f"; {raised}" if raised else "")
    data: dict[str, object] = {
        "step": number,
        "steps": len(incident.policy),
        "after_seconds": step.after.total_seconds(),
        "from_severity": incident.severity.value,
        "to_severity": severity.value,
        "mention": step.mention,
        "routing_key": step.routing_key,
    }
    event = IncidentEvent(IncidentEventKind.ESCALATED, SYSTEM_ACTOR, now, detail, data)
    return IncidentTransition(climbed, event)
