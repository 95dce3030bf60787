"""A local Slack Web API emulator for tests.

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
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .block_kit_limits import check_message, check_view

JsonDict = dict[str, Any]
# Form fields that Slack expects as JSON strings, and the error for bad JSON.
_JSON_FIELDS = {
    "blocks": "invalid_blocks_format",
    "attachments": "invalid_attachments",
    "metadata": "invalid_metadata_format",
    "view": "invalid_arguments",
    "files": "invalid_arguments",
}
_ID_RE = re.compile(r"^[CDGU][A-Z0-9]{6,}$")
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


class _ApiError(Exception):
    """Raised by method handlers to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, errors: list[str] | None = None) -> None:
        super().__init__(error)
        self.body: JsonDict = {"ok": False, "error": error}
        if errors:
            self.body["errors"] = errors
            self.body["response_metadata"] = {"messages": [f"[ERROR] {e}" for e in errors]}


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _ts(value: Any, default: Decimal) -> Decimal:
    if value in (None, ""):
        return default
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise _ApiError("invalid_arguments") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a delayed handler must never block stop()

    def __init__(self, emulator: SlackEmulator) -> None:
        self.emulator = emulator
        super().__init__(("127.0.0.1", 0), _Handler)


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
        try:
            self.send_response(status)
            ctype = "text/plain" if isinstance(payload, bytes) else "application/json; charset=utf-8"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests); nothing to answer


