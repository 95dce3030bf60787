"""The thread replies of an incident's root message: pure sentences, escaped for mrkdwn.

Each records a change where the team discusses it: an alert's state change, an escalation,
PagerDuty's answer to a page, alerts joining the incident, a person's action on all of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, MarkdownTextObject, SectionBlock

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, EventKind
from bot.config.durations import humanize
from bot.incidents.incident import Incident
from bot.notify.slack_blocks import (
    INCIDENT_RELEASE_ACTION,
    INCIDENT_STILL_ON_IT_ACTION,
    bold_name,
    shown_values,
)
from bot.notify.slack_incident import by_severity
from bot.notify.slack_text import SECTION_LIMIT, clip, escape_mrkdwn, format_value, mention


def state_reply(
    alert: Alert,
    event_kind: EventKind | str,
    actor: str,
    now: datetime,
    *,
    escalation: object = None,
    paged: bool = False,
) -> str:
    """The one-line thread reply that records a state change where the team discusses it."""
    kind = str(event_kind)
    since = alert.fired_at or alert.started_at
    if kind == EventKind.ESCALATED:
        step = escalation if isinstance(escalation, dict) else {}
        return escalation_reply(step, alert.severity.value, page_note="; paged PagerDuty" if paged else "")
    if kind == EventKind.ACKNOWLEDGED:
        return f"✅ Acknowledged by {mention(actor)} at {(alert.acknowledged_at or now):%H:%M} UTC"
    if kind == EventKind.RESOLVED:
        return f"🟢 Resolved by {mention(actor)} after {humanize((alert.resolved_at or now) - since)}"
    if kind == EventKind.AUTO_RESOLVED:
        text = f"🟢 Auto-resolved: condition cleared after {humanize((alert.resolved_at or now) - since)}"
        data = escalation if isinstance(escalation, Mapping) else {}
        recovered = data.get("recovered")
        return text + recovery_text(alert.values, recovered if isinstance(recovered, Mapping) else {})
    if kind == EventKind.FIRED:
        return f"🔥 Fired at {since:%H:%M} UTC"
    return f"ℹ️ {escape_mrkdwn(kind.replace('_', ' ').capitalize())} ({mention(actor)})"


def escalation_reply(step: Mapping[str, object], severity: str, *, page_note: str) -> str:
    """ "⏫ Escalated to P1 — step 2/3, unacknowledged for 1h; paged PagerDuty · cc @ml-oncall".
    ``severity``: what it reached when the step does not say; ``page_note``: what to say of a page."""
    waited = step.get("after_seconds")
    waited_text = humanize(timedelta(seconds=float(waited))) if isinstance(waited, int | float) else "a while"
    before, after = step.get("from_severity"), step.get("to_severity", severity)
    head = f"⏫ Escalated to {after}" if before != after else f"⏫ Still unacknowledged ({after})"
    number = f"step {step['step']}/{step['steps']}" if "step" in step and "steps" in step else "escalation"
    text = f"{head} — {number}, unacknowledged for {waited_text}{page_note}"
    who = step.get("mention")
    if isinstance(who, str) and who:
        text += f" · cc {mention_target(who)}"
    return text


PAGE_ERROR_LIMIT = 500


def page_result_reply(payload: Mapping[str, object]) -> str:
    """The thread reply saying what PagerDuty did with a page: accepted, or failed for good."""
    if payload.get("outcome") == "accepted":
        key = payload.get("dedup_key")
        return "📟 PagerDuty accepted the page" + (f" (dedup key `{escape_mrkdwn(key)}`)" if key else "")
    error = escape_mrkdwn(str(payload.get("error") or "no reason given").strip())
    return f"⚠️ PagerDuty page failed: {clip(error, PAGE_ERROR_LIMIT)}"


def mention_target(who: str) -> str:
    """A user group id (``S…``) or user id (``U…``) becomes a real mention; text is escaped."""
    if re.fullmatch(r"S[A-Z0-9]{6,}", who):
        return f"<!subteam^{who}>"
    if re.fullmatch(r"[UW][A-Z0-9]{6,}", who):
        return f"<@{who}>"
    return escape_mrkdwn(who)


def recovery_text(fired: Mapping[str, object], recovered: Mapping[str, object]) -> str:
    """`` · fired at: p99_latency_ms 6,100 · recovered: p99_latency_ms 200``, for an auto-resolve's
    thread reply: what fired it, and what changed since (a model setting that fed the condition,
    the same before and after, is not news)."""
    fired, recovered = shown_values(fired), shown_values(recovered)
    recovered = {k: v for k, v in recovered.items() if fired.get(k) != v}

    def listed(values: Mapping[str, object]) -> str:
        return ", ".join(f"{escape_mrkdwn(k)} {escape_mrkdwn(format_value(v))}" for k, v in values.items())

    parts = [f"fired at: {listed(fired)}"] if fired else []
    parts += [f"recovered: {listed(recovered)}"] if recovered else []
    return clip("".join(f" · {p}" for p in parts), SECTION_LIMIT)


def also_firing(alerts: Sequence[Alert], *, refired: Sequence[Alert] = ()) -> str:
    """The thread reply when alerts join an incident that was already posted."""
    again = {a.id for a in refired}
    return "\n".join(
        f"🔁 Fired again: {bold_name(a)}" if a.id in again else f"➕ Also firing: {bold_name(a)}"
        for a in by_severity(alerts)
    )


def named(alert: Alert, reply: str) -> str:
    """A state-change reply in an incident of several alerts says which alert changed."""
    return f"{reply} — {bold_name(alert)}"


def incident_reply(incident: Incident, kind: str, payload: dict[str, Any], *, now: datetime) -> str:
    """The thread reply of an incident event: an escalation, or a person's action on all of it."""
    actor = str(payload.get("actor") or "")
    if kind == "escalated":
        step = payload.get("escalation")
        paged = bool(payload.get("paged_now"))
        note = "; paged PagerDuty" if paged else "; no page"
        return escalation_reply(step if isinstance(step, dict) else {}, incident.severity.value, page_note=note)
    if kind == "acknowledged":
        at = incident.acknowledged_at or now
        return f"✅ Acknowledged by {mention(actor)} at {at:%H:%M} UTC — the whole incident"
    if kind in ("resolved", "auto_resolved"):
        took = humanize((incident.resolved_at or now) - incident.opened_at)
        if kind == "auto_resolved":
            return f"🟢 Auto-resolved after {took}: every alert cleared"
        return f"🟢 Resolved by {mention(actor)} after {took} — the whole incident"
    if kind in ("reminded", "still_on_it", "released"):
        return _reminder_reply(incident, kind, actor, str(payload.get("detail") or ""), now=now)
    said = room_reply(incident, kind, payload)
    return said or f"ℹ️ Incident {escape_mrkdwn(kind.replace('_', ' '))} ({mention(actor)})"


