"""Slack delivery: one root message per alert, updated in place, state changes in its thread.

The outbox hands over one notification at a time and owns every retry; this module only
translates to the Web API and classifies failures as :class:`~bot.errors.DeliveryError`
(retryable or not, with Slack's ``Retry-After``). Messages are always rendered from the
*current* alert row, not from the notification's snapshot, so whatever order two clicks were
delivered in, the root message ends consistent with the database.

Crash safety (SPEC §6): a post whose answer never arrived (timeout, dropped connection, a
crash before the ``ts`` was stored) may still have reached the channel. Every post carries
message metadata naming its alert and outbox row, and a retry (``attempts > 0``) first looks
for it — the root in ``conversations.history``, a thread reply in ``conversations.replies`` —
and records what it finds instead of posting twice.

Residual risk: ``conversations.history`` takes a channel *ID*, while rules name channels as
``#name``; IDs are learned from ``chat.postMessage`` answers. If this process has never
posted successfully to a channel (first post since start, and that post's answer was lost),
the retry cannot search and posts again: at most one duplicate root message. Configuring
channels by ID (``channel: C0123ABCD``) or passing ``channel_ids`` closes that gap.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web import SlackResponse
from sqlalchemy.engine import Engine

from bot.alerts import store
from bot.alerts.lifecycle import Alert
from bot.clock import Clock, ensure_utc
from bot.config.loader import Config
from bot.errors import DeliveryError
from bot.notify.notifier import Notification
from bot.notify.slack_blocks import alert_message, state_reply
from bot.settings import DEFAULT_SLACK_API_URL, Settings
from bot.storage.database import session as open_session

log = logging.getLogger(__name__)

ALERT_EVENT = "incident_bot_alert"
REPLY_EVENT = "incident_bot_reply"
LOOKBACK = timedelta(minutes=1)
"""How far before the alert fired the history search starts: tolerance for clock skew."""
HISTORY_PAGES = 5
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org"}
)
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_HINTS = {
    "channel_not_found": "the channel does not exist or the bot cannot see it; fix `channel:` in rules/",
    "not_in_channel": "invite the bot to the channel (/invite @incident-bot)",
    "is_archived": "the channel is archived; route the alerts to another channel",
    "invalid_auth": "SLACK_BOT_TOKEN is not valid for this workspace",
    "not_authed": "SLACK_BOT_TOKEN is not set",
    "token_revoked": "SLACK_BOT_TOKEN was revoked; reinstall the app",
    "account_inactive": "the bot's token belongs to a deactivated app or user",
    "missing_scope": "the Slack app lacks a scope; reinstall it from manifest.yaml",
    "invalid_blocks": "Slack refused the message layout (a bug in incident-bot; please report it)",
    "msg_too_long": "the message is longer than Slack allows",
    "message_not_found": "the alert's Slack message was deleted",
}


def make_client(token: str, *, base_url: str = DEFAULT_SLACK_API_URL, timeout: float = 10.0) -> WebClient:
    """A WebClient with no retry handlers: the outbox is the one place that retries, and an SDK
    retry hidden inside one outbox attempt would double the waits and hide 429s from it."""
    # urllib takes float seconds; the SDK's hint says int, but sub-second timeouts work and tests use them
    return WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])  # type: ignore[arg-type]


class ChannelPacer:
    """At most one post per ``interval`` per channel (Slack allows about one message per
    second per channel and answers bursts with 429s). Thread-safe: each caller reserves the
    next free slot under the lock, then sleeps outside it, so other channels are not held up."""

    def __init__(
        self,
        interval: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_free: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, channel: str) -> float:
        """Block until ``channel`` may be posted to; return how long that took."""
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next_free.get(channel, now))
            self._next_free[channel] = slot + self._interval
        delay = slot - now
        if delay > 0:
            self._sleep(delay)
        return delay

    def alias(self, name: str, channel_id: str) -> None:
        """``#name`` and its ID are one channel: share the pacing once the ID is known."""
        with self._lock:
            if name in self._next_free:
                self._next_free[channel_id] = max(self._next_free[name], self._next_free.get(channel_id, 0.0))


Location = tuple[str, str]
"""(channel ID, ts) of a Slack message."""


