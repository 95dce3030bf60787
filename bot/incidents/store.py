"""Incident storage: the only module that speaks SQL about incidents and their history."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.alerts import store as alert_store
from bot.alerts.lifecycle import Alert, AlertState
from bot.alerts.store import policy_records
from bot.clock import ensure_utc, maybe_utc
from bot.errors import ConcurrentChange
from bot.incidents.incident import Incident, IncidentEvent, IncidentEventKind, IncidentState, IncidentTransition
from bot.severity import Severity
from bot.storage import versioned
from bot.storage.tables import AlertRow, IncidentEventRow, IncidentRow

OPEN_ALERT_STATES = [AlertState.FIRING.value, AlertState.ACKNOWLEDGED.value]


def get(session: Session, incident_id: int) -> Incident | None:
    row = session.get(IncidentRow, incident_id)
    return to_incident(row) if row else None


def open_for_group(session: Session, group_key: str) -> Incident | None:
    row = session.exec(
        select(IncidentRow).where(IncidentRow.group_key == group_key, IncidentRow.state != IncidentState.RESOLVED.value)
    ).first()
    return to_incident(row) if row else None


def open_alerts(session: Session, incident_id: int) -> list[Alert]:
    """The incident's firing and acknowledged alerts, oldest first."""
    rows = session.exec(
        select(AlertRow)
        .where(AlertRow.incident_id == incident_id, col(AlertRow.state).in_(OPEN_ALERT_STATES))
        .order_by(col(AlertRow.id))
    ).all()
    return [alert_store.to_alert(row) for row in rows]


def open_alert_states(session: Session, incident_id: int) -> dict[AlertState, int]:
    """How many of the incident's alerts are open, by state: counted in the database, since a storm
    holds hundreds and each alert that closes or is acknowledged asks again."""
    rows = session.exec(
        select(AlertRow.state, func.count())
        .where(AlertRow.incident_id == incident_id, col(AlertRow.state).in_(OPEN_ALERT_STATES))
        .group_by(AlertRow.state)
    ).all()
    return {AlertState(state): count for state, count in rows}


def alerts(session: Session, incident_id: int) -> list[Alert]:
    """Every alert that joined the incident, oldest first."""
    rows = session.exec(select(AlertRow).where(AlertRow.incident_id == incident_id).order_by(col(AlertRow.id))).all()
    return [alert_store.to_alert(row) for row in rows]


def alerts_of(session: Session, incident_ids: Sequence[int]) -> dict[int, list[Alert]]:
    """:func:`alerts` of many incidents, by id (an empty list for one without any), read in chunks."""
    found: dict[int, list[Alert]] = {incident_id: [] for incident_id in incident_ids}
    for chunk in versioned.in_chunks(incident_ids):
        rows = session.exec(select(AlertRow).where(col(AlertRow.incident_id).in_(chunk)).order_by(col(AlertRow.id)))
        for row in rows:
            found[row.incident_id or 0].append(alert_store.to_alert(row))
    return found


def by_ids(session: Session, incident_ids: Sequence[int]) -> dict[int, Incident]:
    """:func:`get` of many incidents, by id (those that exist), read in chunks."""
    found: dict[int, Incident] = {}
    for chunk in versioned.in_chunks(incident_ids):
        for row in session.exec(select(IncidentRow).where(col(IncidentRow.id).in_(chunk))):
            found[row.id or 0] = to_incident(row)
    return found


def open_alert_counts(session: Session, incident_ids: Sequence[int]) -> dict[int, int]:
    """How many alerts of each incident are open (firing or acknowledged), by id (none: absent),
    counted in the database in chunks: :func:`open_alert_states` of many incidents at once."""
    found: dict[int, int] = {}
    for chunk in versioned.in_chunks(incident_ids):
        query = (
            select(AlertRow.incident_id, func.count())
            .where(col(AlertRow.incident_id).in_(chunk), col(AlertRow.state).in_(OPEN_ALERT_STATES))
            .group_by(col(AlertRow.incident_id))
        )
        found.update((incident_id or 0, count) for incident_id, count in session.exec(query).all())
    return found


