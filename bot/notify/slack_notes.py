"""Resolution notes in Slack, the message side (pure): the **Add resolution note** button under a
resolve's thread reply, and the ``Seen before:`` line of a new incident's root.

A note is how the next on-call learns from this one: when the same rule and model open a new
incident, its root names the last three occurrences -- when, who resolved it, how long it took and
what they wrote down -- so the first question ("has this happened before, and what fixed it?") is
answered before it is asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, ButtonElement

from bot.alerts.lifecycle import SYSTEM_ACTOR
from bot.config.durations import humanize
from bot.incidents.incident import Incident, IncidentState
from bot.notify.slack_text import SECTION_LIMIT, clip, escape_mrkdwn, mention, section

ADD_NOTE_ACTION = "incident_add_note"
"""The button's action id; its value is the incident id (:mod:`bot.slack.resolution_notes` opens the modal)."""
SEEN_BEFORE = 3
NOTE_CHARS = 120
"""How much of a past note's cause and fix a ``Seen before`` line quotes."""


def wants_note(incident: Incident) -> bool:
    """A resolved incident nobody wrote a note for: its resolve reply offers the button."""
    return incident.state is IncidentState.RESOLVED and not incident.resolution_note


def reply_with_note_button(text: str, incident_id: int | None) -> list[dict[str, Any]]:
    """A reply's blocks (the resolve's, the postmortem summary's): its text, then **Add resolution note**."""
    button = ButtonElement(text="Add resolution note", action_id=ADD_NOTE_ACTION, value=str(incident_id))
    return [section(text).to_dict(), ActionsBlock(block_id="resolution_note", elements=[button]).to_dict()]


def seen_before_line(past: Sequence[Incident]) -> str:
    """``Seen before: 3 Dec 14:02 (resolved by @ana in 42 min: prompt v42 / rolled back) · …``,
    newest first; empty when there is no past incident."""
    if not past:
        return ""
    return clip("🔁 Seen before: " + " · ".join(_occurrence(i) for i in past[:SEEN_BEFORE]), SECTION_LIMIT)


def _occurrence(incident: Incident) -> str:
    took = humanize(incident.resolved_at - incident.opened_at) if incident.resolved_at else "?"
    who = incident.resolved_by
    by = (
        "auto-resolved"
        if who in (None, SYSTEM_ACTOR) or (who or "").startswith("rule:")
        else f"resolved by {mention(who)}"
    )
    note = incident.resolution_note or {}
    said = " / ".join(clip(str(note[k]), NOTE_CHARS) for k in ("cause", "fix") if note.get(k))
    told = f": {escape_mrkdwn(said)}" if said else ": no note"
    opened = incident.opened_at
    return f"{opened.day} {opened:%b %H:%M} ({by} in {took}{told})"
