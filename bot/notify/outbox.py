"""The notification outbox: enqueue inside the alert's transaction, deliver with retries.

Delivery claims rows before sending (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the single
writer on SQLite), so two replicas never send the same row. A claim is a short lease
(:data:`CLAIM_LEASE`, 10 s) that the live process renews every :data:`RENEW_EVERY`
(:meth:`Outbox.renew_claims`, run by the lanes' renewer in :mod:`bot.notify.lanes`), so a send
slower than the lease (Slack's retries and pacing, a batch of ten) keeps its rows while the
process lives; a process that died renews nothing, its claims lapse within the lease, and a lane
of another process wakes when they do (:meth:`Outbox.due_in`) and takes the rows over: after a
SIGKILL, delivery resumes within about 10 s, not minutes. A notification for an alert
waits until the earlier ones for that alert on the same channel went out, so Slack never sees
an update before the post it updates. Among the rows that may go, the most severe goes first
(P0 before P3, then oldest first): an alert's queued rows all rank with its most severe one, so a
P1 update lifts the P2 post it must follow instead of waiting behind it.

Each notifier channel is delivered on its own (:mod:`bot.notify.lanes`): ``deliver_due`` takes
the channels to serve, and :func:`enqueue` notes in the session which channels it wrote to, so
the transaction's commit can wake exactly those.

A failure that is the notifier's rather than the notification's (``DeliveryError.pauses``: Slack
refusing a revoked or rotated token) pauses that channel: its row waits with backoff, and no other
row of the channel is tried until the pause ends, when one row tries again (and the pause grows
while the token is still refused). Nothing fails for good on it; the first send that goes through
ends the pause, and the rows go out in their order.

If the database is unavailable when a send's outcome is to be written (restarting, or a SQLite
file locked longer than the busy timeout), the outcome is kept in memory and written at the start
of the next pass. The row stays claimed meanwhile, renewed whenever the database takes the renewal,
so no other process sends it again; only an outage of most of a lease lets the claim lapse (see
:class:`~bot.notify.lanes.ClaimRenewer`), and a process that took the row over then finds the
earlier send as after a crash (Slack's metadata, PagerDuty's dedup key).

Leases are compared with the clock of whoever reads them: replicas' clocks must agree to well
within the lease (NTP does).
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, exists, func, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from bot.clock import Clock, ensure_utc
from bot.errors import DeliveryError
from bot.notify.notifier import Notification, Notifier
from bot.observability import Metrics
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow

log = logging.getLogger(__name__)

PENDING, SENT, FAILED, DROPPED = "pending", "sent", "failed", "dropped"

ResultHook = Callable[[Session, Notification, str, str | None], None]
"""Told a row's final outcome -- ``"sent"``, or ``"failed"`` with the error -- inside the
transaction that records it, so what it writes (a follow-up notification) is committed with the
outcome or not at all. An outcome written late (see the module docstring) is told when written,
so the hook may see a row twice if a commit's answer was lost: it must be idempotent."""

Result = tuple[Notification, str, str | None]

CLAIM_LEASE = timedelta(seconds=10)
"""How long a claim holds without renewal. It is how long the rows of a process that died stay
stuck (a restarted process or another replica takes them over as it ends), so it is short; a live
process renews its claims every :data:`RENEW_EVERY`, so a send may take longer than the lease
(a 10 s client timeout, Slack's retries and pacing) without another replica taking the row. A
live claim lapses only if the database stays out of the renewer's reach for most of a lease
(about 6 s at the least: see :class:`~bot.notify.lanes.ClaimRenewer`)."""

RENEW_EVERY = CLAIM_LEASE / 3
"""How often a live process extends its claims (:meth:`Outbox.renew_claims`): a third of the
lease, so one late or failed renewal still leaves the claim standing."""

CLAIM_BATCH = 10
"""Rows claimed at a time. The claims of rows waiting their turn in the batch are renewed with the
one being sent, but a small batch still lets rows not yet tried go back to rank order soon (and,
if the process dies, leaves fewer rows for another to take over)."""

ENQUEUED_CHANNELS = "outbox.enqueued_channels"
"""``Session.info`` key: the notifier channels this session's transaction wrote rows for."""

UNRANKED = "P9"
"""The rank of a row without a severity (the weekly review): after every alert."""

_OUTBOX: Table = OutboxRow.__table__  # type: ignore[attr-defined]
_EARLIER = _OUTBOX.alias("earlier")
_MATE = _OUTBOX.alias("mate")
"""The outbox table again, for the claim's subqueries: made once, as building an alias costs
tens of milliseconds, which every claim would otherwise add to a notification's latency.

The claim's queries are plain Core over the table and these aliases, not ORM entities: with ORM
``aliased()`` entities, two lanes compiling a claim at the same moment could get a column of the
alias rendered as the table's own ("outbox.alert_id = outbox.alert_id", "misuse of aggregate"),
after which that lane's every claim failed. Core columns render as what they are, and the
aliases' column collections are built here, on import, by one thread."""
_EARLIER_C, _MATE_C, _OUTBOX_C = _EARLIER.c, _MATE.c, _OUTBOX.c