def members(session: Session, incident: Incident) -> list[Alert]:
    """:func:`alerts` of an incident that may not be stored yet (none then)."""
    return alerts(session, incident.id) if incident.id is not None else []


def save(session: Session, change: IncidentTransition) -> Incident:
    """Write the transition's incident and event. Raises :class:`ConcurrentChange` when another
    writer got there first (a second open incident for the group, or a newer version)."""
    incident = change.incident
    taken = f"an open incident for {incident.group_key} already exists"
    saved = versioned.save(
        session, IncidentRow, incident, columns=fields(incident), read=to_incident, what="incident", taken=taken
    )
    assert saved.id is not None
    event = change.event
    session.add(
        IncidentEventRow(
            incident_id=saved.id,
            kind=event.kind.value,
            actor=event.actor,
            at=event.at,
            detail=event.detail,
            data=dict(event.data),
        )
    )
    return saved


def save_moved(session: Session, moved: Sequence[tuple[Incident, Sequence[IncidentEvent]]]) -> None:
    """Write stored incidents each moved on by its events (an escalation sweep's steps, a pass's
    resolutions), as the last of them leaves it, with all the events: one UPDATE per incident
    sent together, each only if the row is still at the version read (the incident's version
    less its events), and one multi-row INSERT of events. Raises :class:`ConcurrentChange` when
    a row moved on."""
    if not moved:
        return
    rows = [
        {**fields(i), "version": i.version, "moved_id": i.id, "read_at": i.version - len(steps)} for i, steps in moved
    ]
    versioned.write_moved(session, IncidentRow, rows, what="incidents")
    _insert_events(session, [(incident.id or 0, event) for incident, events in moved for event in events])


def insert_new(session: Session, opened: Sequence[tuple[Incident, Sequence[IncidentEvent]]]) -> list[Incident]:
    """Write incidents that have no row yet, each as the pass leaves it (at the version its
    events have brought it to), with all their events, as multi-row INSERTs, and read their ids
    back by their open groups (see :func:`bot.alerts.store.insert_new`). Raises
    :class:`ConcurrentChange` when another writer opened one of the groups first."""
    if not opened:
        return []
    rows = [{**fields(incident), "version": incident.version} for incident, _ in opened]
    try:
        session.execute(insert(IncidentRow.__table__), rows)  # type: ignore[attr-defined]
    except IntegrityError as exc:
        raise ConcurrentChange("an open incident for one of this pass's new groups already exists") from exc
    ids = versioned.open_ids(session, IncidentRow, "group_key", [incident.group_key for incident, _ in opened])
    saved = [replace(incident, id=ids[incident.group_key]) for incident, _ in opened]
    events = [(incident.id or 0, e) for incident, (_, happened) in zip(saved, opened, strict=True) for e in happened]
    _insert_events(session, events)
    return saved


def _insert_events(session: Session, events: Sequence[tuple[int, IncidentEvent]]) -> None:
    """Incidents' events, each with its incident's id, in one multi-row INSERT."""
    rows = [
        {
            "incident_id": incident_id,
            "kind": event.kind.value,
            "actor": event.actor,
            "at": event.at,
            "detail": event.detail,
            "data": dict(event.data),
        }
        for incident_id, event in events
    ]
    session.execute(insert(IncidentEventRow.__table__), rows)  # type: ignore[attr-defined]


def open_groups(session: Session, keys: Collection[str]) -> dict[str, int]:
    """The open incident of each of ``keys`` that has one, by key (read in chunks, so any number of keys fits)."""
    return versioned.open_ids(session, IncidentRow, "group_key", sorted(keys))


def history(session: Session, incident_id: int) -> list[IncidentEvent]:
    rows = session.exec(
        select(IncidentEventRow).where(IncidentEventRow.incident_id == incident_id).order_by(col(IncidentEventRow.id))
    ).all()
    return [_to_event(r) for r in rows]


