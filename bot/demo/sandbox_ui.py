"""The demo's Slack sandbox: the Web API emulator plus a web page that plays Slack's client.

A newcomer has no Slack workspace, so the sandbox stands in for both halves of Slack:

* the **Web API** the bot calls (:class:`~bot.demo.slack_sandbox.SlackEmulator`, the same code
  the tests use, so the demo exercises exactly the wire format the tests check), and
* the **client** a person uses: ``GET /`` serves a page (``static/index.html``) that renders
  each channel's messages from their blocks and polls ``GET /sandbox/state`` every second.
  Its buttons and its slash-command box do not call the bot directly: they post to
  ``/sandbox/click`` and ``/sandbox/command``, and the sandbox builds the request Slack would
  send (a ``block_actions`` payload or a slash-command form), signs it with the signing secret
  (``v0`` HMAC-SHA256) and POSTs it to the bot's ``/slack/events``. The bot cannot tell the
  sandbox from Slack, so the demo runs the real request verification and handlers.

What a person would see only for themselves is kept for the demo user alone: ephemeral
messages (``chat.postEphemeral``, a slash command's reply in its HTTP answer or through its
``response_url``), modals (``views.open`` with a trigger id from one of their clicks) and the
App Home tab: opening it on the page (``/sandbox/home``) sends the bot a signed
``app_home_opened`` event, as Slack does, and the page shows what the bot ``views.publish``-es.

Beside the channels the page shows the **PagerDuty lane**: every event the bot sent to the
demo's local Events API v2 receiver (:class:`~bot.demo.pagerduty_events.PagerDutyEmulator`,
where ``PAGERDUTY_EVENTS_URL`` points), with its action, dedup key, summary, severity and time.

The page's JSON routes only accept ``application/json`` bodies: a browser cannot send those
cross-site without a CORS preflight, which this server never answers, so another web page open
in the same browser cannot click buttons in the demo.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from importlib import resources
from typing import Any
from urllib.parse import urlencode, urlsplit

from bot.demo.click_payloads import action_payload, find_button
from bot.demo.pagerduty_events import Event, PagerDutyEmulator
from bot.demo.slack_methods import JsonDict, _ApiError, _truthy
from bot.demo.slack_sandbox import SlackEmulator

DEMO_USER = "U0DEMO"
DEMO_USER_NAME = "demo"
APP_ID = "A0INCIDENT"
MAX_EPHEMERAL = 50
"""Ephemeral messages kept for the page; older ones scroll away as in Slack."""
MAX_TIMELINE = 40
MAX_PAGES = 50
"""PagerDuty events kept for the page's lane, newest last."""

_JSON = "application/json; charset=utf-8"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack adds to every request: timestamp and ``v0=`` HMAC of ``v0:ts:body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


