"""The Slack Web API edge of the notifier: client, per-channel pacing, error classification, posting.

Kept apart from :mod:`bot.notify.slack` so the notifier reads as what it decides (which
message an incident shows) while this module holds how a call is made and what a failure means:
the outbox is the one place that retries, so every failure leaves here as a
:class:`~bot.errors.DeliveryError` saying whether a retry can help.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from http.client import HTTPException
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web import SlackResponse

from bot.errors import DeliveryError
from bot.notify import http_delivery
from bot.observability import Metrics
from bot.settings import DEFAULT_SLACK_API_URL

Location = tuple[str, str]
"""(channel ID, ts) of a Slack message."""

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org"}
)
CREDENTIAL_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"})
"""The token, not the message, is refused: a rotated or revoked token is fixed by an operator while
the bot waits, so these pause Slack delivery (retrying with backoff) instead of failing notifications."""
CHANNEL_GONE = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
"""The bot cannot post in the channel: a root message goes to ``default_channel`` instead."""
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


def call(method: str, request: Callable[[], SlackResponse]) -> SlackResponse:
    """Run one Web API request, turning every failure into a classified DeliveryError."""
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
    """Classify a Slack error: rate limits and outages retry, a refused token pauses delivery
    (:data:`CREDENTIAL_ERRORS`), other rejections do not retry."""
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    error = str(data.get("error") or f"http_{status}")
    if status == 429 or error == "ratelimited":
        retry_after = http_delivery.retry_after(getattr(response, "headers", None) or {})
        return DeliveryError(
            f"Slack {method}: rate limited (HTTP {status})", retryable=True, retry_after=retry_after, code=error
        )
    if http_delivery.retries(status) or error in _RETRYABLE_ERRORS:
        return DeliveryError(f"Slack {method}: {error} (HTTP {status})", retryable=True, code=error)
    message = f"Slack {method} refused: {error}"
    if error in _HINTS:
        message += f" — {_HINTS[error]}"
    details = data.get("errors") or (data.get("response_metadata") or {}).get("messages") or []
    if details:
        message += f" ({'; '.join(str(d) for d in details[:3])})"
    return DeliveryError(message, retryable=False, pauses=error in CREDENTIAL_ERRORS, code=error)


def metadata_names(message: Mapping[str, Any], event_type: str, **expected: Any) -> bool:
    """Whether ``message`` carries our metadata of ``event_type`` with these payload values."""
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != event_type:
        return False
    payload = metadata.get("event_payload") or {}
    return all(str(payload.get(key)) == str(value) for key, value in expected.items())


def metadata_alert_ids(message: Mapping[str, Any]) -> list[int]:
    """The alerts a root message was posted for: ``alert_ids`` (a group), else ``alert_id``."""
    payload = (message.get("metadata") or {}).get("event_payload") or {}
    raw = payload.get("alert_ids")
    listed = raw if isinstance(raw, list) else [payload.get("alert_id")]
    ids: list[int] = []
    for value in listed:
        if isinstance(value, int | str) and str(value).isdigit():
            ids.append(int(value))
    return ids


Caller = Callable[[str, Callable[[], SlackResponse]], SlackResponse]
"""Runs one request: :func:`call`, or a notifier's wrapper of it that also times the call."""


def find_in_history(
    client: WebClient,
    channel_id: str,
    *,
    oldest: datetime,
    match: Callable[[Mapping[str, Any]], bool],
    pages: int = 5,
    caller: Caller = call,
) -> Mapping[str, Any] | None:
    """The newest message of the channel since ``oldest`` that ``match`` accepts (metadata
    included), reading at most ``pages`` pages of history. Raises DeliveryError."""
    cursor: str | None = None
    for _ in range(pages):
        request = partial(
            client.conversations_history,
            channel=channel_id,
            oldest=f"{oldest.timestamp():.6f}",
            include_all_metadata=True,
            limit=200,
            cursor=cursor,
        )
        page = caller("conversations.history", request)
        for message in page.get("messages") or []:
            if match(message):
                return dict(message)
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not page.get("has_more") or not cursor:
            break
    return None


def find_channel_id(client: WebClient, name: str, *, pages: int = 10, caller: Caller = call) -> str | None:
    """The ID of the channel called ``name`` (``#name`` or ``name``), or None. Raises DeliveryError."""
    return find_channel_ids(client, [name], pages=pages, caller=caller).get(name)