def due_for_escalation(session: Session, *, now: datetime, limit: int) -> list[Incident]:
    """Firing incidents whose next escalation step is due, oldest deadline first, locked for us.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED`` hands each due row to one replica; rows another
    replica holds are skipped, not waited for. SQLite has one writer at a time, and the version
    check in :func:`save` refuses the loser of any race.
    """
    rows = session.exec(
        select(IncidentRow)
        .where(IncidentRow.state == IncidentState.FIRING.value)
        .where(col(IncidentRow.next_escalation_at) <= now)
        .order_by(col(IncidentRow.next_escalation_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    return [to_incident(row) for row in rows]


def overdue_escalations(session: Session, *, before: datetime) -> list[tuple[int, str, datetime]]:
    """``(id, group, deadline)`` of escalations that should have run before ``before``: the watchdog."""
    rows = session.exec(
        select(IncidentRow.id, IncidentRow.group_key, IncidentRow.next_escalation_at)
        .where(IncidentRow.state == IncidentState.FIRING.value)
        .where(col(IncidentRow.next_escalation_at) < before)
    ).all()
    return [(int(i or 0), key, ensure_utc(at)) for i, key, at in rows if at is not None]


def record_slack_message(session: Session, incident_id: int, *, channel: str, ts: str) -> bool:
    """Remember where the incident's root message went; the first writer wins."""
    result = session.execute(
        update(IncidentRow)
        .where(col(IncidentRow.id) == incident_id, col(IncidentRow.slack_ts).is_(None))
        .values(slack_channel=channel, slack_ts=ts)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def quiet_acknowledged(session: Session, *, before: datetime) -> list[tuple[Incident, IncidentEvent]]:
    """Acknowledged incidents whose latest event came at or before ``before``, each with that event:
    the reminder sweep asks "Still on it?" of them, or releases those that did not answer."""
    latest = (
        select(IncidentEventRow.incident_id, func.max(IncidentEventRow.id).label("last_id"))
        .join(IncidentRow, col(IncidentRow.id) == IncidentEventRow.incident_id)
        .where(IncidentRow.state == IncidentState.ACKNOWLEDGED.value)
        .group_by(col(IncidentEventRow.incident_id))
        .subquery()
    )
    rows = session.exec(
        select(IncidentRow, IncidentEventRow)
        .join(latest, col(latest.c.incident_id) == IncidentRow.id)
        .join(IncidentEventRow, col(IncidentEventRow.id) == latest.c.last_id)
        .where(col(IncidentEventRow.at) <= before)
        .order_by(col(IncidentRow.id))
    ).all()
    return [(to_incident(incident), _to_event(event)) for incident, event in rows]


def record_room(session: Session, incident_id: int, *, room_id: str, name: str) -> bool:
    """Remember the room Slack created for the incident (its name may have gained a ``-2``); the
    first writer wins, so a retried creation adopts the room instead of making a second."""
    result = session.execute(
        update(IncidentRow)
        .where(col(IncidentRow.id) == incident_id, col(IncidentRow.room_id).is_(None))
        .values(room_id=room_id, room=name)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def resolved_for(session: Session, *, rule: str, model: str, before: datetime, limit: int = 3) -> list[Incident]:
    """The latest resolved incidents that held an alert of ``rule`` on ``model`` and opened before
    ``before``, newest first: "Seen before" on a new incident's root message."""
    held = select(AlertRow.incident_id).where(AlertRow.rule == rule, AlertRow.model == model)
    rows = session.exec(
        select(IncidentRow)
        .where(col(IncidentRow.id).in_(held), IncidentRow.state == IncidentState.RESOLVED.value)
        .where(col(IncidentRow.opened_at) < before)
        .order_by(col(IncidentRow.opened_at).desc())
        .limit(limit)
    ).all()
    return [to_incident(r) for r in rows]


def rooms_named(session: Session, prefix: str) -> set[str]:
    """Room names already used that start with ``prefix``: a new room takes the next free number."""
    rows = session.exec(select(IncidentRow.room).where(col(IncidentRow.room).startswith(prefix)))
    return {name for name in rows if name}


def by_room(session: Session, room_id: str) -> Incident | None:
    """The incident whose room is the channel ``room_id`` (the newest, should a room be adopted twice)."""
    row = session.exec(
        select(IncidentRow).where(IncidentRow.room_id == room_id).order_by(col(IncidentRow.id).desc())
    ).first()
    return to_incident(row) if row else None


def by_message(session: Session, channel: str, ts: str) -> Incident | None:
    """The incident whose root message is ``ts`` in ``channel`` (a message shortcut on it)."""
    row = session.exec(
        select(IncidentRow).where(IncidentRow.slack_channel == channel, IncidentRow.slack_ts == ts)
    ).first()
    return to_incident(row) if row else None


def open_for_model(session: Session, model: str) -> Incident | None:
    """The oldest open incident holding an open alert of ``model``, or declared by hand for it."""
    with_alert = session.exec(
        select(IncidentRow)
        .join(AlertRow, col(AlertRow.incident_id) == col(IncidentRow.id))
        .where(AlertRow.model == model, col(AlertRow.state).in_(OPEN_ALERT_STATES))
        .where(IncidentRow.state != IncidentState.RESOLVED.value)
        .order_by(col(IncidentRow.id))
    ).first()
    if with_alert is not None:
        return to_incident(with_alert)
    hand_made = session.exec(
        select(IncidentRow)
        .where(IncidentRow.state != IncidentState.RESOLVED.value, col(IncidentRow.group_key).contains("|declared:"))
        .order_by(col(IncidentRow.id))
    ).all()
    return next((to_incident(r) for r in hand_made if (r.labels or {}).get("model") == model), None)


def slack_message(session: Session, incident_id: int) -> tuple[str, str] | None:
    row = session.get(IncidentRow, incident_id)
    if row is None or row.slack_channel is None or row.slack_ts is None:
        return None
    return row.slack_channel, row.slack_ts


def opened_in(session: Session, *, since: datetime, until: datetime) -> list[Incident]:
    """The incidents that opened in ``[since, until)``, oldest first (the weekly review's)."""
    rows = session.exec(
        select(IncidentRow)
        .where(col(IncidentRow.opened_at) >= since, col(IncidentRow.opened_at) < until)
        .order_by(col(IncidentRow.opened_at))
    ).all()
    return [to_incident(r) for r in rows]


def _to_event(row: IncidentEventRow) -> IncidentEvent:
    return IncidentEvent(IncidentEventKind(row.kind), row.actor, ensure_utc(row.at), row.detail, dict(row.data or {}))


def to_incident(row: IncidentRow) -> Incident:
    return Incident(
        id=row.id,
        group_key=row.group_key,
        channel=row.channel,
        labels=dict(row.labels or {}),
        storm_rule=row.storm_rule,
        severity=Severity(row.severity),
        state=IncidentState(row.state),
        title=row.title,
        opened_at=ensure_utc(row.opened_at),
        **alert_store.handling(row),
        escalation_step=row.escalation_step,
        paused=timedelta(seconds=row.paused_seconds or 0),
        next_escalation_at=maybe_utc(row.next_escalation_at),
        paged_keys=tuple(row.paged_keys or []),
        page_key=row.page_key,
        declared_at=maybe_utc(row.declared_at),
        declared_by=row.declared_by,
        room=row.room,
        room_id=row.room_id,
        commander=row.commander,
        resolution_note=dict(row.resolution_note) if row.resolution_note else None,
        version=row.version,
    )


def fields(incident: Incident) -> dict[str, Any]:
    """The incident as column values; also the incident part of notification payloads."""
    return {
        "group_key": incident.group_key,
        "channel": incident.channel,
        "labels": dict(incident.labels),
        "storm_rule": incident.storm_rule,
        "severity": incident.severity.value,
        "state": incident.state.value,
        "title": incident.title,
        "opened_at": incident.opened_at,
        "acknowledged_at": incident.acknowledged_at,
        "acknowledged_by": incident.acknowledged_by,
        "resolved_at": incident.resolved_at,
        "resolved_by": incident.resolved_by,
        "policy": policy_records(incident.policy),
        "escalation_step": incident.escalation_step,
        "paused_seconds": incident.paused.total_seconds(),
        "next_escalation_at": incident.next_escalation_at,
        "paged_keys": list(incident.paged_keys),
        "page_key": incident.page_key,
        "declared_at": incident.declared_at,
        "declared_by": incident.declared_by,
        "room": incident.room,
        "room_id": incident.room_id,
        "commander": incident.commander,
        "resolution_note": dict(incident.resolution_note) if incident.resolution_note else None,
    }
