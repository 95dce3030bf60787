"""The notification outbox: enqueue inside the alert's transaction, deliver with retries.

Delivery claims rows before sending (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the single
writer on SQLite), so two replicas never send the same row; a claim left by a process that
died expires after ``claim_timeout`` and the row is taken over. A notification for an alert
waits until the earlier ones for that alert on the same channel went out, so Slack never sees
an update before the post it updates.

If the database is unavailable when a send's outcome is to be written (restarting, or a SQLite
file locked longer than the busy timeout), the outcome is kept in memory and written at the start
of the next pass, so the row is not left claimed until ``claim_timeout`` while the process lives.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from bot.clock import Clock
from bot.errors import DeliveryError
from bot.notify.notifier import Notification, Notifier
from bot.observability import Metrics
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow

log = logging.getLogger(__name__)

PENDING, SENT, FAILED = "pending", "sent", "failed"

ResultHook = Callable[[Session, Notification, str, str | None], None]
"""Told a row's final outcome -- ``"sent"``, or ``"failed"`` with the error -- inside the
transaction that records it, so what it writes (a follow-up notification) is committed with the
outcome or not at all. An outcome written late (see the module docstring) is told when written,
so the hook may see a row twice if a commit's answer was lost: it must be idempotent."""

Result = tuple[Notification, str, str | None]

CLAIM_BATCH = 10
"""Rows claimed at a time. A claim lasts ``claim_timeout`` (2 min) and a send may take a client
timeout (10 s) or more, so small batches keep every row sent well inside its claim: another
replica never takes over a row this one is still about to send."""


