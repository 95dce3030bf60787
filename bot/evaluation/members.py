"""The evaluating processes on one database, and which of them are alive (issue 16, point 5).

Each process that runs the scheduler (``serve``, or ``worker``; never ``serve --web-only``) says
it is alive every :data:`BEAT_EVERY` in the ``evaluators`` table, from a job of its own, so a long
pass does not make it look dead; a member not heard from for :data:`LIVE_FOR` is taken for gone,
and the others take its models over at their next pass. A process that stops cleanly removes its
row (:meth:`Members.leave`), so its models move at once. A process that never beats (a test, the
CLI, ``demo``) still evaluates: it counts itself in, and at worst it evaluates models another
member evaluates too, which the database settles.

How long a killed member's models wait: at most :data:`LIVE_FOR` plus an evaluation interval. The
members compare their own clocks' readings, as the outbox claims do (NTP keeps them close enough).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from bot.clock import Clock
from bot.storage.database import session as open_session
from bot.storage.tables import EvaluatorRow

log = logging.getLogger(__name__)

BEAT_EVERY = timedelta(seconds=5)
LIVE_FOR = timedelta(seconds=15)
"""Three beats: one late or failed beat does not hand a live member's models to the others."""
FORGET_AFTER = timedelta(hours=1)
"""Rows of members gone this long are deleted by the next beat (a killed process leaves its row)."""


def process_name() -> str:
    """A name no other process on any host has, now or after a restart (host, pid, a random tail)."""
    return f"{socket.gethostname()[:150]}:{os.getpid()}:{secrets.token_hex(4)}"


class Members:
    """This process's membership among the evaluators."""

    def __init__(self, engine: Engine, clock: Clock, *, name: str | None = None) -> None:
        self._engine = engine
        self._clock = clock
        self.name = name or process_name()

    def beat(self) -> None:
        """Say this process is alive (the scheduler's ``evaluator-heartbeat`` job)."""
        now = self._clock.now()
        with open_session(self._engine) as s, s.begin():
            seen = s.exec(update(EvaluatorRow).where(col(EvaluatorRow.name) == self.name).values(seen_at=now))
            if not seen.rowcount:
                s.add(EvaluatorRow(name=self.name, seen_at=now))
            s.exec(delete(EvaluatorRow).where(col(EvaluatorRow.seen_at) < now - FORGET_AFTER))

    def live(self, session: Session) -> list[str]:
        """The members heard from within :data:`LIVE_FOR`, this one included, in the caller's transaction."""
        since = self._clock.now() - LIVE_FOR
        names = session.exec(select(EvaluatorRow.name).where(col(EvaluatorRow.seen_at) >= since)).all()
        return sorted({*names, self.name})

    def leave(self) -> None:
        """Remove this process's row as it stops, so the others take its models at their next pass."""
        try:
            with open_session(self._engine) as s, s.begin():
                s.exec(delete(EvaluatorRow).where(col(EvaluatorRow.name) == self.name))
        except SQLAlchemyError:  # stopping while the database is away: the row lapses within LIVE_FOR
            log.warning("could not remove this evaluator's row; the others take its models within %s", LIVE_FOR)
