"""An incident's timeline: every event with its actor and time, in one list. Pure: no I/O.

The incident's own history (opened, joined, acknowledged, escalated, declared, commander,
updates, notes marked ⏱ in the room, resolved …) is most of it; its alerts' histories add when
each alert fired and closed on its own; an escalation (or an opening) that paged PagerDuty says
so in its data (``paged``: the routing keys), which becomes a *paged* entry of its own; and the
silences set on its rules and models while it was open add *silenced* entries. A person's action
on the whole incident is also recorded on each of its alerts (at the same moment, by the same
person): those echoes are left out, so "acknowledged" appears once.

The review (:mod:`bot.review.postmortem`), the room and ``incident-bot postmortem`` read the same
entries; :func:`timeline_text` writes them for Slack (mentions) or Markdown (plain ``@U…``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, Event, EventKind
from bot.config.durations import humanize
from bot.incidents.incident import Incident, IncidentEvent, IncidentEventKind
from bot.silences.silence import Silence


@dataclass(frozen=True)
class Entry:
    """One line of the timeline: when, who (a Slack user id, or ``incident-bot``), what kind, what."""

    at: datetime
    actor: str
    kind: str
    text: str
    person: str | None = None
    """A person the entry names after its text (the new commander), shown as a mention in Slack."""


_INCIDENT_WORDS: Mapping[IncidentEventKind, str] = {
    IncidentEventKind.OPENED: "opened",
    IncidentEventKind.JOINED: "joined",
    IncidentEventKind.ACKNOWLEDGED: "acknowledged",
    IncidentEventKind.RESOLVED: "resolved",
    IncidentEventKind.AUTO_RESOLVED: "resolved",
    IncidentEventKind.ESCALATED: "escalated",
    IncidentEventKind.DECLARED: "declared",
    IncidentEventKind.COMMANDER: "commander",
    IncidentEventKind.UPDATE: "update",
    IncidentEventKind.NOTED: "noted",
    IncidentEventKind.RESOLUTION_NOTE: "resolution note",
    IncidentEventKind.REMINDED: "reminded",
    IncidentEventKind.STILL_ON_IT: "still on it",
    IncidentEventKind.RELEASED: "released",
}
_ALERT_KINDS = (EventKind.FIRED, EventKind.ACKNOWLEDGED, EventKind.RESOLVED, EventKind.AUTO_RESOLVED)


def build(
    incident: Incident,
    history: Sequence[IncidentEvent],
    alerts: Sequence[Alert],
    alert_histories: Mapping[int, Sequence[Event]],
    silences: Sequence[Silence] = (),
) -> list[Entry]:
    """The incident's timeline, oldest first; at the same instant an alert's own event comes before
    the incident's (the alert that fired opened it), and otherwise the order they were recorded in."""
    whole = {(e.kind, e.at, e.actor) for e in history}
    entries = [
        _alert_entry(alert, event)
        for alert in alerts
        for event in alert_histories.get(alert.id or 0, ())
        if event.kind in _ALERT_KINDS and not _echo(event, whole)
    ]
    entries += [entry for event in history for entry in _incident_entries(event)]
    entries += _silence_entries(incident, alerts, silences)
    return sorted(entries, key=lambda e: e.at)


def _echo(event: Event, whole: set[tuple[IncidentEventKind, datetime, str]]) -> bool:
    """An alert's half of a person's action on the whole incident (same kind, moment and person)."""
    kinds = {EventKind.ACKNOWLEDGED: IncidentEventKind.ACKNOWLEDGED, EventKind.RESOLVED: IncidentEventKind.RESOLVED}
    kind = kinds.get(event.kind)
    return kind is not None and (kind, event.at, event.actor) in whole


def _incident_entries(event: IncidentEvent) -> list[Entry]:
    kind = _INCIDENT_WORDS.get(event.kind, event.kind.value)
    text = _incident_text(event)
    person = event.detail if event.kind is IncidentEventKind.COMMANDER else None
    entries = [Entry(event.at, event.actor, kind, text, person)]
    paged = event.data.get("paged")
    if isinstance(paged, list | tuple) and paged:
        keys = ", ".join(f"`{k}`" if k else "the default service" for k in paged)
        entries.append(Entry(event.at, SYSTEM_ACTOR, "paged", f"paged PagerDuty ({keys})"))
    return entries


