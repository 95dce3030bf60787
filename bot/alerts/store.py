"""Alert storage: the only module that speaks SQL about alerts and their history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypedDict, cast

from sqlalchemy import func, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.alerts.lifecycle import Alert, AlertState, Event, EventKind, PolicyStep, Transition
from bot.clock import ensure_utc, maybe_utc
from bot.errors import ConcurrentChange as ConcurrentChange  # the stores' callers catch it here
from bot.severity import Severity
from bot.storage import versioned
from bot.storage.tables import AlertEventRow, AlertRow, IncidentRow


def open_alerts(session: Session) -> dict[str, Alert]:
    """Every open alert by key. Read as plain columns on the session's connection, past the ORM's
    identity map: every evaluation pass reads them all, and at thousands of open alerts building
    ORM objects cost more than the query (a Core row has the same attributes as the ORM row)."""
    table = AlertRow.__table__  # type: ignore[attr-defined]  # SQLModel declares no __table__
    rows = session.connection().execute(core_select(table).where(table.c.state != AlertState.RESOLVED.value))
    return {row.dedup_key: to_alert(cast(AlertRow, row)) for row in rows}


class OpenAlerts:
    """:func:`open_alerts` for a reader that asks again and again (the evaluation pass, each
    tick): it reads every open alert's id and version, and whole rows only for the alerts that
    are new or changed since its last read, keeping the rest as it decoded them then. Every
    change of an alert moves its version on (:func:`save`; where its Slack message lives is not
    part of an :class:`Alert`), so an unchanged version is an unchanged alert. At 10,000 open
    alerts a steady pass decodes none instead of all (issue 16, point 1)."""

    def __init__(self) -> None:
        self._known: dict[int, Alert] = {}

    def read(self, session: Session) -> dict[str, Alert]:
        table = AlertRow.__table__  # type: ignore[attr-defined]
        still_open = table.c.state != AlertState.RESOLVED.value
        connection = session.connection()
        versions = connection.execute(core_select(table.c.id, table.c.version).where(still_open)).all()
        known = self._known
        changed = [i for i, version in versions if (alert := known.get(i)) is None or alert.version != version]
        if len(changed) * 2 > len(versions):  # most of them: one read of every open row is cheaper
            fresh = {alert.id or 0: alert for alert in open_alerts(session).values()}
        else:
            fresh = {}
            for chunk in versioned.in_chunks(changed):
                for row in connection.execute(core_select(table).where(still_open, table.c.id.in_(chunk))):
                    fresh[row.id] = to_alert(cast(AlertRow, row))
            # an alert closed between the two reads is not in ``fresh``: as if read a moment later
            fresh.update((i, known[i]) for i, _ in versions if i in known and i not in changed)
        self._known = fresh
        return {fresh[i].key: fresh[i] for i, _ in versions if i in fresh}  # in the order the database gave


def last_fired_resolutions(session: Session, *, since: datetime) -> dict[str, datetime]:
    """When each key's last alert that actually fired was resolved (for cooldowns)."""
    query = (
        select(AlertRow.dedup_key, func.max(AlertRow.resolved_at))
        .where(AlertRow.state == AlertState.RESOLVED.value)
        .where(col(AlertRow.fired_at).is_not(None))
        .where(col(AlertRow.resolved_at) >= since)
        .group_by(AlertRow.dedup_key)
    )
    return {key: ensure_utc(at) for key, at in session.exec(query).all() if at is not None}


def get(session: Session, alert_id: int) -> Alert | None:
    row = session.get(AlertRow, alert_id)
    return to_alert(row) if row else None


def history(session: Session, alert_id: int) -> list[Event]:
    rows = session.exec(
        select(AlertEventRow).where(AlertEventRow.alert_id == alert_id).order_by(col(AlertEventRow.id))
    ).all()
    return [Event(EventKind(r.kind), r.actor, ensure_utc(r.at), r.detail, dict(r.data or {})) for r in rows]


def active(session: Session) -> list[Alert]:
    """Open alerts that people should see (pending ones are not news yet), most severe first."""
    rows = session.exec(
        select(AlertRow).where(col(AlertRow.state).in_([AlertState.FIRING.value, AlertState.ACKNOWLEDGED.value]))
    ).all()
    alerts = [to_alert(r) for r in rows]
    return sorted(alerts, key=lambda a: (a.severity.rank, a.fired_at or a.started_at))


