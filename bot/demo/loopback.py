"""Serving a test double on 127.0.0.1 from a daemon thread: the lifecycle every emulator shares.

The Slack and PagerDuty emulators (:mod:`bot.demo.slack_sandbox`, :mod:`bot.demo.pagerduty_events`)
differ in what they answer, not in how they start and stop, so that part lives here once.
Loopback only: nothing outside the machine can reach a double.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class LoopbackServer(ABC):
    """``start``/``stop`` and ``with``; a subclass binds its server and learns its port."""

    thread_name = "emulator"
    _stopping: threading.Event
    _server: ThreadingHTTPServer | None
    _thread: threading.Thread | None

    @abstractmethod
    def _bind(self) -> ThreadingHTTPServer:
        """A server bound on 127.0.0.1, not yet serving."""

    @abstractmethod
    def _bound(self, port: int) -> None:
        """Note the URLs of the port the server got."""

    def start(self) -> Self:
        """Bind an ephemeral port on 127.0.0.1 and serve from a daemon thread."""
        if self._server is None:
            self._stopping.clear()
            self._server = self._bind()
            self._bound(int(self._server.server_address[1]))
            # A short poll interval keeps stop() (and so each test's teardown) at ~20 ms, not 0.5 s.
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.02,), name=self.thread_name, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        if self._server is not None:
            self._stopping.set()
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def write_answer(
    handler: BaseHTTPRequestHandler, status: int, content_type: str, headers: dict[str, str], data: bytes
) -> None:
    """Send one whole answer; a client that gave up meanwhile (a timeout test) gets nothing."""
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (timeout tests); nothing to answer