@dataclass(frozen=True)
class Pause:
    """A channel held back by a failure of the notifier itself: until when, why, how many in a row."""

    until: datetime
    reason: str
    streak: int


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
    session.add(
        OutboxRow(
            idempotency_key=idempotency_key,
            channel=channel,
            kind=kind,
            alert_id=alert_id,
            incident_id=incident_id,
            payload=dict(payload),
            status=PENDING,
            not_before=not_before or now,
            created_at=now,
        )
    )
    session.info.setdefault(ENQUEUED_CHANNELS, set()).add(channel)


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
        claim_timeout: timedelta = CLAIM_LEASE,
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
        self._paused: dict[str, Pause] = {}
        """Channels whose notifier refused to work at all (see the module docstring), by channel."""
        self._unwritten: dict[int, tuple[str, dict[str, Any], Result | None]] = {}
        """Outcomes of sends (row id → channel, column values, and the final result for
        ``on_result``) the database refused to take; see the docstring. Each channel's are written
        by whoever delivers that channel, so two lanes never write the same one."""
        self._lock = threading.Lock()
        self._delivering = 0
        """Calls of :meth:`deliver_due` under way (one per lane at most): while none is, this
        outbox holds no claim but those of :attr:`_unwritten` outcomes."""

    @property
    def channels(self) -> list[str]:
        return list(self._notifiers)

    @property
    def worker(self) -> str:
        """This outbox's name in ``claimed_by`` (``"<worker>:<claim>"``): one per process."""
        return self._worker

    @property
    def holds_claims(self) -> bool:
        """Whether this outbox may hold claims now (a delivery under way, or outcomes kept for the
        database): when not, a renewal would find nothing, and the renewer spares the database the
        UPDATE (on SQLite, a write lock every few seconds of an idle bot)."""
        return self._delivering > 0 or bool(self._unwritten)

    def renew_claims(self) -> int:
        """Extend, by a lease from now, the claims this outbox holds on rows still pending (those
        being sent, waiting in a claimed batch, or with an outcome kept for the database); return
        how many. One UPDATE; a database error is the caller's (:class:`~bot.notify.lanes.ClaimRenewer`).

        It may lock its rows in another order than :meth:`_release` does on PostgreSQL; a deadlock
        between the two fails one statement, and both callers take that in their stride."""
        now = self._clock.now()
        with open_session(self._engine) as s, s.begin():
            result = s.execute(
                update(OutboxRow)
                .where(
                    col(OutboxRow.status) == PENDING,
                    col(OutboxRow.claimed_by).startswith(f"{self._worker}:", autoescape=True),
                    col(OutboxRow.claimed_until).is_not(None),
                )
                .values(claimed_until=now + self._claim_timeout)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def pauses(self) -> dict[str, Pause]:
        """The channels paused now (their pause may have ended and wait for a try that ends it)."""
        return dict(self._paused)

    def _unpaused(self, channels: Collection[str]) -> list[str]:
        now = self._clock.now()
        return [c for c in channels if c not in self._paused or self._paused[c].until <= now]

    def deliver_due(
        self,
        limit: int = 100,
        *,
        channels: Collection[str] | None = None,
        interrupted: Callable[[], bool] = lambda: False,
        stopping: Callable[[], bool] = lambda: False,
    ) -> int:
        """Deliver what is due now on ``channels`` (default: every notifier's); return how many
        were sent. Never raises for a failed send.

        A claim takes at most the first pending entry of each alert (order per alert), so a
        burst such as fired → acknowledged → resolved needs several claims: keep claiming until
        nothing more is due or ``limit`` deliveries were attempted, instead of waiting a tick each.
        When ``interrupted()`` says new rows arrived, the rest of the batch is let go and claimed
        again in rank order, so a P0 queued behind slow sends (Slack's pacing) goes next.
        When ``stopping()`` says the process is shutting down, the rest is let go after the send
        in flight: a backlog paced at a post a second must not hold shutdown for a minute.
        """
        with self._lock:
            self._delivering += 1
        try:
            return self._deliver_due(limit, channels, interrupted, stopping)
        finally:
            with self._lock:
                self._delivering -= 1

    def _deliver_due(
        self,
        limit: int,
        channels: Collection[str] | None,
        interrupted: Callable[[], bool],
        stopping: Callable[[], bool],
    ) -> int:
        serving = list(self._notifiers) if channels is None else [c for c in channels if c in self._notifiers]
        serving = self._unpaused(serving)
        if not serving or not self._write_kept_outcomes(serving):
            return 0  # the database is still unavailable: nothing can be claimed either
        sent = attempted = 0
        while attempted < limit and not stopping():
            claimed = self._claim(min(limit - attempted, CLAIM_BATCH), serving)
            if not claimed:
                break
            for i, note in enumerate(claimed):
                let_go = stopping() or interrupted() or note.channel in self._paused
                if i and let_go and self._release(claimed[i:]):
                    break
                attempted += 1
                if self._deliver(note):
                    sent += 1
            if sent < attempted:
                break  # something failed: let its backoff run before claiming its successors
        return sent

    def _release(self, notes: list[Notification]) -> bool:
        """Give back claimed rows that were not tried (nor counted as attempts); False if the
        database refused, and then they are sent as claimed."""
        ids = [note.id for note in notes]
        try:
            with open_session(self._engine) as s, s.begin():
                s.execute(
                    update(OutboxRow)
                    .where(col(OutboxRow.id).in_(ids), col(OutboxRow.status) == PENDING)
                    .values(claimed_by=None, claimed_until=None, attempts=OutboxRow.attempts - 1)
                )
        except SQLAlchemyError as exc:
            log.warning("outbox: cannot give back %d claimed row(s), sending them: %s", len(ids), exc)
            return False
        return True

    def due_in(self, channels: Collection[str]) -> timedelta | None:
        """How long until the earliest row these channels could claim is due (zero or less: it
        is), or None: a lane sleeps that long. A row claimed by another process is due when its
        claim lapses (if that process died, nobody renews it, and it is taken over then); rows
        waiting on an earlier row of their alert do not count: the lane's regular poll finds them.
        Paused channels are due when their pause ends."""
        now = self._clock.now()
        serving = self._unpaused(channels)
        resumes = [self._paused[c].until - now for c in channels if c not in serving]
        if not serving:
            return min(resumes, default=None)
        free = core_select(func.min(_OUTBOX_C.not_before)).where(*self._claimable(now, serving))
        held = select(func.min(OutboxRow.claimed_until)).where(
            col(OutboxRow.status) == PENDING,
            col(OutboxRow.channel).in_(list(serving)),
            col(OutboxRow.claimed_until) >= now,
            ~col(OutboxRow.claimed_by).startswith(f"{self._worker}:", autoescape=True),
        )
        with open_session(self._engine) as s:  # one round trip, as the lanes ask after every pass
            found, lapses = s.exec(select(free.scalar_subquery(), held.scalar_subquery())).one()
        due = [*resumes, *(ensure_utc(t) - now for t in (found, lapses) if t is not None)]
        return min(due, default=None)

    def depth(self) -> int:
        with open_session(self._engine) as s:
            return len(s.exec(select(OutboxRow.id).where(OutboxRow.status == PENDING)).all())

    def failed_counts(self) -> dict[str, int]:
        """Notifications that failed for good, by channel (every replica's: they share the table)."""
        query = select(OutboxRow.channel, func.count()).where(OutboxRow.status == FAILED).group_by(OutboxRow.channel)
        with open_session(self._engine) as s:
            return {channel: int(count) for channel, count in s.exec(query).all()}

    @staticmethod
    def _claimable(now: datetime, channels: Collection[str]) -> list[ColumnElement[bool]]:
        """Pending rows of ``channels`` that no live claim holds and no earlier row of their
        alert waits ahead of, whatever their ``not_before``."""
        row, earlier = _OUTBOX_C, _EARLIER_C
        same_incident = and_(row.incident_id.is_not(None), earlier.incident_id == row.incident_id)
        same_alert = and_(row.incident_id.is_(None), earlier.alert_id == row.alert_id)
        blocked = exists().where(
            and_(
                or_(same_incident, same_alert),
                earlier.channel == row.channel,
                earlier.status == PENDING,
                earlier.id < row.id,
            )
        )
        return [
            row.status == PENDING,
            row.channel.in_(list(channels)),
            or_(row.claimed_until.is_(None), row.claimed_until < now),
            or_(and_(row.alert_id.is_(None), row.incident_id.is_(None)), ~blocked),
        ]

    @staticmethod
    def _rank() -> ColumnElement[str]:
        """A row's place in the queue: the most severe of its incident's (or, outside incidents, its
        alert's) pending rows on its channel (``P0`` … ``P3``, then :data:`UNRANKED`), so the row an
        urgent update waits for ranks with it."""
        row, mate = _OUTBOX_C, _MATE_C
        same_incident = and_(row.incident_id.is_not(None), mate.incident_id == row.incident_id)
        same_alert = and_(row.incident_id.is_(None), mate.alert_id == row.alert_id)
        most_severe = (
            core_select(func.min(_severity(mate.payload)))
            .where(or_(same_incident, same_alert), mate.channel == row.channel, mate.status == PENDING)
            .scalar_subquery()
        )
        return func.coalesce(most_severe, _severity(row.payload))

    def _claim(self, limit: int, channels: Collection[str]) -> list[Notification]:
        now = self._clock.now()
        due = (
            core_select(_OUTBOX_C.id)
            .where(*self._claimable(now, channels), _OUTBOX_C.not_before <= now)
            .order_by(self._rank(), _OUTBOX_C.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        token = f"{self._worker}:{uuid.uuid4().hex[:8]}"
        with open_session(self._engine) as s, s.begin():
            ids = list(s.execute(due).scalars().all())
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
            rows = s.exec(select(OutboxRow).where(OutboxRow.claimed_by == token)).all()
        place = {row_id: i for i, row_id in enumerate(ids)}  # the claim's order: most severe first
        rows = sorted(rows, key=lambda r: place.get(r.id or 0, len(place)))
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
        ended = self._paused.pop(note.channel, None)
        if ended is not None:
            log.warning("%s delivery resumed: outbox row %s went out (paused: %s)", note.channel, note.id, ended.reason)
        return True

    def _record_failure(self, note: Notification, error: DeliveryError) -> None:
        attempts = note.attempts + 1
        if self._metrics:
            self._metrics.notification(note.channel, "retried" if error.retryable else "failed")
        if not error.retryable:
            log.error("outbox row %s (%s) failed for good: %s", note.id, note.channel, error)
            self._finish(note, status=FAILED, error=str(error), sent=False)
            return
        if error.pauses:
            wait = self._pause(note.channel, error)
        else:
            wait = self._backoff.delay(attempts, error.retry_after, self._rng)
        log.warning(
            "outbox row %s (%s) attempt %d failed, retry in %.1fs: %s", note.id, note.channel, attempts, wait, error
        )
        self._write_outcome(
            note,
            {
                "last_error": str(error)[:2000],
                "claimed_until": None,
                "claimed_by": None,
                "not_before": self._clock.now() + timedelta(seconds=wait),
            },
        )

    def _pause(self, channel: str, error: DeliveryError) -> float:
        """Hold ``channel`` back for a backoff that grows with each refusal in a row; return it."""
        streak = self._paused[channel].streak + 1 if channel in self._paused else 1
        wait = self._backoff.delay(streak, error.retry_after, self._rng)
        self._paused[channel] = Pause(self._clock.now() + timedelta(seconds=wait), str(error), streak)
        log.error("%s delivery paused, trying again in %.1fs (refusal %d in a row): %s", channel, wait, streak, error)
        return wait

    def _finish(self, note: Notification, *, status: str, error: str | None, sent: bool) -> None:
        now = self._clock.now()
        values = {"status": status, "last_error": error, "claimed_until": None, "sent_at": now if sent else None}
        self._write_outcome(note, values, result=(note, status, error))

    def _write_outcome(self, note: Notification, values: dict[str, Any], *, result: Result | None = None) -> None:
        """Write a send's outcome (and tell ``on_result`` a final one); if the database refuses,
        keep both for the next pass."""
        try:
            with open_session(self._engine) as s, s.begin():
                s.execute(update(OutboxRow).where(col(OutboxRow.id) == note.id).values(**values))
                self._report(s, result)
        except SQLAlchemyError as exc:
            log.warning("outbox row %s: cannot record the outcome now, trying on the next pass: %s", note.id, exc)
            self._unwritten[note.id] = (note.channel, values, result)

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

    def _write_kept_outcomes(self, channels: Collection[str]) -> bool:
        """Write the outcomes kept by earlier passes on ``channels``; False while the database
        still refuses."""
        for row_id, (channel, values, result) in list(self._unwritten.items()):
            if channel not in channels:
                continue
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


def _severity(payload: ColumnElement[Any]) -> ColumnElement[str]:
    """The ``severity`` of a row's payload, or :data:`UNRANKED`; ``P0`` < ``P1`` … as text."""
    return func.coalesce(payload["severity"].as_string(), UNRANKED)


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


def release_held(session: Session, *, incident_id: int, now: datetime) -> int:
    """The incident pages now: its chat rows held for business hours go out at once, to their
    normal channel (a quiet-channel choice is dropped). Returns how many rows were released."""
    rows = session.exec(
        select(OutboxRow)
        .where(OutboxRow.incident_id == incident_id, OutboxRow.status == PENDING)
        .where(col(OutboxRow.channel) != "pagerduty")
    ).all()
    released = 0
    for row in rows:
        if ensure_utc(row.not_before) <= now and "slack_channel" not in row.payload:
            continue
        row.not_before = min(ensure_utc(row.not_before), now)
        row.payload = {k: v for k, v in row.payload.items() if k != "slack_channel"}
        session.add(row)
        released += 1
    return released