class SlackSandbox(SlackEmulator):
    """The emulator with the sandbox page's routes; see the module docstring.

    ``events_url`` is the bot's ``/slack/events``; it may be set after construction, because
    the sandbox has to be listening before the bot (which needs its URL) is built.
    ``pagerduty`` is the PagerDuty receiver whose events the page shows (None: no lane).
    """

    def __init__(
        self,
        token: str,
        *,
        signing_secret: str,
        events_url: str = "",
        port: int = 0,
        channels: Iterable[str] = ("#ml-alerts", "#llm-alerts"),
        user: str = DEMO_USER,
        timeout: float = 10.0,
        pagerduty: PagerDutyEmulator | None = None,
    ) -> None:
        super().__init__(token, port=port)
        self.signing_secret = signing_secret
        self.pagerduty = pagerduty
        self.events_url = events_url
        self.user = user
        self.timeout = timeout
        self._started_at = time.time()
        self._page = resources.files("bot.demo").joinpath("static/index.html").read_bytes()
        self.show_channels(channels)

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        """Also forget ephemeral messages, the open modal and the timeline."""
        with self._cond:
            super().reset()
            self._ephemeral: list[JsonDict] = []
            self._modal: JsonDict | None = None
            self._triggers: dict[str, str] = {}  # trigger_id -> the user whose click made it
            self._command_urls: dict[str, tuple[str, str]] = {}  # response_url key -> (channel, user)
            self._timeline: list[JsonDict] = []
            self._shown: list[str] = []

    def show_channels(self, channels: Iterable[str]) -> None:
        """The channels the page shows, in order, even before they have messages."""
        with self._cond:
            self._shown = [self.channel_id(c) for c in channels]

    def narrate(self, text: str, at: float | None = None) -> None:
        """Add a line to the page's timeline (the feed says what it does to the metrics, at demo second ``at``)."""
        with self._cond:
            when = time.time() - self._started_at if at is None else at
            self._timeline.append({"at": round(when, 1), "text": text})
            del self._timeline[:-MAX_TIMELINE]

    def state(self) -> JsonDict:
        """What the page draws: channels with messages and threads, the demo user's ephemeral
        messages, modal and App Home view, the PagerDuty lane (None without a receiver) and the
        timeline. Metadata stays out, as Slack's clients hide it."""
        pages = None if self.pagerduty is None else pagerduty_lane(self.pagerduty.events)[-MAX_PAGES:]
        with self._cond:
            names = {cid: name for name, cid in self._channels.items()}
            order = list(self._shown) + [c for c in self._roots if c not in self._shown]
            channels = []
            for cid in order:
                roots = []
                for msg in self._roots.get(cid, []):
                    shown = self._public(msg, False)
                    shown["replies"] = [self._public(r, False) for r in self._thread_replies.get((cid, msg["ts"]), [])]
                    roots.append(shown)
                mine = [copy.deepcopy(e) for e in self._ephemeral if e["channel"] == cid and e["user"] == self.user]
                name = names.get(cid) or ("Direct message" if cid.startswith("D") else cid)
                channels.append({"id": cid, "name": name, "messages": roots, "ephemeral": mine})
            return {
                "user": {"id": self.user, "name": DEMO_USER_NAME},
                "channels": channels,
                "modal": copy.deepcopy(self._modal),
                "home": copy.deepcopy(self._home_views.get(self.user)),
                "pagerduty": pages,
                "timeline": list(self._timeline),
            }

    # ------------------------------------------------------ what the bot calls
    def _post_ephemeral(self, params: JsonDict) -> JsonDict:
        answer = super()._post_ephemeral(params)
        channel = self._resolve(params.get("channel"), allow_name=True)
        self._add_ephemeral(channel, str(params["user"]), params, answer["message_ts"])
        return answer

    def _views_open(self, params: JsonDict) -> JsonDict:
        answer = super()._views_open(params)
        if self._triggers.get(str(params.get("trigger_id"))) == self.user:
            self._modal = copy.deepcopy(answer["view"])
        return answer

    def _response_post(self, key: str, params: JsonDict) -> tuple[int, JsonDict]:
        status, answer = super()._response_post(key, params)
        target = self._command_urls.get(key)
        replaces = _truthy(params.get("replace_original")) or _truthy(params.get("delete_original"))
        if status == 200 and target is not None and not replaces:
            channel, user = target
            if params.get("response_type") == "in_channel":
                self._store(channel, self._content(params, required=True), None)
            else:
                self._add_ephemeral(channel, user, params, self._next_ts())
        return status, answer

    def _add_ephemeral(self, channel: str, user: str, fields: JsonDict, ts: str) -> None:
        entry = {"channel": channel, "user": user, "ts": ts, "ephemeral": True}
        entry.update({k: copy.deepcopy(fields[k]) for k in ("text", "blocks") if fields.get(k) is not None})
        self._ephemeral.append(entry)
        del self._ephemeral[:-MAX_EPHEMERAL]

    # ------------------------------------------------------ what the page calls
    def _handle(self, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any, float]:
        path = urlsplit(raw_path).path
        if path in ("/", "/index.html"):
            return 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}, self._page, 0.0
        if not path.startswith("/sandbox/"):
            return super()._handle(raw_path, headers, body)
        if path == "/sandbox/state":
            return 200, {"Cache-Control": "no-store"}, self.state(), 0.0
        if not headers.get("content-type", "").startswith("application/json"):
            return 415, {}, {"ok": False, "error": "send application/json"}, 0.0
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return 400, {}, {"ok": False, "error": "invalid_json"}, 0.0
        if path == "/sandbox/click":
            status, answer = self.click(
                str(request.get("channel", "")),
                str(request.get("ts", "")),
                str(request.get("action_id", "")),
                value=str(request.get("value", "")),
                block_id=str(request.get("block_id", "")),
            )
        elif path == "/sandbox/command":
            status, answer = self.command(str(request.get("channel", "")), str(request.get("text", "")))
        elif path == "/sandbox/home":
            status, answer = self.open_home()
        elif path == "/sandbox/close":
            with self._cond:
                self._modal = None
            status, answer = 200, {"ok": True}
        else:
            status, answer = 404, {"ok": False, "error": "not_found"}
        return status, {}, answer, 0.0

    def click(
        self, channel: str, ts: str, action_id: str, *, value: str = "", block_id: str = ""
    ) -> tuple[int, JsonDict]:
        """Press a button of a message as the demo user: send the bot a signed ``block_actions``."""
        with self._cond:
            message = self._by_key.get((channel, ts))
            ephemeral = message is None
            if message is None:
                message = next((e for e in self._ephemeral if e["channel"] == channel and e["ts"] == ts), None)
            if message is None:
                return 404, {"ok": False, "error": "message_not_found"}
            button = find_button(message.get("blocks") or [], action_id, value)
            if button is None:
                return 404, {"ok": False, "error": "action_not_found"}
            trigger = self._trigger()
            shown = self._public(message, False)
            names = {cid: name for name, cid in self._channels.items()}
        payload: JsonDict = {
            "type": "block_actions",
            "user": {"id": self.user, "username": DEMO_USER_NAME, "name": DEMO_USER_NAME, "team_id": self.team_id},
            "api_app_id": APP_ID,
            "token": "sandbox-verification-token",
            "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": ephemeral},
            "trigger_id": trigger,
            "team": {"id": self.team_id, "domain": "sandbox"},
            "channel": {"id": channel, "name": names.get(channel, channel)},
            "message": shown,
            "state": {"values": {}},
            "response_url": self.response_url(channel=channel, ts=ts),
            "actions": [action_payload(button, action_id, value=value, block_id=block_id)],
        }
        form = urlencode({"payload": json.dumps(payload)}).encode()
        status, _body = self._send(form, "application/x-www-form-urlencoded")
        return (200, {"ok": True}) if status == 200 else (502, {"ok": False, "error": f"the bot answered {status}"})

    def command(self, channel: str, line: str) -> tuple[int, JsonDict]:
        """Run a slash command as the demo user; its reply shows as an ephemeral message."""
        command, _, text = line.strip().partition(" ")
        if not command.startswith("/") or len(command) < 2:
            return 400, {"ok": False, "error": "type a slash command, such as /alerts"}
        key = uuid.uuid4().hex
        with self._cond:
            cid = self.channel_id(channel)
            names = {c: name for name, c in self._channels.items()}
            self._command_urls[key] = (cid, self.user)
            trigger = self._trigger()
        form = {
            "token": "sandbox-verification-token",
            "team_id": self.team_id,
            "team_domain": "sandbox",
            "channel_id": cid,
            "channel_name": names.get(cid, cid),
            "user_id": self.user,
            "user_name": DEMO_USER_NAME,
            "command": command,
            "text": text.strip(),
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self.response_url(key),
            "trigger_id": trigger,
        }
        status, body = self._send(urlencode(form).encode(), "application/x-www-form-urlencoded")
        with self._cond:
            if status != 200:  # what Slack shows when an app does not answer a command
                failure = {"text": f'{command} failed with the error "dispatch_failed" (the bot answered {status})'}
                self._add_ephemeral(cid, self.user, failure, self._next_ts())
                return 502, {"ok": False, "error": f"the bot answered {status}"}
            reply = _json_or_none(body)
            if isinstance(reply, dict) and (reply.get("text") or reply.get("blocks")):
                try:
                    fields = self._content(reply, required=True)  # Block Kit limits, as Slack checks them
                except _ApiError as exc:
                    fields = {"text": f"{command}: Slack would refuse this reply: {exc.body.get('error')}"}
                if reply.get("response_type") == "in_channel":
                    self._store(cid, fields, None)
                else:
                    self._add_ephemeral(cid, self.user, fields, self._next_ts())
        return 200, {"ok": True}

    def open_home(self) -> tuple[int, JsonDict]:
        """Open the App Home tab as the demo user: send the bot a signed ``app_home_opened`` event.

        The bot answers the event at once and publishes the tab afterwards (``views.publish``),
        so the view arrives in :meth:`state` a moment later, as it does in Slack.
        """
        with self._cond:
            dm = self.channel_id(self.user)
            published = copy.deepcopy(self._home_views.get(self.user))
        now = time.time()
        event: JsonDict = {
            "type": "app_home_opened",
            "user": self.user,
            "channel": dm,
            "tab": "home",
            "event_ts": f"{now:.6f}",
        }
        if published is not None:
            event["view"] = published  # Slack includes the tab's current view once one was published
        envelope = {
            "token": "sandbox-verification-token",
            "team_id": self.team_id,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:16].upper()}",
            "event_time": int(now),
        }
        status, _body = self._send(json.dumps(envelope).encode(), "application/json")
        return (200, {"ok": True}) if status == 200 else (502, {"ok": False, "error": f"the bot answered {status}"})

    def _trigger(self) -> str:
        trigger = f"{next(self._seq)}.{int(time.time())}.{uuid.uuid4().hex[:12]}"
        self._triggers[trigger] = self.user
        return trigger

    def _send(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        """POST a signed request to the bot as Slack does; never holds the lock (the bot calls back)."""
        if not self.events_url:
            return 503, b"the bot is not running"
        headers = {"Content-Type": content_type, **sign(self.signing_secret, body)}
        request = urllib.request.Request(self.events_url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return int(answer.status), bytes(answer.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except (urllib.error.URLError, OSError):
            return 503, b"the bot is not reachable"


def pagerduty_lane(events: list[Event]) -> list[JsonDict]:
    """The PagerDuty panel's rows, oldest first: what each event did, in the words of the Events API.

    Acknowledge and resolve events carry no payload, so they show the summary and severity of
    the trigger they answer (the same dedup key). ``status`` is the HTTP answer the bot got.
    """
    triggered: dict[str, tuple[str, str]] = {}  # dedup key -> (summary, severity) of its trigger
    rows = []
    for event in events:
        body = event["body"] or {}
        dedup_key = body.get("dedup_key") or (event["response"] or {}).get("dedup_key") or ""
        payload: JsonDict = body["payload"] if isinstance(body.get("payload"), dict) else {}
        if body.get("event_action") == "trigger" and event["status"] == 202:
            triggered[dedup_key] = (str(payload.get("summary", "")), str(payload.get("severity", "")))
        summary, severity = triggered.get(dedup_key, ("", ""))
        rows.append(
            {
                "action": str(body.get("event_action", "")),
                "dedup_key": str(dedup_key),
                "summary": str(payload.get("summary", summary)),
                "severity": str(payload.get("severity", severity)),
                "at": event["at"],
                "status": event["status"],
            }
        )
    return rows


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        return None
