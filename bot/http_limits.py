"""Connection limits for ``incident-bot serve``: idle, slow and excess connections cannot starve it.

uvicorn on its own holds every connection for as long as the client likes: a thousand idle TCP
connections used up the process's open files, after which every ``accept()`` failed and asyncio
logged a traceback per failure (700,000 of them in 45 s) while ``/healthz``, ingest and Slack
timed out. :class:`GuardedHttpProtocol` bounds what a connection may hold:

* at most ``max_connections`` at once (kept below the open-file limit, which ``serve`` raises to
  its hard limit first). A new connection over the limit pushes out the oldest connection that
  has not yet sent a complete request head, so a flood of idle sockets gives way to clients
  that actually send requests; when every connection is busy with a request the newcomer is
  answered ``503`` with ``Retry-After`` at once;
* a request head must arrive within ``header_timeout`` of the connection opening (or of the
  previous response on a kept-alive connection), however it trickles in (slowloris), and its
  body within ``body_timeout`` of the head; an idle kept-alive connection closes after
  ``keep_alive`` seconds (uvicorn's own timer); a head over 16 KiB is refused with ``431``;
* none of this logs per socket: one WARNING a minute at most sums up what was closed or refused,
  and asyncio's "out of system resource" accept error becomes one line a minute without a
  traceback (:class:`AcceptErrorFilter`).

A request the parser refuses gets 400 naming its reason before the application sees it: among
them one carrying both ``Content-Length`` and ``Transfer-Encoding`` (a parser that silently
picks one, while a proxy in front picks the other, is the classic request-smuggling split).
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from dataclasses import dataclass, field
from typing import ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


RESERVED_FILES = 128
"""Open files kept free of client connections: the database pool, log files, the Slack and
PagerDuty clients, the scheduler's threads."""
MAX_OPEN_FILES = 65536
"""How far ``serve`` raises its soft open-file limit (never past the hard limit)."""
LINGER = 1.0
"""Seconds a refused connection is kept half-closed so its 503 reaches the client."""
REPORT_EVERY = 60.0
"""Seconds between two summaries of closed and refused connections."""
MAX_HEAD_BYTES = 16 * 1024
"""A request line and headers larger than this are refused (431): uvicorn's h11 limit, which
the bot kept when it moved to httptools (whose parser has none)."""


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

    waiting: dict[GuardedHttpProtocol, None] = field(default_factory=dict)
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


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; made per server by :func:`guarded_protocol`.

    httptools (llhttp, in C) rather than h11 (pure Python): a one-sample push spent 0.85-0.91 ms
    of server CPU on h11 and 0.65-0.71 ms on httptools (bench/RESULTS.md), and every Slack ack
    pays the same parse. The clocks follow the parser's callbacks: the head clock runs until the
    head is complete, the body clock until the message is, and none while the request is served."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    books: ClassVar[_Books] = _Books()
    _deadline: asyncio.TimerHandle | None = None
    _mid_message = False
    _head_bytes = 0
    _head_too_large = False
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
        """uvicorn's, answering a malformed request with the parser's reason rather than a bare 400."""
        if self._refused:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            self._refuse_malformed(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._mid_message = True
        self._head_bytes = 0
        if self._deadline is None:  # pipelined behind a request being served: its head's clock starts now
            self._start_clock(self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.books.waiting.pop(self, None)
        self._start_clock(self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._mid_message = False
        self._stop_clock()
        super().on_message_complete()
        if self.cycle.response_complete and not self.transport.is_closing():
            self._await_request()  # answered before its body was in (a refusal): idle from now on

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if not self._mid_message and self.cycle.response_complete:  # nothing pipelined behind it
            self._await_request()

    def _count_head(self, size: int) -> None:
        """Stop a head over :data:`MAX_HEAD_BYTES` as it arrives, before it is held in memory: the
        parser turns the exception into an error :meth:`_refuse_malformed` answers with 431."""
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise ValueError("request head too large")

    def _refuse_malformed(self, exc: httptools.HttpParserError) -> None:
        """Answer a request the parser refused (431 for an oversized head, else 400 with its reason)
        and close: what follows on the connection can no longer be framed."""
        self._stop_clock()
        self.books.waiting.pop(self, None)
        if self._head_too_large:
            status, reason = b"431 Request Header Fields Too Large", "the request line and headers exceed 16 KiB"
        else:
            status, reason = b"400 Bad Request", f"malformed HTTP request: {exc}"
        body = json.dumps({"error": reason}).encode()
        head = b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n"
        log.info("refused a malformed HTTP request from %s: %s", self.client, reason)
        self.transport.write(head % (status, len(body)) + body)
        self.transport.close()

    def _await_request(self) -> None:
        self.books.waiting[self] = None
        self._start_clock(self.limits.header_timeout)

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


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpProtocol]:
    """A protocol class for ``uvicorn.run(http=...)`` with these limits and books of its own."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"limits": limits, "books": _Books()})


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
