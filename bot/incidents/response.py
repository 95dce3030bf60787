"""Incident response: what people do with an incident once it is theirs. Pure: no I/O, the clock passed in.

An alert tells; an incident is *declared* when someone decides it needs a room: a Slack channel of
its own where the commander, updates and the timeline live, and from which the review is written.
Declaring is a versioned change of the incident like acknowledging, so two people (or a retry,
or two replicas) declaring at once make one room: the loser is refused with where the room is.

Every change here is an :class:`IncidentTransition` whose event goes into the incident's history,
which *is* the timeline (:mod:`bot.incidents.timeline` adds the alerts' own events).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta

from bot.alerts.lifecycle import SYSTEM_ACTOR
from bot.config.durations import humanize
from bot.errors import ActionRefused
from bot.incidents.incident import (
    Incident,
    IncidentEvent,
    IncidentEventKind,
    IncidentState,
    IncidentTransition,
    next_deadline,
)

ROOM_NAME_LIMIT = 80
"""Slack's longest channel name."""


def room_name(prefix: str, *, day: date, model: str, rule: str, taken: Collection[str] = ()) -> str:
    """The room's channel name: prefix + date + model + rule, as Slack allows names (lower case,
    letters, digits, ``-`` and ``_``, at most 80 characters), with ``-2``, ``-3`` … after a name in ``taken``."""
    parts = [f"{day:%Y-%m-%d}", model, rule]
    base = _slug(prefix + "-".join(p for p in parts if p))
    return numbered(base, 1, taken=taken)


def numbered(base: str, n: int, *, taken: Collection[str] = ()) -> str:
    """``base`` (``n`` = 1) or ``base-n``, the first such name from ``n`` on that is not ``taken``,
    cut so the suffix fits Slack's limit."""
    while True:
        suffix = "" if n <= 1 else f"-{n}"
        name = base[: ROOM_NAME_LIMIT - len(suffix)].rstrip("-_") + suffix
        if name not in taken:
            return name
        n += 1


def declare(incident: Incident, *, actor: str, room: str, now: datetime) -> IncidentTransition:
    """``actor`` declares the incident; its room will be the channel named ``room``."""
    if incident.declared_at is not None:
        raise ActionRefused(already_declared(incident))
    if not incident.state.is_open:
        raise ActionRefused(f"This incident was resolved at {incident.resolved_at:%H:%M} UTC; it cannot be declared.")
    declared = replace(incident, declared_at=now, declared_by=actor, room=room)
    return IncidentTransition(declared, IncidentEvent(IncidentEventKind.DECLARED, actor, now, room))


def already_declared(incident: Incident) -> str:
    """What the second person to declare is told: who was first, and where the room is."""
    where = f"<#{incident.room_id}>" if incident.room_id else f"#{incident.room}"
    return f"Already declared by <@{incident.declared_by}> at {incident.declared_at:%H:%M} UTC: the room is {where}."


def take_command(incident: Incident, *, actor: str, commander: str, now: datetime) -> IncidentTransition:
    """``commander`` leads the response from now (``actor`` named them, or took it themself)."""
    _open(incident, "change the commander of")
    if incident.commander == commander:
        raise ActionRefused(f"<@{commander}> is already the commander.")
    data = {"from": incident.commander} if incident.commander else {}
    led = replace(incident, commander=commander)
    return IncidentTransition(led, IncidentEvent(IncidentEventKind.COMMANDER, actor, now, commander, data))


def post_update(incident: Incident, *, actor: str, text: str, now: datetime) -> IncidentTransition:
    """A status update: said in the room and the alert thread, kept in the timeline."""
    said = text.strip()
    if not said:
        raise ActionRefused("An update needs some text: `/incident update <what is happening>`.")
    return IncidentTransition(incident, IncidentEvent(IncidentEventKind.UPDATE, actor, now, said))


def note(incident: Incident, *, actor: str, text: str, now: datetime, data: Mapping[str, object]) -> IncidentTransition:
    """A room message added to the timeline; ``data`` names it (``ts``, ``author``, ``link``)."""
    return IncidentTransition(incident, IncidentEvent(IncidentEventKind.NOTED, actor, now, text.strip(), dict(data)))


def add_resolution_note(incident: Incident, *, actor: str, cause: str, fix: str, now: datetime) -> IncidentTransition:
    """What caused it and what fixed it, written at resolve or later (it is how the next on-call
    learns from this one: "Seen before")."""
    cause, fix = cause.strip(), fix.strip()
    if not (cause or fix):
        raise ActionRefused("A resolution note needs a cause or a fix.")
    written = {"cause": cause, "fix": fix, "by": actor, "at": now.isoformat()}
    noted = replace(incident, resolution_note=written)
    detail = " / ".join(part for part in (cause, fix) if part)
    return IncidentTransition(noted, IncidentEvent(IncidentEventKind.RESOLUTION_NOTE, actor, now, detail))


def release(incident: Incident, *, actor: str, now: datetime) -> IncidentTransition:
    """Its acknowledger lets it go: it is firing again, and its climb resumes where it stopped
    (the time it spent acknowledged moves every later step)."""
    if incident.state is not IncidentState.ACKNOWLEDGED or incident.acknowledged_at is None:
        raise ActionRefused(f"Only an acknowledged incident can be released; this one is {incident.state.value}.")
    released = replace(
        incident,
        state=IncidentState.FIRING,
        acknowledged_at=None,
        acknowledged_by=None,
        paused=incident.paused + max(now - incident.acknowledged_at, timedelta(0)),
    )
    released = replace(released, next_escalation_at=next_deadline(released))
    return IncidentTransition(released, IncidentEvent(IncidentEventKind.RELEASED, actor, now))


def remind_or_release(
    incident: Incident, last: IncidentEvent, *, every: timedelta, now: datetime
) -> IncidentTransition | None:
    """``settings.ack_reminder``: an acknowledged incident with nothing new for ``every`` (its
    latest event, ``last``) is asked "Still on it?"; asked and still quiet as long again, it is
    released (its climb resumes), because an acknowledgement nobody stands behind hides an incident."""
    if incident.state is not IncidentState.ACKNOWLEDGED or now - last.at < every:
        return None
    if last.kind is IncidentEventKind.REMINDED:
        released = release(incident, actor=SYSTEM_ACTOR, now=now)
        unanswered = f"no answer to Still on it? in {humanize(every)}"
        return replace(released, event=replace(released.event, detail=unanswered))
    quiet = humanize(now - last.at)
    asked = {"acknowledged_by": incident.acknowledged_by or ""}
    return IncidentTransition(incident, IncidentEvent(IncidentEventKind.REMINDED, SYSTEM_ACTOR, now, quiet, asked))


def still_on_it(incident: Incident, *, actor: str, now: datetime) -> IncidentTransition:
    """The answer to "Still on it?": the acknowledgement stands, and the quiet time starts again."""
    if incident.state is not IncidentState.ACKNOWLEDGED:
        raise ActionRefused(f"This incident is {incident.state.value}, not acknowledged; nothing to confirm.")
    return IncidentTransition(incident, IncidentEvent(IncidentEventKind.STILL_ON_IT, actor, now))


def _open(incident: Incident, verb: str) -> None:
    if not incident.state.is_open:
        raise ActionRefused(f"This incident was resolved at {incident.resolved_at:%H:%M} UTC; cannot {verb} it.")


def _slug(text: str) -> str:
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9_-]+", "-", text.lower())).strip("-_")