def find_channel_ids(
    client: WebClient, names: Collection[str], *, pages: int = 10, caller: Caller = call
) -> dict[str, str]:
    """Name → ID of the channels called ``names`` (``#name`` or ``name``) among the public and
    private channels the bot can see (``conversations.list``, scopes ``channels:read`` /
    ``groups:read``), reading pages until all are found; a name not found is left out. Raises
    DeliveryError."""
    wanted = {name.removeprefix("#"): name for name in names}
    found: dict[str, str] = {}
    cursor: str | None = None
    for _ in range(pages if wanted else 0):
        request = partial(
            client.conversations_list,
            types="public_channel,private_channel",
            exclude_archived=True,
            limit=1000,
            cursor=cursor,
        )
        page = caller("conversations.list", request)
        for channel in page.get("channels") or []:
            if channel.get("name") in wanted and channel.get("id"):
                found[wanted[channel["name"]]] = str(channel["id"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if len(found) == len(wanted) or not cursor:
            break
    return found


def thread_has(
    client: WebClient, channel: str, root_ts: str, match: Callable[[Mapping[str, Any]], bool], caller: Caller = call
) -> bool:
    """Whether a message of the thread under ``root_ts`` satisfies ``match``. Raises DeliveryError."""
    thread = caller(
        "conversations.replies",
        lambda: client.conversations_replies(channel=channel, ts=root_ts, include_all_metadata=True, limit=1000),
    )
    return any(match(m) for m in thread.get("messages") or [])


log = logging.getLogger("bot.notify.slack")
"""The notifier's logger: what it posted is part of its log (one line per post)."""


FALLBACK_EVENT = "incident_bot_fallback"
"""The metadata event type of the note saying why a message was posted in the default channel."""


@dataclass(frozen=True)
class Outgoing:
    """A message to post: its fallback text, metadata, blocks, and whether a thread reply is also
    shown in the channel."""

    text: str
    metadata: dict[str, Any]
    blocks: list[dict[str, Any]] | None = None
    broadcast: bool = False


class SlackPoster:
    """Posting for the notifier: one channel's posts paced, channel IDs learned from answers (or
    looked up by name), every call classified into a DeliveryError and timed; a message its
    channel refuses goes to ``default_channel`` (when given)."""

    def __init__(
        self,
        client: WebClient,
        *,
        pacer: ChannelPacer | None = None,
        channel_ids: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
        default_channel: Callable[[], str] | None = None,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._default_channel = default_channel
        self._pacer = pacer or ChannelPacer()
        self._ids: dict[str, str] = dict(channel_ids or {})
        self._ids_lock = threading.Lock()

    def _post(
        self,
        channel: str,
        *,
        text: str,
        metadata: dict[str, Any],
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        broadcast: bool = False,
        what: str,
    ) -> Location:
        """Post a message (``what`` names it in the log line that says it was posted). A root
        message the bot cannot post in ``channel`` (gone, archived, the bot not in it) goes to the
        ``default_channel``, with a reply in its thread saying why, rather than nowhere."""
        message = Outgoing(text, metadata, blocks, broadcast)
        try:
            return self._send(channel, message, thread_ts=thread_ts, what=what)
        except DeliveryError as exc:
            fallback = self._default_channel() if self._default_channel else None
            if fallback is None or thread_ts is not None or exc.code not in CHANNEL_GONE:
                raise
            if channel in (fallback, self._channel_id(fallback)):
                raise
            why = f"could not post in {channel if channel.startswith('#') else f'<#{channel}>'}: {exc.code}"
        log.warning("%s; posting %s in %s instead", why, what, fallback)
        where = self._send(fallback, message, thread_ts=None, what=what)
        note = f":warning: incident-bot {why}, so this is posted here. Invite the bot or fix `channel:` in rules/."
        said = Outgoing(note, {"event_type": FALLBACK_EVENT, "event_payload": {"channel": channel}})
        try:
            self._send(where[0], said, thread_ts=where[1], what=f"the note on {what}")
        except DeliveryError as exc:  # the incident is posted; the note is a courtesy, not worth a repost
            log.warning("could not add the fallback note under %s: %s", where, exc)
        return where

    def _send(self, channel: str, message: Outgoing, *, thread_ts: str | None, what: str) -> Location:
        self._pacer.wait(self._channel_id(channel) or channel)
        extra: dict[str, Any] = {"reply_broadcast": True} if message.broadcast else {}
        answer = self._call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                metadata=message.metadata,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                **extra,
            ),
        )
        channel_id, ts = str(answer["channel"]), str(answer["ts"])
        log.info("posted %s to Slack %s %s", what, channel_id, f"in thread {thread_ts}" if thread_ts else f"as {ts}")
        if channel_id != channel:
            with self._ids_lock:
                self._ids[channel] = channel_id
            self._pacer.alias(channel, channel_id)
        return channel_id, ts

    def _look_up_channel(self, name: str) -> str | None:
        """The ID of ``#name`` by ``conversations.list``: a retry must search the channel's history,
        and a process learns IDs only from the answers to its posts -- which a post that timed
        out, or a process started after a crash, never saw. Raises a retryable DeliveryError; a
        refusal (a missing scope) is logged and gives None."""
        try:
            found = find_channel_id(self._client, name, caller=self._call)
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("cannot look up the ID of %s (%s)", name, exc)
            return None
        if found is not None:
            with self._ids_lock:
                self._ids[name] = found
            self._pacer.alias(name, found)
        return found

    def _channel_id(self, channel: str) -> str | None:
        if CHANNEL_ID.match(channel):
            return channel
        with self._ids_lock:
            return self._ids.get(channel)

    def _call(self, method: str, request: Callable[[], SlackResponse]) -> SlackResponse:
        started = time.perf_counter()
        try:
            return call(method, request)
        finally:
            if self._metrics:  # failed calls too: a slow Slack shows before it errors
                self._metrics.api_call("slack", method, time.perf_counter() - started)
