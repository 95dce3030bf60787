"""A webhook receiver on 127.0.0.1 that checks each request as the README tells integrators to.

It verifies the signature with :func:`bot.notify.webhook_signature.verify` on the raw body
(401 when it fails, as a receiver should answer a forgery or a replay), de-duplicates on the
delivery id, and records what it accepted. Faults are injected with :meth:`fail_next` (answer
without accepting) and :meth:`hold` (keep requests waiting, as a slow receiver does). Tests wait
on :meth:`wait_for`, a condition with a timeout, never on a fixed sleep.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from bot.notify.webhook_signature import DELIVERY_HEADER, SIGNATURE_HEADER, InvalidSignature, verify


@dataclass(frozen=True)
class Request:
    """One request as received: ``status`` is what was answered, ``refused`` why a signature failed."""

    headers: dict[str, str]
    raw: bytes
    status: int
    refused: str = ""

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.raw)
        return parsed


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest captures stderr."""

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, extra = self.server.receiver._receive({k.lower(): v for k, v in self.headers.items()}, raw)
        try:
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender gave up waiting


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", 0), _Handler)


class WebhookReceiver:
    """``with WebhookReceiver(secret) as hook: ...``; ``hook.url`` is where to send."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.url = ""
        self.requests: list[Request] = []
        self._faults: list[tuple[int, dict[str, str]]] = []
        self._seen: set[str] = set()
        self._open = threading.Event()
        self._open.set()
        self._changed = threading.Condition()
        self._server: _Server | None = None

    def __enter__(self) -> WebhookReceiver:
        server = self._server = _Server(self)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/incidents"
        # a short poll: shutdown() waits up to one poll interval
        threading.Thread(target=server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._open.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def fail_next(self, status: int, *, retry_after: int | None = None) -> None:
        with self._changed:
            self._faults.append((status, {"Retry-After": str(retry_after)} if retry_after is not None else {}))

    def hold(self) -> None:
        """Keep every request waiting until :meth:`release` (a receiver that stopped answering)."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """Bodies accepted, in order, each delivery id once."""
        with self._changed:
            return [r.body for r in self.requests if r.status == 202]

    def events(self) -> list[str]:
        return [body["event"] for body in self.accepted]

    def wait_for(self, count: int, *, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``count`` deliveries were accepted; fail the test after ``timeout`` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: sum(r.status == 202 for r in self.requests) >= count, timeout):
                raise AssertionError(f"{count} webhook deliveries expected, got {self.requests}")
        return self.accepted

    def _receive(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str]]:
        self._open.wait(30)
        status, extra, refused = 202, {}, ""
        try:
            verify(self.secret, raw, headers.get(SIGNATURE_HEADER.lower()))
        except InvalidSignature as exc:
            status, refused = 401, str(exc)
        with self._changed:
            if status == 202 and self._faults:
                status, extra = self._faults.pop(0)
            delivery = headers.get(DELIVERY_HEADER.lower(), "")
            if status == 202 and delivery in self._seen:
                status = 200  # a duplicate: acknowledged, not accepted twice
            elif status == 202:
                self._seen.add(delivery)
            self.requests.append(Request(headers, raw, status, refused))
            self._changed.notify_all()
        return status, extra
