"""A local Slack Web API emulator: the tests' Slack, and the Web API of the demo's sandbox.

Why an emulator instead of mocks: the bot talks to Slack through ``slack_sdk``
over HTTP, and the bugs that hurt during an incident live at that boundary --
rate limits (HTTP 429 + ``Retry-After``), 5xx errors, timeouts, Block Kit
payloads Slack rejects, channel names vs. IDs, messages found again through
their metadata.  Serving real HTTP on 127.0.0.1 lets tests drive the real
client code through those paths without a network or a Slack workspace.

Fidelity choices (all deliberate, to surface real bugs):

* HTTP 200 with ``{"ok": false, "error": ...}`` for API errors, as Slack does.
* ``chat.postMessage`` / ``chat.postEphemeral`` accept ``#name``; every other
  method needs a channel ID (``channel_not_found`` otherwise), as in Slack.
  ``channel_id(name)`` gives the stable fake ID for a name.
* ``conversations.history`` / ``conversations.replies`` return ``metadata``
  only with ``include_all_metadata=true``; messages without metadata have no
  ``metadata`` key, and root messages have no ``thread_ts`` until replied to.
* Message ``ts`` values come from ``clock`` (wall clock by default, forced to
  be strictly increasing) so ``oldest=time.time() - 3600`` filters work.

Standard library only, so the emulator adds no dependencies.

The workspace state and the methods themselves live in :mod:`bot.demo.slack_methods`; this
module is the HTTP server, the call recording and the fault injection. The demo's web page
(:mod:`bot.demo.sandbox_ui`) adds routes to the same server.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Unpack
from urllib.parse import parse_qsl, urlsplit

from bot.demo.loopback import LoopbackServer, write_answer
from bot.demo.slack_methods import JsonDict, WorkspaceOptions, _ApiError
from bot.demo.slack_room_methods import RoomWorkspace

__all__ = ["GRANTED_SCOPES", "Call", "JsonDict", "SlackEmulator"]

# Form fields that Slack expects as JSON strings, and the error for bad JSON.
_JSON_FIELDS = {
    "blocks": "invalid_blocks_format",
    "attachments": "invalid_attachments",
    "metadata": "invalid_metadata_format",
    "view": "invalid_arguments",
    "files": "invalid_arguments",
}
GRANTED_SCOPES = (
    "chat:write",
    "chat:write.public",
    "commands",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "usergroups:read",
    "files:write",
    "channels:manage",
    "groups:write",
    "pins:write",
    "reactions:read",
)
"""The bot token's scopes by default (``auth.test`` says them in ``x-oauth-scopes``): the manifest's."""
_5XX_ERRORS = {500: "fatal_error", 502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout"}


@dataclass(frozen=True)
class Call:
    """One request the emulator received, including injected failures.

    ``params`` merges query string and body; form values stay strings except
    the JSON fields (blocks, attachments, metadata, view, files), which are
    decoded.  ``headers`` keys are lower-case.  ``at`` is ``clock()`` time.
    """

    method: str
    params: JsonDict
    headers: dict[str, str]
    at: float
    status: int = 200
    response: Any = None
    path: str = ""

    @property
    def ok(self) -> bool:
        """True when the emulator answered ``{"ok": true, ...}``."""
        return isinstance(self.response, dict) and self.response.get("ok") is True


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a delayed handler must never block stop()

    def __init__(self, emulator: SlackEmulator, port: int = 0) -> None:
        self.emulator = emulator
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging: it would flood pytest's captured output."""

    def do_GET(self) -> None:
        self._dispatch(b"")

    def do_POST(self) -> None:
        self._dispatch(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _dispatch(self, body: bytes) -> None:
        emulator = self.server.emulator
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, payload, delay = emulator._handle(self.path, headers, body)
        if delay:
            emulator._stopping.wait(delay)  # wakes early on stop()
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        extra = dict(extra)  # fault headers are shared between injected faults: never mutate them
        ctype = "text/plain" if isinstance(payload, bytes) else "application/json; charset=utf-8"
        ctype = extra.pop("Content-Type", ctype)  # the sandbox page serves HTML
        write_answer(self, status, ctype, extra, data)


class SlackEmulator(RoomWorkspace, LoopbackServer):
    """Slack Web API on 127.0.0.1 with recorded calls and fault injection.

    Use as ``with SlackEmulator() as slack: WebClient(token="xoxb-test",
    base_url=slack.base_url)``.  All state is guarded by one lock, so tests
    may inspect it while the bot calls the server from other threads.
    """

    def __init__(self, token: str = "xoxb-test", *, port: int = 0, **workspace: Unpack[WorkspaceOptions]) -> None:
        self.base_url = ""
        self.port = port  # 0: any free port (tests); the demo asks for a fixed one
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.scopes: list[str] = list(GRANTED_SCOPES)
        """What ``auth.test`` answers in ``x-oauth-scopes``; a test removes one to see it reported."""
        super().__init__(token, **workspace)

    # ----------------------------------------------------------- lifecycle
    thread_name = "slack-emulator"

    def _bind(self) -> _Server:
        return _Server(self, self.port)

    def _bound(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = self.url + "/api/"  # slack_sdk appends the method name

    # ------------------------------------------------------------ configuration
    def reset(self) -> None:
        """Forget calls, messages, views, files and pending faults (not config or channel IDs)."""
        with self._cond:
            super().reset()
            self._calls: list[Call] = []
            self._faults: dict[str, deque[tuple[int, dict[str, str], JsonDict]]] = defaultdict(deque)
            self._delays: dict[str, deque[float]] = defaultdict(deque)

    def response_url(self, token: str | None = None, *, channel: str | None = None, ts: str | None = None) -> str:
        """Register a ``response_url``; with channel+ts, ``replace_original`` edits that message."""
        key = token or uuid.uuid4().hex
        with self._cond:
            self._response_urls[key] = (self.channel_id(channel) if channel else None, ts)
        return f"{self.url}/response/{key}"

    # --------------------------------------------------------- fault injection
    def fail_next(self, method: str, times: int = 1, status: int = 429, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls to ``method`` with HTTP ``status`` (429 adds ``Retry-After``)."""
        if status < 400:
            raise ValueError("fail_next needs an HTTP error status; use error_next for ok=false")
        if status == 429:
            fault = (429, {"Retry-After": str(retry_after)}, {"ok": False, "error": "ratelimited"})
        else:
            fault = (status, {}, {"ok": False, "error": _5XX_ERRORS.get(status, f"http_{status}")})
        with self._cond:
            self._faults[method].extend([fault] * times)

    def error_next(self, method: str, error: str, times: int = 1) -> None:
        """Answer the next ``times`` calls with HTTP 200 ``{"ok": false, "error": error}``."""
        with self._cond:
            self._faults[method].extend([(200, {}, {"ok": False, "error": error})] * times)

    def delay_next(self, method: str, seconds: float, times: int = 1) -> None:
        """Sleep ``seconds`` before answering the next ``times`` calls (the call is still processed)."""
        with self._cond:
            self._delays[method].extend([seconds] * times)

    # -------------------------------------------------------------- inspection
    @property
    def calls(self) -> list[Call]:
        """Snapshot of every recorded call, oldest first."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls to one method (``"response_url"`` / ``"upload_url"`` for those endpoints)."""
        return [c for c in self.calls if c.method == method]

    def messages(self, channel: str) -> list[JsonDict]:
        """Current root messages of ``channel`` (name or ID), oldest first, after updates."""
        with self._cond:
            return copy.deepcopy(self._roots.get(self.channel_id(channel), []))

    def thread(self, channel: str, ts: str) -> list[JsonDict]:
        """Parent message then replies, oldest first; empty if there is no such message."""
        with self._cond:
            cid = self.channel_id(channel)
            msg = self._by_key.get((cid, ts))
            if msg is None:
                return []
            root_ts = msg.get("thread_ts", ts)  # a reply's ts means its whole thread
            return copy.deepcopy([self._by_key[(cid, root_ts)], *self._thread_replies.get((cid, root_ts), [])])

    def home_view(self, user_id: str) -> JsonDict | None:
        """The App Home view last published for ``user_id`` (with its ``id``), or None."""
        with self._cond:
            return copy.deepcopy(self._home_views.get(user_id))

    def file_content(self, file_id: str) -> bytes | None:
        """Bytes POSTed to a file's upload URL, or None before the upload."""
        with self._cond:
            return self._files.get(file_id, {}).get("content")

    def wait_for(self, what: str | Callable[[Call], bool], timeout: float = 5.0, *, count: int = 1) -> Call:
        """Block until ``count`` calls match ``what`` (method name or predicate); return the count-th.

        Raises AssertionError listing the recorded methods, so a test failure
        says what the bot did instead.
        """
        predicate = (lambda c: c.method == what) if isinstance(what, str) else what
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matches = [c for c in self._calls if predicate(c)]
                if len(matches) >= count:
                    return matches[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no {count} call(s) matching {what!r} within {timeout}s "
                        f"(found {len(matches)}); recorded: {[c.method for c in self._calls]}"
                    )
                self._cond.wait(remaining)

    # -------------------------------------------------------------- dispatching
    def _handle(self, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any, float]:
        """Parse, apply faults, route and record one request; returns what to send."""
        parts = urlsplit(raw_path)
        path = parts.path
        params: JsonDict = dict(parse_qsl(parts.query, keep_blank_values=True))
        if path.startswith("/api/"):
            method = path.removeprefix("/api/")
        elif path.startswith("/response/"):
            method = "response_url"
        elif path.startswith("/upload/"):
            method = "upload_url"
        else:
            method = path
        parse_error = None
        if method == "upload_url":
            params["length"] = len(body)
        else:
            parse_error = self._parse_body(headers.get("content-type", ""), body, params)
        with self._cond:
            delays, faults = self._delays.get(method), self._faults.get(method)
            delay = delays.popleft() if delays else 0.0
            status, response = 200, None
            extra: dict[str, str] = {}
            if faults:
                status, extra, response = faults.popleft()
            elif parse_error:
                response = {"ok": False, "error": parse_error}
            else:
                try:
                    status, response = self._route(method, path, headers, params, body)
                except _ApiError as err:
                    response = err.body
                except (ValueError, TypeError):  # e.g. limit="abc": Slack answers, it doesn't crash
                    response = {"ok": False, "error": "invalid_arguments"}
            if method == "auth.test" and not faults:  # Slack says the token's scopes on every call
                extra = {"x-oauth-scopes": ",".join(self.scopes)}
            self._calls.append(Call(method, params, headers, self._clock(), status, response, path))
            self._cond.notify_all()
        return status, extra, response, delay

    @staticmethod
    def _parse_body(content_type: str, body: bytes, params: JsonDict) -> str | None:
        """Merge a JSON or form body into ``params``; returns an error code or None."""
        if content_type.startswith("application/json"):
            try:
                decoded = json.loads(body or b"{}")
            except ValueError:
                return "invalid_json"
            if not isinstance(decoded, dict):
                return "invalid_json"
            params.update(decoded)
        elif body and not content_type.startswith("multipart/"):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        error = None
        for name, code in _JSON_FIELDS.items():
            if isinstance(params.get(name), str):
                try:
                    params[name] = json.loads(params[name])
                except ValueError:
                    error = error or code  # keep the raw string in the recorded params
        return error

    def _route(self, method: str, path: str, headers: dict[str, str], params: JsonDict, body: bytes) -> tuple[int, Any]:
        if method == "response_url":
            return self._response_post(path.removeprefix("/response/"), params)
        if method == "upload_url":
            file = self._files.get(path.removeprefix("/upload/"))
            if file is None:
                return 404, {"ok": False, "error": "file_not_found"}
            file["content"] = body
            return 200, f"OK - {len(body)}".encode()
        handler = self._methods.get(method)
        if handler is None and path.startswith("/api/"):
            return 200, {"ok": False, "error": "unknown_method"}  # Slack answers 200 here too
        if handler is None:
            return 404, {"ok": False, "error": "not_found"}
        auth = headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else params.get("token")
        if not token:
            raise _ApiError("not_authed")
        if token != self.token:
            raise _ApiError("invalid_auth")
        return 200, {"ok": True, **handler(params)}
