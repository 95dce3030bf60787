"""Delivery lanes: one worker thread per notifier channel, woken by the commits that feed it.

A single queue for every notifier made a page wait behind Slack posts, which Slack paces at one
a second per channel (a P0 reached PagerDuty 39 s late behind 40 P3 posts). Each channel
(``slack``, ``pagerduty``, ``log`` …) therefore has its own lane: a thread that claims only that
channel's rows through the shared :class:`~bot.notify.outbox.Outbox` (so claims, per-alert
order, severity order, kept outcomes and backoff are the outbox's, once) and sleeps only on its
own backoffs and pacing.

A lane does not poll the outbox on a fixed tick: :func:`~bot.notify.outbox.enqueue` notes the
channels a session wrote to, and the session's commit wakes those lanes at once. Otherwise a lane
sleeps until its earliest held row is due (``group_wait``, business hours, a retry's backoff),
and at most :data:`POLL` -- the fallback that finds rows other replicas enqueued or let go. A row
another process holds is due when its claim lapses, so the lane takes over a dead process's rows
as its lease ends.

A ``serve --web-only`` process runs no lanes: its commits are for the lanes of ``incident-bot
worker``. On PostgreSQL it announces them (:func:`announcing`: ``NOTIFY`` on
:data:`WAKEUP_CHANNEL`) and running lanes listen (:class:`WakeupListener`), so a click's message
update leaves at once, not at the worker's next poll; on SQLite the poll finds it.

While the lanes run, a :class:`ClaimRenewer` keeps this process's claims alive
(:meth:`~bot.notify.outbox.Outbox.renew_claims` every :data:`~bot.notify.outbox.RENEW_EVERY`):
claims are short leases, so that a crashed process's rows are taken over within seconds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Protocol

import psycopg
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.notify.outbox import ENQUEUED_CHANNELS, RENEW_EVERY, Outbox

log = logging.getLogger(__name__)

POLL = 1.0
"""Longest sleep of an idle lane, in seconds: how soon it sees work no commit of this process
announced (another replica's rows, a claim that expired)."""

RENEW_RETRY = 0.5
"""How soon, in seconds, a renewal that failed is tried again (quietly)."""

JOIN_TIMEOUT = 15.0
"""How long shutdown waits for a lane's send in flight (a client timeout is 10 s)."""

WAKEUP_CHANNEL = "incident_bot_outbox"
"""The PostgreSQL ``LISTEN``/``NOTIFY`` channel; a notification's payload names the outbox channels
a commit fed, comma-separated."""

LISTEN_TICK = 1.0
"""Seconds a :class:`WakeupListener` waits for a notification before it checks whether to stop."""


class Lane:
    """The delivery worker of one notifier channel."""

    def __init__(self, outbox: Outbox, channel: str, *, poll: float = POLL) -> None:
        self.channel = channel
        self._outbox = outbox
        self._poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"lane-{self.channel}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Ask the lane to stop; :meth:`join` waits for it."""
        self._stop.set()
        self._wake.set()

    def join(self) -> None:
        """Wait for the lane's send in flight, if any, to finish."""
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)
            if self._thread.is_alive():
                log.warning("delivery lane %s is still sending after %.0fs; leaving it", self.channel, JOIN_TIMEOUT)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the pass: a commit during it wakes the next one at once
            self._wake.wait(self._pass())

    def _woken(self) -> bool:
        """Whether a commit fed this lane since the last look (and forget it): the outbox then
        re-claims in rank order, which sees every row committed before the wake."""
        if not self._wake.is_set():
            return False
        self._wake.clear()
        return True

    def _pass(self) -> float:
        """Deliver what is due; return how long to sleep unless woken."""
        try:
            self._outbox.deliver_due(channels=[self.channel], interrupted=self._woken, stopping=self._stop.is_set)
            due = self._outbox.due_in([self.channel])
        except SQLAlchemyError as exc:  # the database is restarting or locked: try again soon
            log.warning("delivery lane %s: database unavailable, retrying in %.1fs: %s", self.channel, self._poll, exc)
            return self._poll
        except Exception:
            log.exception("delivery lane %s failed; it runs again in %.1fs", self.channel, self._poll)
            return self._poll
        if due is None:
            return self._poll
        return min(max(due.total_seconds(), 0.0), self._poll)


class ClaimRenewer:
    """A thread that renews the outbox's claims every ``every`` seconds while this process lives
    (see :data:`~bot.notify.outbox.CLAIM_LEASE`).

    A failed renewal (the database restarting or locked) is logged once per outage, when it
    starts, and once more when renewal works again; it never stops the thread, which retries
    every :data:`RENEW_RETRY` meanwhile, to renew as soon as the database is back. Claims outlive
    any outage shorter than the lease less an interval and a retry (about 6 s); after a longer one,
    a replica that reaches the database before this renewer may take over a row this process is
    still sending."""

    def __init__(self, outbox: Outbox, *, every: float = RENEW_EVERY.total_seconds()) -> None:
        self._outbox = outbox
        self._every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-claim-renewer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for a renewal in flight (one UPDATE)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)
            if self._thread.is_alive():
                log.warning("outbox claim renewer still running after %.0fs; leaving it", JOIN_TIMEOUT)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(min(self._every, RENEW_RETRY) if self._failing else self._every):
            self.renew()

    def renew(self) -> None:
        """One renewal, if the outbox may hold claims; never raises."""
        try:
            if self._outbox.holds_claims:
                self._outbox.renew_claims()
        except Exception as exc:  # a database outage, or a bug: both must leave the thread running
            if not self._failing:
                self._failing = True
                if isinstance(exc, SQLAlchemyError):
                    log.warning("outbox: cannot renew this process's claims (retrying quietly): %s", exc)
                else:
                    log.exception("outbox: renewing this process's claims failed (retrying quietly)")
            return
        if self._failing:
            self._failing = False
            log.warning("outbox: claims renewed again")


