"""The Slack workspace behind the sandbox: channels, messages, threads, views, files, and the
Web API methods that change them.

Split from the HTTP side (:mod:`bot.demo.slack_sandbox`) so each stays readable: this class
knows what Slack *does* with a call (store a message, refuse a channel name where an ID is
needed, check Block Kit limits); the server knows how calls arrive, are recorded and are made
to fail. Every method runs with ``self._cond`` held by the caller, so tests and the sandbox page
may read the state while the bot writes it from other threads.

Standard library only, so the sandbox adds no dependencies to the product.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypedDict

from bot.demo.block_kit_limits import check_message, check_view

JsonDict = dict[str, Any]
_ID_RE = re.compile(r"^[CDGU][A-Z0-9]{6,}$")


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


class WorkspaceOptions(TypedDict, total=False):
    """The keyword arguments of :class:`SlackWebApi` beyond the token, for the classes built on it."""

    members: dict[str, list[str]] | None
    usergroups: dict[str, list[str]] | None
    clock: Callable[[], float]


class SlackWebApi:
    """Slack's workspace state and Web API methods, without the HTTP server (see module docstring)."""

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
        self.url = ""
        self._clock = clock
        self._cond = threading.Condition()  # RLock inside: handlers may call helpers
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
            "conversations.list": self._conv_list,
            "usergroups.users.list": self._usergroup_users,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    # ------------------------------------------------------------ configuration
    def reset(self) -> None:
        """Forget messages, views and files (not configuration or channel IDs)."""
        with self._cond:
            self._roots: dict[str, list[JsonDict]] = defaultdict(list)
            self._by_key: dict[tuple[str, str], JsonDict] = {}
            self._thread_replies: dict[tuple[str, str], list[JsonDict]] = defaultdict(list)
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

    def _conv_list(self, params: JsonDict) -> JsonDict:
        """Every channel known by name (posted to, or named to ``channel_id``), paged like Slack."""
        channels = [
            {"id": cid, "name": name, "is_channel": True, "is_private": False, "is_archived": False, "is_member": True}
            for name, cid in sorted(self._channels.items())
        ]
        start = int(str(params.get("cursor") or "offset:0").split(":")[-1])
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        more = len(channels) > start + limit
        return {
            "channels": channels[start : start + limit],
            "response_metadata": {"next_cursor": f"offset:{start + limit}" if more else ""},
        }

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