class SlackEmulator:
    """Slack Web API on 127.0.0.1 with recorded calls and fault injection.

    Use as ``with SlackEmulator() as slack: WebClient(token="xoxb-test",
    base_url=slack.base_url)``.  All state is guarded by one lock, so tests
    may inspect it while the bot calls the server from other threads.
    """

    bot_user_id = "U0BOT"
    bot_id = "B0BOT"
    team_id = "T0EMULATOR"

    def __init__(
        self,
        token: str = "xoxb-test",
        *,
        members: dict[str, list[str]] | None = None,
        usergroups: dict[str, list[str]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.base_url = ""
        self.url = ""
        self._clock = clock
        self._cond = threading.Condition()  # RLock inside: handlers may call helpers
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._channels: dict[str, str] = {}  # name -> fake ID, kept across reset()
        self._members: dict[str, list[str]] = {}
        self._usergroups = {k: list(v) for k, v in (usergroups or {}).items()}
        for channel, users in (members or {}).items():
            self.set_members(channel, users)
        self.reset()
        self._methods: dict[str, Callable[[JsonDict], JsonDict]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.publish": self._views_publish,
            "views.update": self._views_update,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "conversations.members": self._conv_members,
            "usergroups.users.list": self._usergroup_users,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    # ----------------------------------------------------------- lifecycle
    def start(self) -> SlackEmulator:
        """Bind an ephemeral port on 127.0.0.1 and serve from a daemon thread."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server(self)
            self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
            self.base_url = self.url + "/api/"  # slack_sdk appends the method name
            # A short poll interval keeps stop() (and so each test's teardown) at ~20 ms, not 0.5 s.
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.02,), name="slack-emulator", daemon=True
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

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ configuration
    def reset(self) -> None:
        """Forget calls, messages, views, files and pending faults (not config or channel IDs)."""
        with self._cond:
            self._calls: list[Call] = []
            self._roots: dict[str, list[JsonDict]] = defaultdict(list)
            self._by_key: dict[tuple[str, str], JsonDict] = {}
            self._thread_replies: dict[tuple[str, str], list[JsonDict]] = defaultdict(list)
            self._faults: dict[str, deque[tuple[int, dict[str, str], JsonDict]]] = defaultdict(deque)
            self._delays: dict[str, deque[float]] = defaultdict(deque)
            self._views: dict[str, JsonDict] = {}
            self._home_views: dict[str, JsonDict] = {}
            self._files: dict[str, JsonDict] = {}
            self._response_urls: dict[str, tuple[str | None, str | None]] = {}
            self._last_micro = 0
            self._seq = itertools.count(1)

    def channel_id(self, name: str) -> str:
        """Stable fake ID for a channel name (``"#ml-alerts"`` -> ``"C0MLALERTS"``); IDs pass through."""
        with self._cond:
            if not name.startswith("#") and _ID_RE.match(name):
                return "D" + name[1:] if name[0] == "U" else name  # posting to a user -> DM
            name = name.lstrip("#")
            if name not in self._channels:
                base = "C0" + (re.sub(r"[^A-Z0-9]", "", name.upper())[:9] or "CHANNEL")
                cid, n = base, 1
                while cid in self._channels.values():  # "ml-alerts" vs "ml_alerts"
                    n += 1
                    cid = f"{base}{n}"
                self._channels[name] = cid
            return self._channels[name]

    def set_members(self, channel: str, user_ids: list[str]) -> None:
        """Configure what ``conversations.members`` returns for ``channel`` (name or ID)."""
        with self._cond:
            self._members[self.channel_id(channel)] = list(user_ids)

    def set_usergroup(self, usergroup_id: str, user_ids: list[str]) -> None:
        """Configure what ``usergroups.users.list`` returns; unknown groups get ``no_such_subteam``."""
        with self._cond:
            self._usergroups[usergroup_id] = list(user_ids)

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

    # ----------------------------------------------------------- message state
    def _next_ts(self) -> str:
        micro = max(int(self._clock() * 1_000_000), self._last_micro + 1)
        self._last_micro = micro
        return f"{micro // 1_000_000}.{micro % 1_000_000:06d}"

    def _resolve(self, value: Any, *, allow_name: bool = False) -> str:
        if not isinstance(value, str) or not value:
            raise _ApiError("channel_not_found")
        if not allow_name and (value.startswith("#") or not _ID_RE.match(value)):
            raise _ApiError("channel_not_found")
        return self.channel_id(value)

    @staticmethod
    def _content(params: JsonDict, *, required: bool) -> JsonDict:
        """Validate text/blocks/attachments/metadata and return the fields present."""
        fields = {k: params[k] for k in ("text", "blocks", "attachments", "metadata") if params.get(k) is not None}
        problem = check_message(fields, required=required)
        if problem:
            raise _ApiError(*problem)
        return fields

    def _store(self, channel: str, fields: JsonDict, thread_ts: str | None) -> JsonDict:
        ts = self._next_ts()
        msg: JsonDict = {
            "type": "message",
            "ts": ts,
            "text": "",
            "blocks": [],
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "team": self.team_id,
            **copy.deepcopy(fields),
        }
        if thread_ts:
            parent = self._by_key.get((channel, thread_ts))
            if parent is None:
                raise _ApiError("thread_not_found")
            thread_ts = parent.get("thread_ts", thread_ts)  # a reply's ts means its parent's thread
            parent = self._by_key[(channel, thread_ts)]
            msg["thread_ts"] = parent["thread_ts"] = thread_ts
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            parent["latest_reply"] = ts
            self._thread_replies[(channel, thread_ts)].append(msg)
        else:
            self._roots[channel].append(msg)
        self._by_key[(channel, ts)] = msg
        return msg

    @staticmethod
    def _public(msg: JsonDict, with_metadata: bool) -> JsonDict:
        out = copy.deepcopy(msg)
        if not with_metadata:
            out.pop("metadata", None)
        return out

    # --------------------------------------------------------------- methods
    def _auth_test(self, params: JsonDict) -> JsonDict:
        return {
            "url": "https://emulator.slack.com/",
            "team": "Emulated Team",
            "user": "incident-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
        }

    def _post_message(self, params: JsonDict) -> JsonDict:
        channel = self._resolve(params.get("channel"), allow_name=True)
        thread_ts = str(params.get("thread_ts") or "") or None  # JSON bodies may send a number
        msg = self._store(channel, self._content(params, required=True), thread_ts)
        return {"channel": channel, "ts": msg["ts"], "message": copy.deepcopy(msg)}

    def _update(self, params: JsonDict) -> JsonDict:
        channel = self._resolve(params.get("channel"))
        msg = self._by_key.get((channel, str(params.get("ts"))))
        if msg is None:
            raise _ApiError("message_not_found")
        fields = self._content(params, required=False)
        if not fields:
            raise _ApiError("no_text")
        msg.update(copy.deepcopy(fields))
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {"channel": channel, "ts": msg["ts"], "text": msg["text"], "message": copy.deepcopy(msg)}

    def _post_ephemeral(self, params: JsonDict) -> JsonDict:
        self._resolve(params.get("channel"), allow_name=True)
        if not params.get("user"):
            raise _ApiError("user_not_in_channel")
        self._content(params, required=True)
        return {"message_ts": self._next_ts()}

    def _checked_view(self, params: JsonDict, view_id: str | None = None) -> JsonDict:
        view = params.get("view")
        problem = check_view(view)
        if problem:
            raise _ApiError(*problem)
        assert isinstance(view, dict)
        vid = view_id or f"V{next(self._seq):08d}"
        stored = {
            **copy.deepcopy(view),
            "id": vid,
            "team_id": self.team_id,
            "bot_id": self.bot_id,
            "hash": f"{self._next_ts()}.{vid}",
        }
        self._views[vid] = stored
        return stored

    def _views_open(self, params: JsonDict) -> JsonDict:
        if not params.get("trigger_id"):
            raise _ApiError("invalid_trigger_id")
        return {"view": copy.deepcopy(self._checked_view(params))}

    def _views_publish(self, params: JsonDict) -> JsonDict:
        user = params.get("user_id")
        if not user:
            raise _ApiError("invalid_arguments")
        if isinstance(params.get("view"), dict) and params["view"].get("type") != "home":
            raise _ApiError("invalid_arguments", ["views.publish needs a home view [json-pointer:/view/type]"])
        old = self._home_views.get(user)
        self._home_views[user] = self._checked_view(params, old["id"] if old else None)
        return {"view": copy.deepcopy(self._home_views[user])}

    def _views_update(self, params: JsonDict) -> JsonDict:
        vid = params.get("view_id")
        if vid is None and params.get("external_id"):
            vid = next((k for k, v in self._views.items() if v.get("external_id") == params["external_id"]), None)
        if vid not in self._views:
            raise _ApiError("not_found")
        return {"view": copy.deepcopy(self._checked_view(params, vid))}

    def _history(self, params: JsonDict) -> JsonDict:
        channel = self._resolve(params.get("channel"))
        oldest, latest = _ts(params.get("oldest"), Decimal(0)), _ts(params.get("latest"), Decimal("Infinity"))
        inclusive = _truthy(params.get("inclusive"))
        found = [
            m
            for m in reversed(self._roots.get(channel, []))
            if (oldest <= Decimal(m["ts"]) <= latest if inclusive else oldest < Decimal(m["ts"]) < latest)
        ]
        start = int(str(params.get("cursor") or "offset:0").split(":")[-1])
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        page, more = found[start : start + limit], len(found) > start + limit
        with_meta = _truthy(params.get("include_all_metadata"))
        return {
            "messages": [self._public(m, with_meta) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": f"offset:{start + limit}" if more else ""},
        }

    def _replies(self, params: JsonDict) -> JsonDict:
        channel = self._resolve(params.get("channel"))
        msg = self._by_key.get((channel, str(params.get("ts"))))
        if msg is None:
            raise _ApiError("thread_not_found")
        root_ts: str = msg.get("thread_ts") or msg["ts"]
        chain = [self._by_key[(channel, root_ts)], *self._thread_replies.get((channel, root_ts), [])]
        with_meta = _truthy(params.get("include_all_metadata"))
        return {"messages": [self._public(m, with_meta) for m in chain], "has_more": False}

    def _conv_members(self, params: JsonDict) -> JsonDict:
        channel = self._resolve(params.get("channel"))
        return {"members": list(self._members.get(channel, [])), "response_metadata": {"next_cursor": ""}}

    def _usergroup_users(self, params: JsonDict) -> JsonDict:
        users = self._usergroups.get(str(params.get("usergroup")))
        if users is None:
            raise _ApiError("no_such_subteam")
        return {"users": list(users)}

    def _get_upload_url(self, params: JsonDict) -> JsonDict:
        if not params.get("filename") or not str(params.get("length", "")).isdigit():
            raise _ApiError("invalid_arguments")
        fid = f"F{next(self._seq):08d}"
        self._files[fid] = {"id": fid, "name": params["filename"], "title": params["filename"], "content": None}
        return {"upload_url": f"{self.url}/upload/{fid}", "file_id": fid}

    def _complete_upload(self, params: JsonDict) -> JsonDict:
        entries = params.get("files")
        if not isinstance(entries, list) or not entries:
            raise _ApiError("invalid_arguments")
        shared = []
        for entry in entries:
            file = self._files.get(entry.get("id", "") if isinstance(entry, dict) else "")
            if file is None or file["content"] is None:
                raise _ApiError("file_not_found")
            file["title"] = entry.get("title") or file["title"]
            shared.append({k: file[k] for k in ("id", "name", "title")})
        if params.get("channel_id"):  # sharing posts a message, so history shows it
            channel = self._resolve(params["channel_id"])
            fields = {"text": params.get("initial_comment") or "", "files": shared}
            self._store(channel, fields, params.get("thread_ts") or None)
        return {"files": shared}

    def _response_post(self, key: str, params: JsonDict) -> tuple[int, JsonDict]:
        if key not in self._response_urls:
            return 404, {"ok": False, "error": "expired_url"}
        fields = self._content(params, required=not _truthy(params.get("delete_original")))
        channel, ts = self._response_urls[key]
        target = self._by_key.get((channel, ts)) if channel and ts else None
        if channel and ts and target is not None:  # tied to a message: may edit or delete it
            if _truthy(params.get("replace_original")):
                target.update(copy.deepcopy(fields))
            elif _truthy(params.get("delete_original")):
                self._roots[channel] = [m for m in self._roots[channel] if m is not target]
                del self._by_key[(channel, ts)]
        return 200, {"ok": True}
