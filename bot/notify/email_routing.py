"""Who is emailed about an incident event (pure; :mod:`bot.notify.routing` wraps it in a delivery).

Email is the quiet channel of seed 001 (P3: "next business day, email / dashboard"), so it follows
the incident, not each alert: one message when an incident at a ``routing.email`` severity opens,
and one per change people act on (escalated, acknowledged, resolved). An alert joining an open
incident sends nothing: the thread would fill with noise nobody acts on.

An incident that was emailed keeps its readers once it outgrows ``routing.email``: a P3 that
escalates to P2 (and so to Slack and, later, PagerDuty) still tells its email thread that it
escalated and when it resolved, or its readers would believe it still open and low.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.alerts.lifecycle import Alert
from bot.config.loader import Config
from bot.incidents.incident import Incident, IncidentEvent, IncidentEventKind

OPENS = frozenset({IncidentEventKind.OPENED})
FOLLOW_UPS = frozenset(
    {
        IncidentEventKind.ESCALATED,
        IncidentEventKind.ACKNOWLEDGED,
        IncidentEventKind.RESOLVED,
        IncidentEventKind.AUTO_RESOLVED,
    }
)
EMAILED = OPENS | FOLLOW_UPS
"""Every kind of incident event that may be emailed."""


def incident_recipients(config: Config, members: Iterable[Alert], *, storm_rule: str | None = None) -> list[str]:
    """The union of the ``email:`` of the incident's models and rules, each address once (first
    spelling kept, compared without case), in configuration order."""
    found: dict[str, str] = {}
    members = list(members)
    models = [config.models.get(a.model) for a in members]
    rules = [config.rule(name) for name in [*([storm_rule] if storm_rule else []), *(a.rule for a in members)]]
    for source in [*models, *rules]:
        for address in source.email if source is not None else []:
            found.setdefault(address.lower(), address)
    return list(found.values())


def email_recipients(
    incident: Incident, event: IncidentEvent, config: Config, *, members: Iterable[Alert], emailed: bool
) -> list[str]:
    """Who hears about this incident event by email (empty: no email). ``emailed``: an earlier
    event of this incident was emailed, so its readers hear the follow-ups whatever the severity."""
    at_email_severity = incident.severity in config.routing.email
    if event.kind in OPENS:
        wanted = at_email_severity
    elif event.kind in FOLLOW_UPS:
        wanted = at_email_severity or emailed
    else:
        wanted = False
    return incident_recipients(config, members, storm_rule=incident.storm_rule) if wanted else []