class SlackNotifier:
    """The ``slack`` notifier of the outbox (see the module docstring for what it promises)."""

    channel = "slack"

    def __init__(
        self,
        client: WebClient,
        *,
        engine: Engine,
        config: Callable[[], Config],
        clock: Clock,
        pacer: ChannelPacer | None = None,
        channel_ids: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._engine = engine
        self._config = config
        self._clock = clock
        self._pacer = pacer or ChannelPacer()
        self._ids: dict[str, str] = dict(channel_ids or {})
        self._ids_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, engine: Engine, config: Callable[[], Config], clock: Clock, timeout: float = 10.0
    ) -> SlackNotifier:
        if settings.slack_bot_token is None:
            raise ValueError("SLACK_BOT_TOKEN is not set; Slack delivery needs the bot token")
        token = settings.slack_bot_token.get_secret_value()
        client = make_client(token, base_url=settings.slack_api_url, timeout=timeout)
        return cls(client, engine=engine, config=config, clock=clock)

    def send(self, notification: Notification) -> None:
        """Post the root (or find it again), bring it up to date with the alert row, and record
        the state change in its thread. Raises DeliveryError; the outbox decides about retries."""
        if notification.alert_id is None or not notification.kind.startswith("alert."):
            raise DeliveryError(f"Slack cannot deliver {notification.kind!r} without an alert", retryable=False)
        with open_session(self._engine) as s:
            alert = store.get(s, notification.alert_id)
            where = store.slack_message(s, notification.alert_id)
        if alert is None:
            raise DeliveryError(f"alert {notification.alert_id} no longer exists", retryable=False)
        config = self._config()
        runbook = _has_runbook(alert, config)
        fresh = False  # True when the root was posted just now, from the current row
        if where is None:
            where, fresh = self._root(alert, notification, config, runbook=runbook)
        if not fresh:
            text, blocks = alert_message(alert, now=self._clock.now(), runbook=runbook)
            channel, ts = where
            self._call(
                "chat.update", lambda: self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
            )
        if notification.kind != "alert.fired":
            self._reply(where, alert, notification)

    # ------------------------------------------------------------------ root message

    def _root(self, alert: Alert, note: Notification, config: Config, *, runbook: bool) -> tuple[Location, bool]:
        target = _target_channel(alert, config)
        if note.attempts > 0:
            found = self._find_root(alert, target)
            if found is not None:
                log.info("alert %s: found its earlier Slack post in %s; not posting again", alert.id, target)
                return self._remember(alert, found), False
        text, blocks = alert_message(alert, now=self._clock.now(), runbook=runbook)
        metadata = {"event_type": ALERT_EVENT, "event_payload": {"alert_id": alert.id, "outbox_id": note.id}}
        posted = self._post(target, text=text, blocks=blocks, metadata=metadata)
        return self._remember(alert, posted), True

    def _find_root(self, alert: Alert, target: str) -> Location | None:
        channel_id = self._channel_id(target)
        if channel_id is None:
            log.warning(
                "alert %s: %s's channel ID is not known yet, so an earlier post cannot be looked for", alert.id, target
            )
            return None
        oldest = f"{((alert.fired_at or alert.started_at) - LOOKBACK).timestamp():.6f}"
        cursor: str | None = None
        try:
            for _ in range(HISTORY_PAGES):
                request = partial(
                    self._client.conversations_history,
                    channel=channel_id,
                    oldest=oldest,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
                page = self._call("conversations.history", request)
                for message in page.get("messages") or []:
                    if _names(message, ALERT_EVENT, alert_id=alert.id):
                        return channel_id, str(message["ts"])
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not page.get("has_more") or not cursor:
                    break
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("alert %s: cannot search %s for an earlier post (%s); posting", alert.id, target, exc)
        return None

    def _remember(self, alert: Alert, where: Location) -> Location:
        """Record the root message; if another delivery recorded one first, theirs wins."""
        assert alert.id is not None
        with open_session(self._engine) as s, s.begin():
            if store.record_slack_message(s, alert.id, channel=where[0], ts=where[1]):
                return where
            winner = store.slack_message(s, alert.id)
        log.warning("alert %s: two root messages were posted; keeping %s, %s is a duplicate", alert.id, winner, where)
        return winner or where

    # ------------------------------------------------------------------ thread replies

    def _reply(self, where: Location, alert: Alert, note: Notification) -> None:
        channel, root_ts = where
        if note.attempts > 0 and self._reply_exists(where, note):
            log.info("alert %s: reply for outbox row %s is already in the thread", alert.id, note.id)
            return
        kind = note.kind.removeprefix("alert.")
        at = note.payload.get("at")
        now = ensure_utc(datetime.fromisoformat(at)) if isinstance(at, str) else self._clock.now()
        text = state_reply(alert, kind, str(note.payload.get("actor") or ""), now)
        metadata = {"event_type": REPLY_EVENT, "event_payload": {"alert_id": alert.id, "outbox_id": note.id}}
        self._post(channel, text=text, metadata=metadata, thread_ts=root_ts)

    def _reply_exists(self, where: Location, note: Notification) -> bool:
        channel, root_ts = where
        try:
            thread = self._call(
                "conversations.replies",
                lambda: self._client.conversations_replies(
                    channel=channel, ts=root_ts, include_all_metadata=True, limit=1000
                ),
            )
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("cannot read the thread %s/%s (%s); replying", channel, root_ts, exc)
            return False
        return any(_names(m, REPLY_EVENT, outbox_id=note.id) for m in thread.get("messages") or [])

    # ------------------------------------------------------------------ Web API

    def _post(
        self,
        channel: str,
        *,
        text: str,
        metadata: dict[str, Any],
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> Location:
        self._pacer.wait(self._channel_id(channel) or channel)
        answer = self._call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                metadata=metadata,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        channel_id, ts = str(answer["channel"]), str(answer["ts"])
        if channel_id != channel:
            with self._ids_lock:
                self._ids[channel] = channel_id
            self._pacer.alias(channel, channel_id)
        return channel_id, ts

    def _channel_id(self, channel: str) -> str | None:
        if _CHANNEL_ID.match(channel):
            return channel
        with self._ids_lock:
            return self._ids.get(channel)

    @staticmethod
    def _call(method: str, request: Callable[[], SlackResponse]) -> SlackResponse:
        try:
            return request()
        except SlackApiError as exc:
            raise api_error(method, exc) from exc
        except SlackRequestError as exc:
            raise DeliveryError(f"Slack {method}: invalid request: {exc}", retryable=False) from exc
        except (TimeoutError, OSError, HTTPException) as exc:  # urllib's URLError is an OSError
            raise DeliveryError(
                f"Slack {method}: no answer ({type(exc).__name__}: {exc}); it may or may not have been applied",
                retryable=True,
            ) from exc


def api_error(method: str, exc: SlackApiError) -> DeliveryError:
    """Classify a Slack error: rate limits and outages retry, rejections do not."""
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    error = str(data.get("error") or f"http_{status}")
    if status == 429 or error == "ratelimited":
        retry_after = _retry_after(getattr(response, "headers", None) or {})
        return DeliveryError(f"Slack {method}: rate limited (HTTP {status})", retryable=True, retry_after=retry_after)
    if status >= 500 or status in _RETRYABLE_STATUS or error in _RETRYABLE_ERRORS:
        return DeliveryError(f"Slack {method}: {error} (HTTP {status})", retryable=True)
    message = f"Slack {method} refused: {error}"
    if error in _HINTS:
        message += f" — {_HINTS[error]}"
    details = data.get("errors") or (data.get("response_metadata") or {}).get("messages") or []
    if details:
        message += f" ({'; '.join(str(d) for d in details[:3])})"
    return DeliveryError(message, retryable=False)


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return max(float(raw), 0.0)
            except (TypeError, ValueError):
                return None
    return None


def _names(message: Mapping[str, Any], event_type: str, **expected: Any) -> bool:
    """Whether ``message`` carries our metadata naming this alert / outbox row."""
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != event_type:
        return False
    payload = metadata.get("event_payload") or {}
    return all(str(payload.get(key)) == str(value) for key, value in expected.items())


def _target_channel(alert: Alert, config: Config) -> str:
    """Where the alert's root goes: the rule's channel, else the model's, else the default.
    A rule removed by a reload still has its alerts delivered, to the model's channel."""
    rule = config.rule(alert.rule)
    if rule is not None:
        return config.channel_for(rule, alert.model)
    model = config.models.get(alert.model)
    return (model.channel if model else None) or config.settings.default_channel


def _has_runbook(alert: Alert, config: Config) -> bool:
    rule = config.rule(alert.rule)
    if rule is not None and rule.runbook in config.runbooks:
        return True
    return config.runbook_for_model(alert.model) is not None
