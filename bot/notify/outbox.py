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

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from bot.clock import Clock
from bot.errors import DeliveryError
from bot.notify.notifier import Notification, Notifier
from bot.notify.outbox_claims import CLAIM_LEASE, RENEW_EVERY, Claims
from bot.notify.outbox_rows import (
    DROPPED,
    ENQUEUED_CHANNELS,
    FAILED,
    PENDING,
    SENT,
    enqueue,
    pending,
    pending_for,
    release_held,
)
from bot.observability import Metrics
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow

__all__ = [
    "CLAIM_BATCH",
    "CLAIM_LEASE",
    "DROPPED",
    "ENQUEUED_CHANNELS",
    "FAILED",
    "PENDING",
    "RENEW_EVERY",
    "SENT",
    "Backoff",
    "Outbox",
    "Pause",
    "ResultHook",
    "enqueue",
    "pending",
    "pending_for",
    "release_held",
]
"""The outbox's whole surface, whichever of its modules a name lives in (:mod:`bot.notify.outbox_rows`
for rows, :mod:`bot.notify.outbox_claims` for claims), so callers import it from here."""

log = logging.getLogger(__name__)

ResultHook = Callable[[Session, Notification, str, str | None], None]
"""Told a row's final outcome -- ``"sent"``, or ``"failed"`` with the error -- inside the
transaction that records it, so what it writes (a follow-up notification) is committed with the
outcome or not at all. An outcome written late (see the module docstring) is told when written,
so the hook may see a row twice if a commit's answer was lost: it must be idempotent."""

Result = tuple[Notification, str, str | None]

CLAIM_BATCH = 10
"""Rows claimed at a time. The claims of rows waiting their turn in the batch are renewed with the
one being sent, but a small batch still lets rows not yet tried go back to rank order soon (and,
if the process dies, leaves fewer rows for another to take over)."""

@dataclass(frozen=True)
class Pause:
    """A channel held back by a failure of the notifier itself: until when, why, how many in a row."""

    until: datetime
    reason: str
    streak: int


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
        self._worker = worker or uuid.uuid4().hex[:12]
        self._claims = Claims(engine, worker=self._worker, lease=claim_timeout)
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
        how many (:meth:`bot.notify.outbox_claims.Claims.renew`); a database error is the caller's
        (:class:`~bot.notify.lanes.ClaimRenewer`)."""
        return self._claims.renew(self._clock.now())

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
            claimed = self._claims.take(self._clock.now(), min(limit - attempted, CLAIM_BATCH), serving)
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
            self._claims.give_back(ids)
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
        return min([*resumes, *self._claims.next_due(now, serving)], default=None)

    def depth(self) -> int:
        with open_session(self._engine) as s:
            return len(s.exec(select(OutboxRow.id).where(OutboxRow.status == PENDING)).all())

    def failed_counts(self) -> dict[str, int]:
        """Notifications that failed for good, by channel (every replica's: they share the table)."""
        query = select(OutboxRow.channel, func.count()).where(OutboxRow.status == FAILED).group_by(OutboxRow.channel)
        with open_session(self._engine) as s:
            return {channel: int(count) for channel, count in s.exec(query).all()}

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
            self._write(note.id, values, result)
        except SQLAlchemyError as exc:
            log.warning("outbox row %s: cannot record the outcome now, trying on the next pass: %s", note.id, exc)
            self._unwritten[note.id] = (note.channel, values, result)

    def _write(self, row_id: int, values: dict[str, Any], result: Result | None) -> None:
        """Write one outcome and tell ``on_result`` in the same transaction; a database error is the
        caller's."""
        with open_session(self._engine) as s, s.begin():
            s.execute(update(OutboxRow).where(col(OutboxRow.id) == row_id).values(**values))
            self._report(s, result)

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
                self._write(row_id, values, result)
            except SQLAlchemyError as exc:
                log.warning("outbox: %d outcome(s) still wait for the database: %s", len(self._unwritten), exc)
                return False
            del self._unwritten[row_id]
            log.info("outbox row %s: outcome recorded late", row_id)
        return True

