"""Every PostgreSQL call ends within a deadline, even when the network drops packets silently.

libpq waits for the server's answer for as long as the TCP connection looks alive. A partition
that drops packets without resets is caught by the kernel's keepalives and ``tcp_user_timeout``
(set in :func:`bot.storage.database.make_engine`) only when nothing on the path still answers
for the server; behind a proxy or load balancer that stopped forwarding, the kernel sees a
healthy peer and the wait is forever: ingest hung for 60 s, ``/metrics`` for 30 s and more, and
``/healthz`` said ok.

So :class:`CallDeadlines` wraps the engine's dialect calls (statements, commits, rollbacks, the
pool's pre-ping) and a watchdog thread cuts the socket (``shutdown``) of a call that waits past
its deadline. libpq then fails the call with "server closed the connection", SQLAlchemy
invalidates the connection, and the caller sees an ``OperationalError`` like any other outage:
ingest answers 503 with nothing stored, a click is kept for later (:mod:`bot.pending_actions`),
a job retries on its next tick. A cut mid-commit leaves the outcome unknown, as any lost
connection does; everything the bot commits is safe to retry.

Migrations may legitimately run long (an index on a large table): :meth:`CallDeadlines.unbounded`
lifts the deadline for the calls of one thread while it lasts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

STATEMENT_TIMEOUT = 10.0
"""Seconds a statement, commit or rollback may wait for the server before its connection is cut."""
PING_TIMEOUT = 2.0
"""Seconds the pool's pre-ping (``SELECT 1`` on a pooled connection) may wait: a healthy server
answers in milliseconds, so a dead pooled connection is replaced quickly."""


@dataclass
class _Waiting:
    fd: int
    deadline: float
    what: str


class CallDeadlines:
    """The watchdog of one engine's PostgreSQL calls; :meth:`install` once per engine."""

    def __init__(
        self,
        *,
        statement: float = STATEMENT_TIMEOUT,
        ping: float = PING_TIMEOUT,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.statement = statement
        self.ping = ping
        self._timer = timer
        self._waiting: dict[int, _Waiting] = {}
        self._exempt: set[int] = set()
        self._next_token = 0
        self._changed = threading.Condition()
        self._watchdog: threading.Thread | None = None
        self.cut = 0
        """Calls cut so far (for tests and the log)."""

    def install(self, engine: Engine) -> None:
        """Wrap this engine's dialect calls (the dialect object is the engine's own)."""
        dialect: Any = engine.dialect
        for name in ("do_execute", "do_executemany", "do_execute_no_params"):
            dialect.__dict__[name] = self._bounded(getattr(dialect, name), self.statement, _cursor_fd, name)
        for name in ("do_commit", "do_rollback"):
            dialect.__dict__[name] = self._bounded(getattr(dialect, name), self.statement, _connection_fd, name)
        dialect.__dict__["do_ping"] = self._bounded(dialect.do_ping, self.ping, _connection_fd, "ping")

    @contextlib.contextmanager
    def unbounded(self) -> Iterator[None]:
        """No deadline for this thread's calls inside the block (migrations)."""
        me = threading.get_ident()
        with self._changed:
            self._exempt.add(me)
        try:
            yield
        finally:
            with self._changed:
                self._exempt.discard(me)

    def _bounded(
        self, call: Callable[..., Any], timeout: float, fd_of: Callable[[Any], int | None], what: str
    ) -> Callable[..., Any]:
        def bounded(target: Any, *args: Any, **kwargs: Any) -> Any:
            token = self._start(fd_of(target), timeout, what)
            try:
                return call(target, *args, **kwargs)
            finally:
                if token is not None:
                    with self._changed:
                        self._waiting.pop(token, None)

        return bounded

    def _start(self, fd: int | None, timeout: float, what: str) -> int | None:
        if fd is None or fd < 0:
            return None
        with self._changed:
            if threading.get_ident() in self._exempt:
                return None
            self._next_token += 1
            token = self._next_token
            self._waiting[token] = _Waiting(fd, self._timer() + timeout, what)
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="db-call-deadlines", daemon=True)
                self._watchdog.start()
            self._changed.notify()
        return token

    def _watch(self) -> None:
        with self._changed:
            while True:
                now = self._timer()
                for token, waiting in list(self._waiting.items()):
                    if waiting.deadline <= now:
                        del self._waiting[token]
                        self._cut(waiting)
                earliest = min((w.deadline for w in self._waiting.values()), default=None)
                self._changed.wait(None if earliest is None else max(earliest - now, 0.01))

    def _cut(self, waiting: _Waiting) -> None:
        """Shut the connection's socket down; called with the lock held, so the call is still
        in progress and the descriptor still its socket (the wrapper unregisters before it returns)."""
        try:
            with socket.socket(fileno=os.dup(waiting.fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            log.debug("cutting a database connection failed: %s", exc)
            return
        self.cut += 1
        log.warning("database %s got no answer in time: its connection was cut", waiting.what)


def _cursor_fd(cursor: Any) -> int | None:
    return _connection_fd(getattr(cursor, "connection", None))


def _connection_fd(connection: Any) -> int | None:
    try:
        return int(connection.fileno())
    except Exception:  # closed or not a socket-backed connection: nothing to bound
        return None
