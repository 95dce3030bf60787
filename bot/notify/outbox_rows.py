"""The outbox's rows as the rest of the bot sees them: their statuses, adding one in the caller's
transaction, and reading or releasing the ones still pending.

Kept apart from the delivery loop (:mod:`bot.notify.outbox`) because every use case that
notifies writes rows, while only the lanes deliver them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.clock import ensure_utc
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow
from bot.storage.versioned import in_chunks

PENDING, SENT, FAILED, DROPPED = "pending", "sent", "failed", "dropped"

ENQUEUED_CHANNELS = "outbox.enqueued_channels"
"""``Session.info`` key: the notifier channels this session's transaction wrote rows for."""

UNRANKED = "P9"
"""The rank of a row without a severity (the weekly review): after every alert."""


def enqueue(
    session: Session,
    *,
    channel: str,
    kind: str,
    payload: Mapping[str, Any],
    idempotency_key: str,
    now: datetime,
    alert_id: int | None = None,
    incident_id: int | None = None,
    not_before: datetime | None = None,
) -> None:
    """Add a row in the caller's transaction. Rows naming an incident are delivered in order per
    incident and channel (its root message before any update); others in order per alert."""
    add(session, Enqueued(channel, kind, payload, idempotency_key, now, alert_id, incident_id, not_before))


def add(session: Session, row: Enqueued) -> None:
    """:func:`enqueue` of a row already built (:meth:`bot.notify.dispatch.Dispatcher.alert_rows`)."""
    session.add(OutboxRow(**row.values()))
    session.info.setdefault(ENQUEUED_CHANNELS, set()).add(row.channel)


@dataclass(frozen=True)
class Enqueued:
    """One row to add, as :func:`enqueue`'s arguments say it; :func:`enqueue_many` adds many at once."""

    channel: str
    kind: str
    payload: Mapping[str, Any]
    idempotency_key: str
    now: datetime
    alert_id: int | None = None
    incident_id: int | None = None
    not_before: datetime | None = None

    def values(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "channel": self.channel,
            "kind": self.kind,
            "alert_id": self.alert_id,
            "incident_id": self.incident_id,
            "payload": dict(self.payload),
            "status": PENDING,
            "attempts": 0,
            "not_before": self.not_before or self.now,
            "created_at": self.now,
        }


def enqueue_many(session: Session, rows: Sequence[Enqueued]) -> None:
    """Add many rows in one multi-row INSERT (a pass that opens a thousand alerts), in the caller's transaction."""
    if not rows:
        return
    session.execute(insert(OutboxRow.__table__), [row.values() for row in rows])  # type: ignore[attr-defined]
    session.info.setdefault(ENQUEUED_CHANNELS, set()).update(row.channel for row in rows)


def pending(engine: Engine) -> list[OutboxRow]:
    with open_session(engine) as s:
        return list(s.exec(select(OutboxRow).where(OutboxRow.status == PENDING).order_by(col(OutboxRow.id))).all())


def pending_for(session: Session, *, channel: str, kind: str, alert_ids: Collection[int]) -> list[OutboxRow]:
    """Undelivered rows of one kind for these alerts on one notifier, oldest first: lets a
    notifier see what is on its way (Slack grouping takes in alerts whose post is still queued)."""
    if not alert_ids:
        return []
    query = (
        select(OutboxRow)
        .where(OutboxRow.status == PENDING, OutboxRow.channel == channel, OutboxRow.kind == kind)
        .where(col(OutboxRow.alert_id).in_(list(alert_ids)))
        .order_by(col(OutboxRow.id))
    )
    return list(session.exec(query).all())


def release_held(session: Session, *, incident_ids: Collection[int], now: datetime) -> int:
    """The incidents page now: their chat rows held for business hours go out at once, to their
    normal channel (a quiet-channel choice is dropped). Returns how many rows were released."""
    released = 0
    for chunk in in_chunks(sorted(incident_ids)):
        rows = session.exec(
            select(OutboxRow)
            .where(col(OutboxRow.incident_id).in_(chunk), OutboxRow.status == PENDING)
            .where(col(OutboxRow.channel) != "pagerduty")
        ).all()
        for row in rows:
            if ensure_utc(row.not_before) <= now and "slack_channel" not in row.payload:
                continue
            row.not_before = min(ensure_utc(row.not_before), now)
            row.payload = {k: v for k, v in row.payload.items() if k != "slack_channel"}
            session.add(row)
            released += 1
    return released
