"""Silence storage, and finding alerts a silence kept quiet once it is over."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists
from sqlmodel import Session, col, select

from bot.alerts.lifecycle import Alert, AlertState
from bot.alerts.store import to_alert
from bot.silences.silence import Silence
from bot.storage.tables import AlertRow, OutboxRow, SilenceRow


def add(session: Session, silence: Silence) -> Silence:
    row = SilenceRow(
        rule=silence.rule,
        model=silence.model,
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        created_by=silence.created_by,
        reason=silence.reason,
    )
    session.add(row)
    session.flush()
    return _to_silence(row)


def active(session: Session, *, now: datetime) -> list[Silence]:
    rows = session.exec(select(SilenceRow).where(col(SilenceRow.starts_at) <= now, col(SilenceRow.ends_at) > now)).all()
    return [_to_silence(r) for r in rows]


def started_between(session: Session, *, since: datetime, until: datetime) -> list[Silence]:
    """Silences set in ``[since, until]`` (an incident's timeline names those set while it was open)."""
    rows = session.exec(
        select(SilenceRow).where(col(SilenceRow.starts_at) >= since, col(SilenceRow.starts_at) <= until)
    ).all()
    return [_to_silence(r) for r in rows]


def expire(session: Session, silence_id: int, *, now: datetime) -> bool:
    row = session.get(SilenceRow, silence_id)
    if row is None or row.ends_at <= now:
        return False
    row.ends_at = now
    session.add(row)
    return True


def never_notified(session: Session) -> list[Alert]:
    """Firing alerts with no notification at all: a silence swallowed their firing. (An alert
    someone acknowledged meanwhile has been seen; it is not announced again.)"""
    notified = exists().where(col(OutboxRow.alert_id) == AlertRow.id)
    rows = session.exec(select(AlertRow).where(AlertRow.state == AlertState.FIRING.value).where(~notified)).all()
    return [to_alert(r) for r in rows]


def _to_silence(row: SilenceRow) -> Silence:
    return Silence(
        rule=row.rule,
        model=row.model,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        reason=row.reason,
        id=row.id,
    )
