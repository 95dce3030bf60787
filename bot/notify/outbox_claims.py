"""Claiming outbox rows: the SQL that decides which pending rows a lane may take, in which order,
and the short leases that keep two replicas from sending the same row.

A claim takes rows ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite has one writer) and holds them
for :data:`CLAIM_LEASE`; the live process renews its claims (:meth:`Claims.renew`), so only the
claims of a process that died lapse. A row waits while an earlier row of its incident (or, outside
incidents, its alert) on the same channel is pending, and rows rank with the most severe pending
row they wait behind. Split from :mod:`bot.notify.outbox`, which delivers what is claimed here.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, case, exists, func, literal_column, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.clock import ensure_utc
from bot.notify.notifier import Notification
from bot.notify.outbox_rows import PENDING, UNRANKED
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow

CLAIM_LEASE = timedelta(seconds=10)
"""How long a claim holds without renewal. It is how long the rows of a process that died stay
stuck (a restarted process or another replica takes them over as it ends), so it is short; a live
process renews its claims every :data:`RENEW_EVERY`, so a send may take longer than the lease
(a 10 s client timeout, Slack's retries and pacing) without another replica taking the row. A
live claim lapses only if the database stays out of the renewer's reach for most of a lease
(about 6 s at the least: see :class:`~bot.notify.lanes.ClaimRenewer`)."""

RENEW_EVERY = CLAIM_LEASE / 3
"""How often a live process extends its claims (:meth:`~bot.notify.outbox.Outbox.renew_claims`): a
third of the lease, so one late or failed renewal still leaves the claim standing."""

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


class Claims:
    """One process's claims on the outbox, named ``"<worker>:<claim>"`` in ``claimed_by``."""

    def __init__(self, engine: Engine, *, worker: str, lease: timedelta = CLAIM_LEASE) -> None:
        self._engine = engine
        self._worker = worker
        self._lease = lease

    def _ours(self) -> ColumnElement[bool]:
        return col(OutboxRow.claimed_by).startswith(f"{self._worker}:", autoescape=True)

    def renew(self, now: datetime) -> int:
        """Extend, by a lease from ``now``, this process's claims on rows still pending; return how
        many. One UPDATE; a database error is the caller's.

        It may lock its rows in another order than :meth:`give_back` does on PostgreSQL; a deadlock
        between the two fails one statement, and both callers take that in their stride."""
        with open_session(self._engine) as s, s.begin():
            result = s.execute(
                update(OutboxRow)
                .where(col(OutboxRow.status) == PENDING, self._ours(), col(OutboxRow.claimed_until).is_not(None))
                .values(claimed_until=now + self._lease)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def give_back(self, ids: list[int]) -> None:
        """Release claimed rows that were not tried, and uncount their attempt; a database error is
        the caller's."""
        with open_session(self._engine) as s, s.begin():
            s.execute(
                update(OutboxRow)
                .where(col(OutboxRow.id).in_(ids), col(OutboxRow.status) == PENDING)
                .values(claimed_by=None, claimed_until=None, attempts=OutboxRow.attempts - 1)
            )

    def next_due(self, now: datetime, channels: Collection[str]) -> list[timedelta]:
        """How long until the earliest claimable row of ``channels`` is due, and until the earliest
        claim of another process lapses (each only if there is one)."""
        free = core_select(func.min(_OUTBOX_C.not_before)).where(*claimable(now, channels))
        held = select(func.min(OutboxRow.claimed_until)).where(
            col(OutboxRow.status) == PENDING,
            col(OutboxRow.channel).in_(list(channels)),
            col(OutboxRow.claimed_until) >= now,
            ~self._ours(),
        )
        with open_session(self._engine) as s:  # one round trip, as the lanes ask after every pass
            found, lapses = s.exec(select(free.scalar_subquery(), held.scalar_subquery())).one()
        return [ensure_utc(t) - now for t in (found, lapses) if t is not None]

    def take(self, now: datetime, limit: int, channels: Collection[str]) -> list[Notification]:
        """Claim up to ``limit`` due rows of ``channels``, most severe first; count an attempt on each."""
        due = (
            core_select(_OUTBOX_C.id)
            .where(*claimable(now, channels), _OUTBOX_C.not_before <= now)
            .order_by(rank(), _OUTBOX_C.id)
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
                .values(claimed_by=token, claimed_until=now + self._lease, attempts=OutboxRow.attempts + 1)
            )
        with open_session(self._engine) as s:
            rows = s.exec(select(OutboxRow).where(OutboxRow.claimed_by == token)).all()
        place = {row_id: i for i, row_id in enumerate(ids)}  # the claim's order: most severe first
        rows = sorted(rows, key=lambda r: place.get(r.id or 0, len(place)))
        return [Notification(r.id or 0, r.channel, r.kind, r.alert_id, r.payload, r.attempts - 1) for r in rows]


def claimable(now: datetime, channels: Collection[str]) -> list[ColumnElement[bool]]:
    """Pending rows of ``channels`` that no live claim holds and no earlier row of their
    alert waits ahead of, whatever their ``not_before``."""
    row, earlier = _OUTBOX_C, _EARLIER_C
    ahead = [earlier.channel == row.channel, earlier.status == _PENDING_SQL, earlier.id < row.id]
    blocked = or_(
        and_(row.incident_id.is_not(None), exists().where(earlier.incident_id == row.incident_id, *ahead)),
        and_(row.incident_id.is_(None), exists().where(earlier.alert_id == row.alert_id, *ahead)),
    )
    return [
        row.status == PENDING,
        row.channel.in_(list(channels)),
        or_(row.claimed_until.is_(None), row.claimed_until < now),
        or_(and_(row.alert_id.is_(None), row.incident_id.is_(None)), ~blocked),
    ]


def rank() -> ColumnElement[str]:
    """A row's place in the queue: the most severe of its incident's (or, outside incidents, its
    alert's) pending rows on its channel (``P0`` … ``P3``, then :data:`UNRANKED`), so the row an
    urgent update waits for ranks with it."""
    row, mate = _OUTBOX_C, _MATE_C

    def most_severe(same: ColumnElement[bool]) -> Any:
        mates = core_select(func.min(_severity(mate.payload)))
        return mates.where(same, mate.channel == row.channel, mate.status == _PENDING_SQL).scalar_subquery()

    among = case(
        (row.incident_id.is_not(None), most_severe(mate.incident_id == row.incident_id)),
        else_=most_severe(mate.alert_id == row.alert_id),
    )
    return func.coalesce(among, _severity(row.payload))


_PENDING_SQL: ColumnElement[str] = literal_column(f"'{PENDING}'")
"""``pending`` written into the claim's subqueries, not bound: SQLite uses a partial index
(``… WHERE status = 'pending'``) only for a query that says so literally. Each subquery names one
of the incident or the alert (not an OR of both) for the same reason: then each is an index seek
per candidate row, where before each scanned every pending row, so a claim cost time quadratic
in the backlog (10,000 pending rows: 67 s a claim on SQLite; issue 16)."""


def _severity(payload: ColumnElement[Any]) -> ColumnElement[str]:
    """The ``severity`` of a row's payload, or :data:`UNRANKED`; ``P0`` < ``P1`` … as text."""
    return func.coalesce(payload["severity"].as_string(), UNRANKED)