def room_reply(incident: Incident, kind: str, payload: Mapping[str, Any]) -> str | None:
    """What the thread (and the room) hears of a room event: a declaration, a new commander, an update."""
    actor, detail = str(payload.get("actor") or ""), str(payload.get("detail") or "")
    if kind == "declared":
        where = f"<#{incident.room_id}>" if incident.room_id else f"#{escape_mrkdwn(incident.room or detail)}"
        return f"🚨 Declared an incident by {mention(actor)}: the room is {where}"
    if kind == "commander":
        named = f" (named by {mention(actor)})" if actor != detail else ""
        return f"🎖️ {mention(detail)} is the incident commander{named}"
    if kind == "update":
        return f"📣 *Update* from {mention(actor)}: {clip(escape_mrkdwn(detail), SECTION_LIMIT - 100)}"
    if kind == "opened":
        return f"🆕 Opened by hand by {mention(actor)}"
    return None


def _reminder_reply(incident: Incident, kind: str, actor: str, detail: str, *, now: datetime) -> str:
    """``settings.ack_reminder``'s question and its answers."""
    if kind == "reminded":
        asked = mention(incident.acknowledged_by or "")
        return (
            f"⏰ Still on it, {asked}? Nothing has happened on this incident for {escape_mrkdwn(detail)}. "
            "Unanswered, it is released and its escalation resumes."
        )
    if kind == "still_on_it":
        return f"👍 {mention(actor)} is still on it"
    by = f"({escape_mrkdwn(detail)})" if actor == SYSTEM_ACTOR else f"by {mention(actor)}"
    due = incident.next_escalation_at
    then = f" (next step at {due:%H:%M} UTC)" if due and due > now else ""
    return f"🔓 Released {by}: unacknowledged again, its escalation resumes{then}"


def reminder_blocks(incident: Incident, text: str) -> list[dict[str, Any]]:
    """"Still on it?" with its two answers, which name the incident."""
    value = str(incident.id)
    buttons = [
        ButtonElement(text="Still on it", action_id=INCIDENT_STILL_ON_IT_ACTION, value=value, style="primary"),
        ButtonElement(text="Release", action_id=INCIDENT_RELEASE_ACTION, value=value, style="danger"),
    ]
    blocks = [SectionBlock(text=MarkdownTextObject(text=text)), ActionsBlock(elements=buttons)]
    return [block.to_dict() for block in blocks]


def posted_at(ts: str) -> datetime | None:
    """When a message was posted: a Slack ``ts`` is the Unix time of the post."""
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def louder(newcomers: Iterable[Alert], members: Iterable[Alert]) -> bool:
    """Whether joining alerts are more severe than everything else still open in the incident.

    A chat.update notifies nobody, and a thread reply only the thread's followers; a P0 that
    joins a P3 incident must reach the channel, so its reply is broadcast there too.
    """
    joining = list(newcomers)
    ids = {a.id for a in joining}
    worst_new = min((a.severity.rank for a in joining), default=99)
    present = min((m.severity.rank for m in members if m.state.is_open and m.id not in ids), default=99)
    return worst_new < present