def _incident_text(event: IncidentEvent) -> str:
    detail = event.detail
    match event.kind:
        case IncidentEventKind.OPENED:
            return f"incident opened by {detail}" if detail else "incident opened"
        case IncidentEventKind.JOINED:
            return f"{detail} joined the incident"
        case IncidentEventKind.ACKNOWLEDGED:
            return "acknowledged the whole incident"
        case IncidentEventKind.RESOLVED:
            return "resolved the whole incident" + (f" ({detail})" if detail else "")
        case IncidentEventKind.AUTO_RESOLVED:
            return "auto-resolved: every alert cleared"
        case IncidentEventKind.DECLARED:
            return f"declared an incident; room #{detail}"
        case IncidentEventKind.COMMANDER:
            return "commander is now"
    return detail or event.kind.value.replace("_", " ")


def _alert_entry(alert: Alert, event: Event) -> Entry:
    words = {
        EventKind.FIRED: "fired",
        EventKind.ACKNOWLEDGED: "acknowledged",
        EventKind.RESOLVED: "resolved",
        EventKind.AUTO_RESOLVED: "resolved",
    }
    if event.kind is EventKind.FIRED:
        text = f"{alert.key} fired" + (f": {alert.title}" if alert.title else "")
    elif event.kind is EventKind.AUTO_RESOLVED:
        text = f"{alert.key} cleared (auto-resolved)"
    else:
        text = f"{alert.key} {words[event.kind]}"
    actor = SYSTEM_ACTOR if event.actor.startswith("rule:") else event.actor
    return Entry(event.at, actor, words[event.kind], text)


def _silence_entries(incident: Incident, alerts: Sequence[Alert], silences: Iterable[Silence]) -> list[Entry]:
    """Silences set on one of its rules or models while it was open."""
    end = incident.resolved_at
    entries = []
    for silence in silences:
        during = silence.starts_at >= incident.opened_at and (end is None or silence.starts_at <= end)
        if during and any(silence.matches(a.rule, a.model) for a in alerts):
            why = f": {silence.reason}" if silence.reason else ""
            length = humanize(silence.ends_at - silence.starts_at)
            text = f"silenced {silence.describe()} for {length}{why}"
            entries.append(Entry(silence.starts_at, silence.created_by, "silenced", text))
    return entries


def timeline_text(
    entries: Sequence[Entry], *, slack: Callable[[str], str] | None = None, limit: int | None = None
) -> str:
    """One line per entry: ``- 14:02 UTC · acknowledged · @U0ANA: acknowledged the whole incident``.
    ``slack``: the mrkdwn escaper (:func:`bot.notify.slack_text.escape_mrkdwn`) -- texts people
    wrote are escaped and actors become mentions (``<@U…>``); without it, plain ``@U…`` (Markdown
    files, the terminal). The date is shown when the timeline spans more than one day.
    ``limit``: the newest entries only."""
    if not entries:
        return "_No events recorded._"
    shown = list(entries)[-limit:] if limit else list(entries)
    days = {e.at.date() for e in entries}
    fmt = "%d %b %H:%M UTC" if len(days) > 1 else "%H:%M UTC"
    lines = []
    if len(shown) < len(entries):
        lines.append(f"- … {len(entries) - len(shown)} earlier entries")
    for entry in shown:
        text = slack(entry.text) if slack else entry.text
        text += f" {who(entry.person, slack=slack is not None)}" if entry.person else ""
        lines.append(f"- {entry.at:{fmt}} · {entry.kind} · {who(entry.actor, slack=slack is not None)}: {text}")
    return "\n".join(lines)


def who(actor: str, *, slack: bool = False) -> str:
    """A person as Slack shows them (``<@U…>``) or as plain text (``@U…``); the bot by name."""
    if not actor or actor == SYSTEM_ACTOR or actor.startswith("rule:"):
        return SYSTEM_ACTOR
    if actor.startswith(("U", "W")) and actor.isalnum():
        return f"<@{actor}>" if slack else f"@{actor}"
    return actor
