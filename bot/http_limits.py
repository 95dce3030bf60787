"""Connection limits for ``incident-bot serve``: idle, slow and excess connections cannot starve it.

uvicorn on its own holds every connection for as long as the client likes: a thousand idle TCP
connections used up the process's open files, after which every ``accept()`` failed and asyncio
logged a traceback per failure (700,000 of them in 45 s) while ``/healthz``, ingest and Slack
timed out. :class:`GuardedH11Protocol` bounds what a connection may hold:

* at most ``max_connections`` at once (kept below the open-file limit, which ``serve`` raises to
  its hard limit first). A new connection over the limit pushes out the oldest connection that
  has not yet sent a complete request head, so a flood of idle sockets gives way to clients
  that actually send requests; when every connection is busy with a request the newcomer is
  answered ``503`` with ``Retry-After`` at once;
* a request head must arrive within ``header_timeout`` of the connection opening (or of the
  previous response on a kept-alive connection), however it trickles in (slowloris), and its
  body within ``body_timeout`` of the head; an idle kept-alive connection closes after
  ``keep_alive`` seconds (uvicorn's own timer);
* none of this logs per socket: one WARNING a minute at most sums up what was closed or refused,
  and asyncio's "out of system resource" accept error becomes one line a minute without a
  traceback (:class:`AcceptErrorFilter`).

:func:`refuse_ambiguous_framing` answers 400 to a request carrying both ``Content-Length`` and
``Transfer-Encoding`` (h11 would silently pick one; a proxy in front may pick the other, the
classic request-smuggling split), before the application sees it.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

RESERVED_FILES = 128
"""Open files kept free of client connections: the database pool, log files, the Slack and
PagerDuty clients, the scheduler's threads."""
MAX_OPEN_FILES = 65536
"""How far ``serve`` raises its soft open-file limit (never past the hard limit)."""
LINGER = 1.0
"""Seconds a refused connection is kept half-closed so its 503 reaches the client."""
REPORT_EVERY = 60.0
"""Seconds between two summaries of closed and refused connections."""


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1000
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: int = 5

    def within(self, open_files: int) -> ConnectionLimits:
        """These limits with ``max_connections`` lowered to fit ``open_files`` (the soft limit)."""
        fitting = max(1, min(self.max_connections, open_files - RESERVED_FILES))
        return ConnectionLimits(fitting, self.header_timeout, self.body_timeout, self.keep_alive)


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard limit (many systems start processes at 1024);
    the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):  # a container may refuse; the connection limit then fits the old one
            pass
    return soft


@dataclass
class _Books:
    """State shared by one server's connections: who waits for a request head (oldest first)
    and what was closed or refused since the last summary."""

    waiting: dict[GuardedH11Protocol, None] = field(default_factory=dict)
    closed_idle: int = 0
    refused_full: int = 0
    reported_at: float = float("-inf")

    def report(self, limits: ConnectionLimits) -> None:
        now = time.monotonic()
        if now - self.reported_at < REPORT_EVERY:
            return
        log.warning(
            "HTTP connections: closed %d that sent no complete request in time or gave way to newer ones, "
            "refused %d with 503 while all %d were busy (limits: header %gs, body %gs)",
            self.closed_idle,
            self.refused_full,
            limits.max_connections,
            limits.header_timeout,
            limits.body_timeout,
        )
        self.closed_idle = self.refused_full = 0
        self.reported_at = now


_BUSY = b'{"error": "the server is busy: every connection is in use; retry in a second"}'
_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY)
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the limits above; made per server by :func:`guarded_protocol`."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    books: ClassVar[_Books] = _Books()
    _deadline: asyncio.TimerHandle | None = None
    _reading_body = False
    _refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            oldest = next(iter(self.books.waiting), None)
            if oldest is None:
                self._refuse_full()
                return
            oldest._close()
        self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        self.books.waiting.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:
            self._await_request()
        else:  # a pipelined request was already read
            self._follow()

    def _await_request(self) -> None:
        self.books.waiting[self] = None
        self._reading_body = False
        self._start_clock(self.limits.header_timeout)

    def _follow(self) -> None:
        """Move the clock on as the request arrives: head received → body clock; body received → none."""
        state = self.conn.their_state
        if state is h11.IDLE:
            return
        self.books.waiting.pop(self, None)
        if state is h11.SEND_BODY:
            if not self._reading_body:
                self._reading_body = True
                self._start_clock(self.limits.body_timeout)
        else:
            self._stop_clock()

    def _start_clock(self, seconds: float) -> None:
        self._stop_clock()
        self._deadline = self.loop.call_later(seconds, self._close)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _close(self) -> None:
        """Close a connection that is too slow or gives way to a newer one: no answer, no traceback.
        The application, if it was reading the body, sees a disconnect."""
        self._stop_clock()
        self.books.waiting.pop(self, None)
        self.connections.discard(self)
        self.books.closed_idle += 1
        self.books.report(self.limits)
        self.transport.abort()

    def _refuse_full(self) -> None:
        """Answer 503 and close gently: the request the client is sending is read and dropped for
        a moment (closing with it unread would reset the connection and lose the 503 on the way)."""
        self.connections.discard(self)
        self._refused = True
        self.books.refused_full += 1
        self.books.report(self.limits)
        self.transport.write(_FULL)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.abort)


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A protocol class for ``uvicorn.run(http=...)`` with these limits and books of its own."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits, "books": _Books()})


def refuse_ambiguous_framing(app: ASGIApp) -> ASGIApp:
    """``app`` behind a check that refuses a request with both ``Content-Length`` and
    ``Transfer-Encoding`` (400, connection closed), as RFC 9112 §6.3 allows and smuggling calls for."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            names = {name for name, _ in scope["headers"]}
            if b"content-length" in names and b"transfer-encoding" in names:
                body = b'{"error": "send either Content-Length or Transfer-Encoding, not both"}'
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ]
                await send({"type": "http.response.start", "status": 400, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


class AcceptErrorFilter(logging.Filter):
    """asyncio logs each failed ``accept()`` (no open files left) with a traceback, many times a
    second: let one line a minute through, without the traceback."""

    def __init__(self) -> None:
        super().__init__()
        self._last = float("-inf")
        self._hidden = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "socket.accept() out of system resource" not in str(record.msg):
            return True
        now = time.monotonic()
        if now - self._last < REPORT_EVERY:
            self._hidden += 1
            return False
        record.msg = (
            f"accept() failed: no open files left ({self._hidden} more since the last line); "
            "connections wait in the listen backlog"
        )
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        self._last, self._hidden = now, 0
        return True