class Lanes:
    """Every notifier channel's lane, started and stopped together, woken by commits on
    ``engine``, with the :class:`ClaimRenewer` that keeps their claims while they run."""

    def __init__(
        self, outbox: Outbox, engine: Engine, *, poll: float = POLL, renew_every: float = RENEW_EVERY.total_seconds()
    ) -> None:
        self.engine = engine
        """The database whose outbox they deliver."""
        self._lanes = {channel: Lane(outbox, channel, poll=poll) for channel in outbox.channels}
        self._renewer = ClaimRenewer(outbox, every=renew_every)
        self.listener = WakeupListener(engine, self.wake, self.channels) if _is_postgres(engine) else None

    @property
    def channels(self) -> list[str]:
        return list(self._lanes)

    @property
    def running(self) -> bool:
        return self._renewer.running or any(lane.running for lane in self._lanes.values())

    def start(self) -> None:
        _listen()
        with _LOCK:
            _STARTED.append(self)
        self._renewer.start()  # before the first claim
        for lane in self._lanes.values():
            lane.start()
        if self.listener is not None:
            self.listener.start()

    def request_stop(self) -> None:
        """Ask every lane to stop after its send in flight (commits no longer wake them)."""
        with _LOCK:
            if self in _STARTED:
                _STARTED.remove(self)
        if self.listener is not None:
            self.listener.stop()
        for lane in self._lanes.values():
            lane.stop()

    def stop(self) -> None:
        self.request_stop()
        for lane in self._lanes.values():  # all asked first: shutdown waits for the slowest send, not the sum
            lane.join()
        self._renewer.stop()  # last: a send finishing during shutdown keeps its claim

    def wake(self, channels: Iterable[str]) -> None:
        for channel in channels:
            lane = self._lanes.get(channel)
            if lane is not None:
                lane.wake()

    def committed(self, engine: Engine, channels: Collection[str]) -> None:
        if engine is self.engine:
            self.wake(channels)


class WakeupListener:
    """A thread that ``LISTEN``s on :data:`WAKEUP_CHANNEL` and wakes the lanes a web-only
    process's commit fed. Its own connection, outside the pool; after a lost connection it wakes
    every lane (it may have missed announcements) and listens again. Losing it only costs speed:
    the lanes' poll still finds every row."""

    def __init__(self, engine: Engine, wake: Callable[[Iterable[str]], None], channels: list[str]) -> None:
        self._url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._wake = wake
        self._channels = channels
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()
        """Set while ``LISTEN`` is in force (after the wake that covers the time before it)."""

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-wakeups", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop within :data:`LISTEN_TICK` (not waited for: it holds no claim and sends nothing)."""
        self._stop.set()

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=3) as connection:
                    connection.execute(f"LISTEN {WAKEUP_CHANNEL}")
                    self._wake(self._channels)  # whatever was announced while nobody listened
                    self.listening.set()
                    if failing:
                        failing = False
                        log.warning("outbox wake-ups: listening again")
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=LISTEN_TICK):
                            self._wake(notice.payload.split(","))
            except psycopg.Error as exc:
                self.listening.clear()
                if not failing:
                    failing = True
                    log.warning("outbox wake-ups: not listening (the lanes still poll): %s", exc)
                self._stop.wait(RENEW_RETRY)
        self.listening.clear()


class _Announcer:
    """Tells other processes' lanes which channels a commit on ``engine`` fed."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def committed(self, engine: Engine, channels: Collection[str]) -> None:
        if engine is not self._engine:
            return
        try:
            with engine.connect() as connection:
                payload = ",".join(sorted(channels))
                connection.execute(
                    text("SELECT pg_notify(:name, :payload)"), {"name": WAKEUP_CHANNEL, "payload": payload}
                )
                connection.commit()
        except SQLAlchemyError as exc:  # the worker's poll finds the rows: only the speed is lost
            log.info("outbox wake-up not announced: %s", exc)


@contextlib.contextmanager
def announcing(engine: Engine) -> Iterator[None]:
    """While the block runs, commits on ``engine`` that feed the outbox wake the lanes of the other
    processes on its PostgreSQL database (for a process that runs no lanes); nothing on SQLite."""
    if not _is_postgres(engine):
        yield
        return
    _listen()
    announcer = _Announcer(engine)
    with _LOCK:
        _STARTED.append(announcer)
    try:
        yield
    finally:
        with _LOCK:
            _STARTED.remove(announcer)


def _is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


class _Committed(Protocol):
    def committed(self, engine: Engine, channels: Collection[str]) -> None: ...


_LOCK = threading.Lock()
_STARTED: list[_Committed] = []
"""The running lanes and announcers, which commits on their engine reach. SQLAlchemy's session
events are per class, not per engine, so one listener serves every bot in the process (tests
build several)."""


def _listen() -> None:
    """Install the commit and rollback listeners, once per process, when the first lanes start
    (not at import: importing the outbox must not change how sessions behave)."""
    with _LOCK:
        if not event.contains(Session, "after_commit", _after_commit):
            event.listen(Session, "after_commit", _after_commit)
            event.listen(Session, "after_rollback", _after_rollback)


def _after_commit(session: Session) -> None:
    channels: set[str] | None = session.info.pop(ENQUEUED_CHANNELS, None)
    if not channels:
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with _LOCK:
        started = list(_STARTED)
    for lanes in started:
        lanes.committed(engine, channels)


def _after_rollback(session: Session) -> None:
    session.info.pop(ENQUEUED_CHANNELS, None)  # nothing was written: nothing to wake