def save(session: Session, change: Transition) -> Alert:
    """Write the transition's alert and event. Raises :class:`ConcurrentChange` when another
    writer got there first (a second open alert for the key, or a newer version)."""
    alert = change.alert
    taken = f"an open alert for {alert.key} already exists"
    saved = versioned.save(session, AlertRow, alert, columns=fields(alert), read=to_alert, what="alert", taken=taken)
    assert saved.id is not None
    session.add(
        AlertEventRow(
            alert_id=saved.id,
            kind=change.event.kind.value,
            actor=change.event.actor,
            at=change.event.at,
            detail=change.event.detail,
            data=dict(change.event.data),
        )
    )
    return saved


def insert_new(session: Session, changes: Sequence[Transition]) -> list[Alert]:
    """Write alerts that have no row yet, with their first events, as two multi-row INSERTs
    (Core, past the ORM's per-object unit of work), and read their ids back by their open keys:
    a pass that opens a thousand alerts costs a few statements, not a flush per alert. Raises
    :class:`ConcurrentChange` when another writer opened one of the keys first (the whole pass
    then rolls back and decides again)."""
    if not changes:
        return []
    rows = [{**fields(change.alert), "paged_keys": [], "version": 1} for change in changes]
    try:
        session.execute(insert(AlertRow.__table__), rows)  # type: ignore[attr-defined]
    except IntegrityError as exc:
        raise ConcurrentChange("an open alert for one of this pass's new keys already exists") from exc
    ids = versioned.open_ids(session, AlertRow, "dedup_key", [change.alert.key for change in changes])
    saved = [replace(change.alert, id=ids[change.alert.key], version=1) for change in changes]
    events = [_event_row(alert.id or 0, change.event) for alert, change in zip(saved, changes, strict=True)]
    session.execute(insert(AlertEventRow.__table__), events)  # type: ignore[attr-defined]
    return saved


def save_moved(session: Session, changes: Sequence[Transition]) -> list[Alert]:
    """:func:`save` of many stored alerts at once: one UPDATE per alert sent together, each only
    if the row is still at the version read, and one multi-row INSERT of their events; the alerts
    as stored (each at its next version). Raises :class:`ConcurrentChange` when a row moved on."""
    saved = [replace(change.alert, version=change.alert.version + 1) for change in changes]
    rows = [
        {**fields(alert), "version": alert.version, "moved_id": alert.id, "read_at": alert.version - 1}
        for alert in saved
    ]
    versioned.write_moved(session, AlertRow, rows, what="alerts")
    if changes:
        events = [_event_row(alert.id or 0, change.event) for alert, change in zip(saved, changes, strict=True)]
        session.execute(insert(AlertEventRow.__table__), events)  # type: ignore[attr-defined]
    return saved


def _event_row(alert_id: int, event: Event) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "kind": event.kind.value,
        "actor": event.actor,
        "at": event.at,
        "detail": event.detail,
        "data": dict(event.data),
    }


def save_all(session: Session, changes: Iterable[Transition]) -> list[tuple[Transition, Alert]]:
    return [(change, save(session, change)) for change in changes]


def to_alert(row: AlertRow) -> Alert:
    return Alert(
        id=row.id,
        rule=row.rule,
        model=row.model,
        severity=Severity(row.severity),
        state=AlertState(row.state),
        started_at=ensure_utc(row.started_at),
        title=row.title,
        description=row.description,
        values=dict(row.values or {}),
        fired_at=maybe_utc(row.fired_at),
        **handling(row),
        incident_id=row.incident_id,
        clear_since=maybe_utc(row.clear_since),
        version=row.version,
    )


class Handling(TypedDict):
    """The columns an alert and an incident share: who acknowledged and resolved it, when, and the
    escalation policy it keeps. Read by one function so the two cannot drift in how they are read."""

    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    policy: tuple[PolicyStep, ...]


def handling(row: AlertRow | IncidentRow) -> Handling:
    """The :class:`Handling` of a stored alert or incident, times in UTC."""
    return Handling(
        acknowledged_at=maybe_utc(row.acknowledged_at),
        acknowledged_by=row.acknowledged_by,
        resolved_at=maybe_utc(row.resolved_at),
        resolved_by=row.resolved_by,
        policy=policy_steps(row.policy or []),
    )


def fields(alert: Alert) -> dict[str, Any]:
    """The alert as column values; also the body of notification payloads."""
    return {
        "dedup_key": alert.key,
        "rule": alert.rule,
        "model": alert.model,
        "severity": alert.severity.value,
        "state": alert.state.value,
        "title": alert.title,
        "description": alert.description,
        "values": dict(alert.values),
        "started_at": alert.started_at,
        "fired_at": alert.fired_at,
        "acknowledged_at": alert.acknowledged_at,
        "acknowledged_by": alert.acknowledged_by,
        "resolved_at": alert.resolved_at,
        "resolved_by": alert.resolved_by,
        "policy": policy_records(alert.policy),
        "incident_id": alert.incident_id,
        "clear_since": alert.clear_since,
    }


