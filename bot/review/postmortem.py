"""The postmortem draft an incident leaves at resolve: Markdown from measured facts. Pure.

No language model writes it: every number is measured from stored data by the gatherer
(:mod:`bot.incident_review`) into :class:`PostmortemFacts`, and this module only lays them out,
so the draft says what happened -- minutes each alert fired, the error budget each SLO of the
model spent between start and resolve, the cost while it lasted, how fast people acknowledged,
declared and resolved, what paged, what shipped shortly before, the timeline, the resolution
note -- and leaves the *why* to the people who edit it, with a checklist of what to follow up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.alerts.lifecycle import SYSTEM_ACTOR
from bot.changes.events import Change, how_long_before
from bot.config.durations import humanize, window_words
from bot.incidents.incident import Incident
from bot.incidents.timeline import Entry, timeline_text, who
from bot.notify.slack_text import escape_mrkdwn


@dataclass(frozen=True)
class AlertImpact:
    """One alert of the incident: how long it fired (fired → resolved, or → the draft's time)."""

    key: str
    title: str
    fired_at: datetime
    resolved_at: datetime | None
    minutes: float


@dataclass(frozen=True)
class BudgetImpact:
    """One SLO of the incident's models: the share of its whole error budget the incident spent."""

    model: str
    slo: str
    window: timedelta
    spent: float | None
    """``None``: nothing to measure (no data in the span)."""


@dataclass(frozen=True)
class CostImpact:
    """A cost metric (catalogue unit USD) of a model while the incident lasted."""

    model: str
    metric: str
    mean: float
    peak: float
    baseline: float | None
    """The model's ``<metric>_baseline`` setting, when it has one."""


@dataclass(frozen=True)
class PostmortemFacts:
    incident: Incident
    models: tuple[str, ...]
    rules: tuple[str, ...]
    alerts: tuple[AlertImpact, ...]
    budgets: tuple[BudgetImpact, ...]
    costs: tuple[CostImpact, ...]
    acknowledged: tuple[datetime, str] | None
    """The first acknowledgement: when and by whom (a later release does not undo it)."""
    escalations: int
    pages: tuple[Entry, ...]
    changes: tuple[Change, ...]
    change_window: timedelta
    timeline: tuple[Entry, ...]
    charts: tuple[str, ...] = ()
    """File names of the metric charts attached beside the draft."""
    charts_missing: str = ""
    """Why there are no charts (the charts extra is not installed), if so."""


def minutes(delta: timedelta | None) -> str:
    return "—" if delta is None else humanize(delta)


def durations(facts: PostmortemFacts) -> tuple[timedelta | None, timedelta | None, timedelta | None]:
    """Time to acknowledge, to declare and to resolve, from when the incident opened."""
    i = facts.incident
    tta = facts.acknowledged[0] - i.opened_at if facts.acknowledged else None
    ttd = i.declared_at - i.opened_at if i.declared_at else None
    ttr = i.resolved_at - i.opened_at if i.resolved_at else None
    return tta, ttd, ttr


def render_markdown(facts: PostmortemFacts) -> str:
    """The whole draft as a Markdown document."""
    i = facts.incident
    sections = [
        f"# Postmortem draft: {i.title or ', '.join(facts.rules)} (incident #{i.id})",
        "_Written by incident-bot from stored data when the incident resolved; edit it before sharing._",
        "## Summary\n" + _summary(facts),
        "## Impact\n" + _impact(facts),
        "## Response\n" + _response(facts),
        "## Escalations and pages\n" + _escalations(facts),
        f"## Changes in the {humanize(facts.change_window)} before the start\n" + _changes(facts),
        "## Timeline\n" + timeline_text(facts.timeline),
        "## Charts\n" + _charts(facts),
        "## Resolution note\n" + _note(facts),
        "## Follow-up\n" + "\n".join(f"- [ ] {item}" for item in followups(facts)),
    ]
    return "\n\n".join(sections) + "\n"


def summary_text(facts: PostmortemFacts) -> str:
    """The short message posted in the room beside the file (Slack mrkdwn)."""
    i = facts.incident
    tta, ttd, ttr = durations(facts)
    firing = "; ".join(f"`{a.key}` {humanize(timedelta(minutes=a.minutes))}" for a in facts.alerts) or "—"
    parts = [
        f"📝 *Postmortem draft* for incident #{i.id} ({i.severity.value} · {', '.join(facts.models)})",
        f"Firing: {firing}",
        f"Acknowledged after {minutes(tta)} · declared after {minutes(ttd)} · resolved after {minutes(ttr)}",
    ]
    spent = [f"{b.slo} {_percent(b.spent)}" for b in facts.budgets if b.spent is not None]
    if spent:
        parts.append("Error budget spent: " + ", ".join(spent))
    parts.append(_note_line(i, slack=True))
    return "\n".join(parts)


def _summary(facts: PostmortemFacts) -> str:
    i = facts.incident
    models, rules = ", ".join(facts.models) or "—", ", ".join(facts.rules) or "—"
    lines = [
        f"- Severity {i.severity.value}; models {models}; rules {rules}",
        f"- Opened {i.opened_at:%d %b %Y %H:%M} UTC; resolved "
        + (f"{i.resolved_at:%d %b %H:%M} UTC by {who(i.resolved_by or SYSTEM_ACTOR)}" if i.resolved_at else "—"),
    ]
    if i.declared_at:
        room = f"#{i.room}" if i.room else "its room"
        lines.append(f"- Declared by {who(i.declared_by or '')} at {i.declared_at:%H:%M} UTC in {room}")
    if i.commander:
        lines.append(f"- Commander: {who(i.commander)}")
    return "\n".join(lines)


def _impact(facts: PostmortemFacts) -> str:
    lines = ["| Alert | Fired | Resolved | Firing for |", "|---|---|---|---|"]
    for a in facts.alerts:
        end = f"{a.resolved_at:%H:%M} UTC" if a.resolved_at else "still open"
        lines.append(f"| `{a.key}` {a.title} | {a.fired_at:%H:%M} UTC | {end} | {a.minutes:.0f} min |")
    lines.append("")
    if facts.budgets:
        lines.append("Error budget spent between the start and the resolve:")
        for b in facts.budgets:
            spent = "no data" if b.spent is None else f"{_percent(b.spent)} of its {window_words(b.window)} budget"
            lines.append(f"- {b.model} {b.slo}: {spent}")
    else:
        lines.append(f"No SLO is configured for {', '.join(facts.models)}: no error budget to measure.")
    lines.append("")
    lines += _costs(facts)
    return "\n".join(lines)


def _costs(facts: PostmortemFacts) -> list[str]:
    if not facts.costs:
        return ["Cost: no cost metric (unit USD) has samples for these models while it lasted."]
    lines = ["Cost while it lasted:"]
    for c in facts.costs:
        line = f"- {c.model} `{c.metric}`: mean ${c.mean:,.2f}, peak ${c.peak:,.2f}"
        if c.baseline is None:
            line += f"; no baseline configured (set `{c.metric}_baseline` on the model to compare)"
        elif c.baseline > 0:
            line += f"; baseline ${c.baseline:,.2f}, so {c.mean / c.baseline:.1f}× baseline"
        lines.append(line)
    return lines


def _response(facts: PostmortemFacts) -> str:
    tta, ttd, ttr = durations(facts)
    by = f" by {who(facts.acknowledged[1])}" if facts.acknowledged else ""
    return "\n".join(
        [
            f"- Time to acknowledge: {minutes(tta) if tta is not None else 'never acknowledged'}{by}",
            f"- Time to declare: {minutes(ttd) if ttd is not None else 'not declared'}",
            f"- Time to resolve: {minutes(ttr)}",
        ]
    )


def _escalations(facts: PostmortemFacts) -> str:
    lines = [f"- Escalation steps: {facts.escalations}"]
    lines += [f"- {p.at:%H:%M} UTC: {p.text}" for p in facts.pages] or ["- No page was sent."]
    return "\n".join(lines)


def _changes(facts: PostmortemFacts) -> str:
    if not facts.changes:
        return "Nothing was recorded as shipped (`POST /api/v1/changes`)."
    opened = facts.incident.opened_at
    lines = []
    for c in facts.changes:
        by = f" by {c.author}" if c.author else ""
        link = f" ({c.link})" if c.link else ""
        lines.append(f"- {c.said()} to {c.model}, {how_long_before(c, opened)}{by}{link}")
    return "\n".join(lines)


def _charts(facts: PostmortemFacts) -> str:
    if facts.charts:
        return "\n".join(f"- `{name}` (attached)" for name in facts.charts)
    return facts.charts_missing or "No metric had samples to draw."


def _note(facts: PostmortemFacts) -> str:
    return _note_line(facts.incident, slack=False)


def _note_line(incident: Incident, *, slack: bool) -> str:
    note = incident.resolution_note
    if not note:
        return "Resolution note: _none yet_ — what caused it, and what fixed it?"
    by = who(str(note.get("by") or ""), slack=slack)
    cause, fix = (str(note.get(k) or "—") for k in ("cause", "fix"))
    if slack:  # what people typed, said in Slack: no mentions or links of theirs
        cause, fix = escape_mrkdwn(cause), escape_mrkdwn(fix)
    return f"Resolution note by {by}: cause: {cause}; fix: {fix}"


def followups(facts: PostmortemFacts) -> list[str]:
    """What the team should still do, from what the facts show (plus the standing questions)."""
    i = facts.incident
    items = []
    if not i.resolution_note:
        items.append("Write the resolution note: cause and fix (the next on-call sees it as “Seen before”)")
    if facts.changes:
        latest = facts.changes[0]
        items.append(f"Check whether {latest.said()} on {latest.model} caused it; roll back or fix forward")
    if facts.acknowledged is None:
        items.append("Nobody acknowledged it: check the on-call rota and the escalation policy")
    if facts.pages and i.severity.rank >= 2:
        items.append("It paged but ended below P1: was the page worth waking someone?")
    if any(b.spent is not None and b.spent >= 0.1 for b in facts.budgets):
        items.append("It spent 10% or more of an error budget: review the SLO's remaining budget and releases")
    items += [
        "Update the runbook with what worked",
        f"Decide whether {', '.join(facts.rules) or 'the rule'} fired at the right time (too late, too noisy?)",
        "Share this postmortem with the team",
    ]
    return items


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"