def enqueue(
    session: Session,
    *,
    channel: str,
    kind: str,
    payload: Mapping[str, Any],
    idempotency_key: str,
    now: datetime,
    alert_id: int | None = None,
    not_before: datetime | None = None,
) -> None:
    session.add(
        OutboxRow(
            idempotency_key=idempotency_key,
            channel=channel,
            kind=kind,
            alert_id=alert_id,
            payload=dict(payload),
            status=PENDING,
            not_before=not_before or now,
            created_at=now,
        )
    )


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, capped; a server's ``Retry-After`` wins."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempts: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return max(retry_after, 0.0)
        ceiling = min(self.cap, self.base * 2.0 ** max(attempts - 1, 0))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class Outbox:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        notifiers: Mapping[str, Notifier],
        *,
        backoff: Backoff | None = None,
        claim_timeout: timedelta = timedelta(minutes=2),
        worker: str | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        on_result: ResultHook | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._notifiers = dict(notifiers)
        self._backoff = backoff or Backoff()
        self._claim_timeout = claim_timeout
        self._worker = worker or uuid.uuid4().hex[:12]
        self._rng = rng or random.Random()
        self._metrics = metrics
        self._on_result = on_result
        self._unwritten: dict[int, tuple[dict[str, Any], Result | None]] = {}
        """Outcomes of sends (row id → column values, and the final result for ``on_result``) the
        database refused to take; see the docstring."""

    @property
    def channels(self) -> list[str]:
        return list(self._notifiers)

    def deliver_due(self, limit: int = 100) -> int:
        """Deliver what is due now; return how many were sent. Never raises for a failed send.

        A claim takes at most the first pending entry of each alert (order per alert), so a
        burst such as fired → acknowledged → resolved needs several claims: keep claiming until
        nothing more is due or ``limit`` deliveries were attempted, instead of waiting a tick each.
        """
        if not self._write_kept_outcomes():
            return 0  # the database is still unavailable: nothing can be claimed either
        sent = attempted = 0
        while attempted < limit:
            batch = self._claim(min(limit - attempted, CLAIM_BATCH))
            if not batch:
                break
            for note in batch:
                attempted += 1
                if self._deliver(note):
                    sent += 1
            if sent < attempted:
                break  # something failed: let its backoff run before claiming its successors
        return sent

    def depth(self) -> int:
        with open_session(self._engine) as s:
            return len(s.exec(select(OutboxRow.id).where(OutboxRow.status == PENDING)).all())

    def _claim(self, limit: int) -> list[Notification]:
        now = self._clock.now()
        earlier = aliased(OutboxRow)
        blocked = exists().where(
            and_(
                col(earlier.alert_id) == OutboxRow.alert_id,
                col(earlier.channel) == OutboxRow.channel,
                col(earlier.status) == PENDING,
                col(earlier.id) < OutboxRow.id,
            )
        )
        due = (
            select(OutboxRow.id)
            .where(OutboxRow.status == PENDING, col(OutboxRow.not_before) <= now)
            .where(col(OutboxRow.channel).in_(list(self._notifiers)))
            .where(or_(col(OutboxRow.claimed_until).is_(None), col(OutboxRow.claimed_until) < now))
            .where(or_(col(OutboxRow.alert_id).is_(None), ~blocked))
            .order_by(col(OutboxRow.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        token = f"{self._worker}:{uuid.uuid4().hex[:8]}"
        with open_session(self._engine) as s, s.begin():
            ids = list(s.exec(due).all())
            if not ids:
                return []
            # SQLite has no row locks: another worker may have claimed these since our SELECT,
            # so the claim re-checks that each row is still free (PostgreSQL's lock ensures it)
            s.execute(
                update(OutboxRow)
                .where(col(OutboxRow.id).in_(ids), col(OutboxRow.status) == PENDING)
                .where(or_(col(OutboxRow.claimed_until).is_(None), col(OutboxRow.claimed_until) < now))
                # counted at claim time, so a process that dies mid-send still leaves the attempt on
                # record and the next worker knows the first attempt's fate is unknown
                .values(claimed_by=token, claimed_until=now + self._claim_timeout, attempts=OutboxRow.attempts + 1)
            )
        with open_session(self._engine) as s:
            rows = s.exec(select(OutboxRow).where(OutboxRow.claimed_by == token).order_by(col(OutboxRow.id))).all()
            return [Notification(r.id or 0, r.channel, r.kind, r.alert_id, r.payload, r.attempts - 1) for r in rows]

    def _deliver(self, note: Notification) -> bool:
        notifier = self._notifiers[note.channel]
        try:
            notifier.send(note)
        except DeliveryError as exc:
            self._record_failure(note, exc)
            return False
        except Exception as exc:  # a bug in a notifier must not stop the queue
            log.exception("notifier %s crashed on outbox row %s", note.channel, note.id)
            self._record_failure(note, DeliveryError(f"notifier crashed: {exc!r}", retryable=True))
            return False
        self._finish(note, status=SENT, error=None, sent=True)
        if self._metrics:
            self._metrics.notification(note.channel, "sent")
        return True

    def _record_failure(self, note: Notification, error: DeliveryError) -> None:
        attempts = note.attempts + 1
        if self._metrics:
            self._metrics.notification(note.channel, "retried" if error.retryable else "failed")
        if not error.retryable:
            log.error("outbox row %s (%s) failed for good: %s", note.id, note.channel, error)
            self._finish(note, status=FAILED, error=str(error), sent=False)
            return
        wait = self._backoff.delay(attempts, error.retry_after, self._rng)
        log.warning(
            "outbox row %s (%s) attempt %d failed, retry in %.1fs: %s", note.id, note.channel, attempts, wait, error
        )
        self._write_outcome(
            note.id,
            {
                "last_error": str(error)[:2000],
                "claimed_until": None,
                "claimed_by": None,
                "not_before": self._clock.now() + timedelta(seconds=wait),
            },
        )

    def _finish(self, note: Notification, *, status: str, error: str | None, sent: bool) -> None:
        now = self._clock.now()
        values = {"status": status, "last_error": error, "claimed_until": None, "sent_at": now if sent else None}
        self._write_outcome(note.id, values, result=(note, status, error))

    def _write_outcome(self, row_id: int, values: dict[str, Any], *, result: Result | None = None) -> None:
        """Write a send's outcome (and tell ``on_result`` a final one); if the database refuses,
        keep both for the next pass."""
        try:
            with open_session(self._engine) as s, s.begin():
                s.execute(update(OutboxRow).where(col(OutboxRow.id) == row_id).values(**values))
                self._report(s, result)
        except SQLAlchemyError as exc:
            log.warning("outbox row %s: cannot record the outcome now, trying on the next pass: %s", row_id, exc)
            self._unwritten[row_id] = (values, result)

    def _report(self, session: Session, result: Result | None) -> None:
        """Call ``on_result`` in the outcome's transaction. A database error rolls both back (and
        both are kept for the next pass); any other error in the hook is logged, and the outcome
        is still recorded."""
        if self._on_result is None or result is None:
            return
        note, outcome, error = result
        try:
            self._on_result(session, note, outcome, error)
        except SQLAlchemyError:
            raise
        except Exception:
            log.exception("outbox row %s: the result hook failed on %r", note.id, outcome)

    def _write_kept_outcomes(self) -> bool:
        """Write the outcomes kept by earlier passes; False while the database still refuses."""
        for row_id, (values, result) in list(self._unwritten.items()):
            try:
                with open_session(self._engine) as s, s.begin():
                    s.execute(update(OutboxRow).where(col(OutboxRow.id) == row_id).values(**values))
                    self._report(s, result)
            except SQLAlchemyError as exc:
                log.warning("outbox: %d outcome(s) still wait for the database: %s", len(self._unwritten), exc)
                return False
            del self._unwritten[row_id]
            log.info("outbox row %s: outcome recorded late", row_id)
        return True


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