def policy_records(policy: Iterable[PolicyStep]) -> list[dict[str, Any]]:
    """A policy snapshot as JSON-ready records (alerts and incidents store it alike)."""
    return [_step_record(step) for step in policy]


def policy_steps(records: Iterable[dict[str, Any]]) -> tuple[PolicyStep, ...]:
    """The stored snapshot as steps. Each distinct step is built once: every open alert of a model
    keeps the same few, and a pass reading 10,000 open alerts spent half its read building them."""
    return tuple(_step(tuple(record.items())) for record in records)


def _step_record(step: PolicyStep) -> dict[str, Any]:
    return {
        "after_seconds": step.after.total_seconds(),
        "severity": step.severity.value,
        "mention": step.mention,
        "routing_key": step.routing_key,
    }


@lru_cache(maxsize=4096)
def _step(items: tuple[tuple[str, Any], ...]) -> PolicyStep:
    record = dict(items)
    return PolicyStep(
        after=timedelta(seconds=float(record["after_seconds"])),
        severity=Severity(record["severity"]),
        mention=record.get("mention"),
        routing_key=record.get("routing_key"),
    )


def slack_message(session: Session, alert_id: int) -> tuple[str, str] | None:
    """``(channel id, ts)`` of the alert's root Slack message, if it was posted."""
    row = session.get(AlertRow, alert_id)
    if row is None or row.slack_channel is None or row.slack_ts is None:
        return None
    return row.slack_channel, row.slack_ts


def record_slack_message(session: Session, alert_id: int, *, channel: str, ts: str) -> bool:
    """Remember where the root message went. Only the first writer wins (``slack_ts IS NULL``),
    so a root message is recorded once even if two deliveries raced; returns whether we won.
    Does not bump ``version``: where a message lives is not an alert state change."""
    result = session.execute(
        update(AlertRow)
        .where(col(AlertRow.id) == alert_id, col(AlertRow.slack_ts).is_(None))
        .values(slack_channel=channel, slack_ts=ts)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def alerts_in_message(session: Session, channel: str, ts: str) -> list[Alert]:
    """Every alert recorded in one Slack root message, oldest first. A group message is
    simply several alerts that recorded the same ``(channel, ts)``, so this is its content."""
    rows = session.exec(
        select(AlertRow).where(AlertRow.slack_channel == channel, AlertRow.slack_ts == ts).order_by(col(AlertRow.id))
    ).all()
    return [to_alert(row) for row in rows]


def open_alerts_of_model(session: Session, model: str) -> list[tuple[Alert, tuple[str, str] | None]]:
    """Firing and acknowledged alerts of one model, each with its root Slack message if it has
    one: what Slack grouping chooses from (a group message to join, alerts not posted yet)."""
    rows = session.exec(
        select(AlertRow)
        .where(AlertRow.model == model)
        .where(col(AlertRow.state).in_([AlertState.FIRING.value, AlertState.ACKNOWLEDGED.value]))
        .order_by(col(AlertRow.id))
    ).all()
    return [
        (to_alert(row), (row.slack_channel, row.slack_ts) if row.slack_channel and row.slack_ts else None)
        for row in rows
    ]


def fired_since(session: Session, *, since: datetime) -> list[Alert]:
    """Alerts that fired at or after ``since``, oldest first: the weekly review's input."""
    rows = session.exec(
        select(AlertRow).where(col(AlertRow.fired_at) >= since).order_by(col(AlertRow.fired_at), col(AlertRow.id))
    ).all()
    return [to_alert(row) for row in rows]


def histories(session: Session, alert_ids: Iterable[int]) -> dict[int, list[Event]]:
    """:func:`history` of many alerts in one query (alert id → its events, in order)."""
    ids = list(alert_ids)
    out: dict[int, list[Event]] = {alert_id: [] for alert_id in ids}
    for chunk in versioned.in_chunks(ids):
        rows = session.exec(
            select(AlertEventRow).where(col(AlertEventRow.alert_id).in_(chunk)).order_by(col(AlertEventRow.id))
        ).all()
        for r in rows:
            out[r.alert_id].append(Event(EventKind(r.kind), r.actor, ensure_utc(r.at), r.detail, dict(r.data or {})))
    return out
