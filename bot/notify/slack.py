"""Slack delivery: one root message per alert group, updated in place, state changes in its thread.

The outbox hands over one notification at a time and owns every retry; this module decides
which message an alert belongs to and keeps that message consistent with the database (the
Web API calls and their failure classes are in :mod:`bot.notify.slack_api`). Messages are
always rendered from the *current* alert rows, never from a notification's snapshot, so
whatever order two clicks were delivered in, the root message ends consistent.

Grouping (SPEC §2; layout in :mod:`bot.notify.slack_groups`). Routing holds a Slack "fired"
notification for ``group_wait``, so alerts of one model that fire together are all in the
database when the first of them is delivered. That delivery either

* joins the model's group message in the same channel, if one was posted less than
  ``group_interval`` ago, still has an open alert and has room: it records the alert there,
  updates the message and says "Also firing" in the thread (an update notifies nobody); or
* posts a new root message holding the alert *and* every alert of the model whose own Slack
  post is queued and untried (not held for business hours), and records them all; their own
  "fired" notifications then find a message recorded and do nothing.

A group is only a set of alerts that recorded one ``(channel, ts)``, first writer wins, so
two deliveries that race each end with a message showing exactly what it holds.

Crash safety (SPEC §6): a post whose answer never arrived may still have reached the channel.
Every post carries metadata naming its alerts and outbox row; before posting, a retry -- or a
delivery whose group companion's post was tried and failed -- looks for that post in
``conversations.history`` (thread replies in ``conversations.replies``) and records what it
finds instead of posting twice. History takes a channel *ID* while rules name ``#name``s: IDs
are learned from post answers, and a process that never had one for the channel (its first
post timed out, or it started after a crash) looks the name up with ``conversations.list``.
Residual risk: a delivery that died mid-post less than the outbox's claim timeout ago looks in
progress, so its alert may be swept into another group while its own post stays behind as a
stale duplicate.

The weekly alert review (kind ``review.weekly``, no alert; :mod:`bot.review.weekly`) is one
message to ``payload["channel"]``: a header with the title and the review as a code block, cut
into sections of at most 3,000 characters. It carries metadata naming its outbox row, and a retry
looks for it in the channel's history (from the row's creation) before posting again, as root
posts do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from slack_sdk import WebClient
from slack_sdk.web import SlackResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.alerts import store
from bot.alerts.lifecycle import Alert, AlertState
from bot.clock import Clock, ensure_utc
from bot.config.loader import Config
from bot.errors import DeliveryError
from bot.notify import outbox
from bot.notify import slack_groups as groups
from bot.notify.notifier import Notification
from bot.notify.slack_api import (
    CHANNEL_GONE,
    CHANNEL_ID,
    ChannelPacer,
    Location,
    api_error,
    call,
    find_channel_id,
    find_in_history,
    make_client,
    metadata_alert_ids,
    metadata_names,
    thread_has,
)
from bot.notify.slack_blocks import escape_mrkdwn, page_result_reply, split_sections, state_reply
from bot.observability import Metrics
from bot.settings import Settings
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow

__all__ = ["ChannelPacer", "Location", "SlackNotifier", "api_error", "make_client"]

log = logging.getLogger(__name__)

ALERT_EVENT = "incident_bot_alert"
REPLY_EVENT = "incident_bot_reply"
FIRED = "alert.fired"
PAGE_RESULT = "alert.page_result"
"""What PagerDuty did with a page (``bot.app``): a thread reply only, the root message is left as it is."""
REVIEW = "review.weekly"
"""The weekly alert review's kind (``bot.review.weekly.KIND``; not imported: review depends on notify)."""
REVIEW_EVENT = "incident_bot_review"
FALLBACK_EVENT = "incident_bot_fallback"
REVIEW_SECTIONS = 45
"""Sections of the review message: a header and a note fit beside them within Slack's 50 blocks."""
LOOKBACK = timedelta(minutes=1)
"""How far before the alert fired the history search starts: tolerance for clock skew."""
HISTORY_PAGES = 5


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
        metrics: Metrics | None = None,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._engine = engine
        self._config = config
        self._clock = clock
        self._pacer = pacer or ChannelPacer()
        self._ids: dict[str, str] = dict(channel_ids or {})
        self._ids_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        engine: Engine,
        config: Callable[[], Config],
        clock: Clock,
        timeout: float = 10.0,
        metrics: Metrics | None = None,
    ) -> SlackNotifier:
        if settings.slack_bot_token is None:
            raise ValueError("SLACK_BOT_TOKEN is not set; Slack delivery needs the bot token")
        token = settings.slack_bot_token.get_secret_value()
        client = make_client(token, base_url=settings.slack_api_url, timeout=timeout)
        return cls(client, engine=engine, config=config, clock=clock, metrics=metrics)

    def send(self, notification: Notification) -> None:
        """Put the alert in a root message (its group's or a new one), bring that message up to
        date, and record a state change in its thread. Raises DeliveryError; the outbox retries."""
        note = notification
        if note.kind == REVIEW:
            self._post_review(note)
            return
        if note.alert_id is None or not note.kind.startswith("alert."):
            raise DeliveryError(f"Slack cannot deliver {note.kind!r} without an alert", retryable=False)
        with open_session(self._engine) as s:
            alert = store.get(s, note.alert_id)
            where = store.slack_message(s, note.alert_id)
        if alert is None:
            raise DeliveryError(f"alert {note.alert_id} no longer exists", retryable=False)
        config = self._config()
        if note.kind == PAGE_RESULT:
            self._page_result(alert, where, note)
            return
        if note.kind == FIRED:
            self._fired(alert, where, note, config)
            return
        if where is None:  # its post failed for good earlier: this change posts the root
            target = self._target(alert, note.payload, config)
            where = self._found_earlier(alert, note, target, {})
            if where is None:
                where, members = self._post_root(alert, note, config, target=target, companions=[])
            else:
                members = self._refresh(where, config)
        else:
            members = self._refresh(where, config)
        at = note.payload.get("at")
        now = ensure_utc(datetime.fromisoformat(at)) if isinstance(at, str) else self._clock.now()
        text = state_reply(
            alert,
            note.kind.removeprefix("alert."),
            str(note.payload.get("actor") or ""),
            now,
            escalation=note.payload.get("escalation"),
            paged=bool(note.payload.get("paged_now")),
        )
        self._reply(where, alert, note, groups.named(alert, text) if len(members) > 1 else text)

    # ------------------------------------------------------------------ fired: skip, join or post

    def _fired(self, alert: Alert, where: Location | None, note: Notification, config: Config) -> None:
        if where is not None:
            if note.attempts == 0:
                log.debug("alert %s is already in Slack message %s (posted with its group)", alert.id, where[1])
                return
            # an earlier attempt recorded the message and may have died before updating it or replying
            self._refresh(where, config)
            posted = groups.posted_at(where[1])
            if posted is not None and posted < (alert.fired_at or alert.started_at):
                self._reply(where, alert, note, groups.also_firing([alert]))  # it had joined an older group
            return
        target = self._target(alert, note.payload, config)
        queued = self._queued(alert, target, config)
        found = self._found_earlier(alert, note, target, queued.tried)
        if found is not None:
            self._refresh(found, config)
            return
        group = self._open_group(alert, target, config)
        if group is None:
            self._post_root(alert, note, config, target=target, companions=queued.companions)
            return
        where, members = group
        newcomers = [alert, *queued.companions][: groups.MAX_GROUP - len(members)]
        with open_session(self._engine) as s, s.begin():
            joined = [a for a in _by_id(newcomers) if _record(s, a, where)]
            winner = None if alert in joined else store.slack_message(s, alert.id or 0)
        if winner is not None:  # another delivery recorded it first: that message is the one to update
            log.warning("alert %s: recorded in %s by another delivery; not joining %s", alert.id, winner, where)
            self._refresh(winner, config)
            if joined:
                self._refresh(where, config)
            return
        log.debug("alerts %s join the Slack group message %s", [a.id for a in joined], where[1])
        self._refresh(where, config)
        self._reply(where, alert, note, groups.also_firing(joined), broadcast=groups.louder(joined, members))

    def _open_group(self, alert: Alert, target: str, config: Config) -> tuple[Location, list[Alert]] | None:
        """The model's newest group message in ``target`` that still takes alerts, if any."""
        now = self._clock.now()
        with open_session(self._engine) as s:
            places = {where for _other, where in store.open_alerts_of_model(s, alert.model) if where is not None}
            interval = config.settings.group_interval
            for where in sorted(places, key=lambda w: w[1], reverse=True):  # newest first: a ts is a Unix time
                members = store.alerts_in_message(s, *where)
                takes = groups.takes_alerts(where[1], members, now=now, group_interval=interval)
                if takes and self._same_channel(where[0], target, members, config):
                    return where, members
        return None

    def _queued(self, alert: Alert, target: str, config: Config) -> groups.Queued:
        """The model's alerts with no message yet whose Slack post is queued for ``target``."""
        with open_session(self._engine) as s:
            waiting = {
                other.id: other
                for other, where in store.open_alerts_of_model(s, alert.model)
                if where is None and other.id is not None and other.id != alert.id
            }
            rows = outbox.pending_for(s, channel=self.channel, kind=FIRED, alert_ids=list(waiting))
            return groups.queued_with(
                rows,
                waiting,
                now=self._clock.now(),
                group_wait=config.settings.group_wait,
                same_channel=lambda other, row: self._target(other, row.payload, config) == target,
            )

    # ------------------------------------------------------------------ root message

    def _post_root(
        self, alert: Alert, note: Notification, config: Config, *, target: str, companions: list[Alert]
    ) -> tuple[Location, list[Alert]]:
        """Post a root message holding ``alert`` and ``companions``; record it for each of them."""
        members = [alert, *companions]
        text, blocks = self._render(members, config)
        payload: dict[str, Any] = {"alert_id": alert.id, "outbox_id": note.id}
        if companions:
            payload["alert_ids"] = [m.id for m in groups.by_severity(members)]
        metadata = {"event_type": ALERT_EVENT, "event_payload": payload}
        what = f"alert {alert.id}" if not companions else f"alerts {[m.id for m in groups.by_severity(members)]}"
        posted = self._post(target, text=text, blocks=blocks, metadata=metadata, what=what)
        with open_session(self._engine) as s, s.begin():
            won = [m for m in _by_id(members) if _record(s, m, posted)]
            winner = None if alert in won else store.slack_message(s, alert.id or 0)
        if len(won) < len(members):
            lost = [m.id for m in members if m not in won]
            log.warning("Slack message %s: alerts %s were recorded elsewhere first; it shows the rest", posted, lost)
            if won:
                won = self._refresh(posted, config)
        if winner is not None:
            _duplicate(alert, winner, posted)
            return winner, self._refresh(winner, config)
        return posted, won

    def _found_earlier(
        self, alert: Alert, note: Notification, target: str, tried: Mapping[int, datetime]
    ) -> Location | None:
        """A root message listing this alert that an earlier attempt posted -- this row's, on a
        retry, or a ``tried`` companion's -- recorded for every alert it lists. Searched only
        when such an attempt exists, from the earliest of their fire times."""
        rows = {**tried, **({note.id: alert.fired_at or alert.started_at} if note.attempts > 0 else {})}
        if not rows:
            return None
        channel_id = self._channel_id(target) or self._look_up_channel(target)
        if channel_id is None:
            log.warning("alert %s: the ID of %s is not known, so no earlier post can be sought", alert.id, target)
            return None

        def lists_alert(message: Mapping[str, Any]) -> bool:
            return metadata_names(message, ALERT_EVENT) and alert.id in metadata_alert_ids(message)

        try:
            oldest = min(rows.values()) - LOOKBACK
            message = find_in_history(
                self._client, channel_id, oldest=oldest, match=lists_alert, pages=HISTORY_PAGES, caller=self._call
            )
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("alert %s: cannot search %s for an earlier post (%s); posting", alert.id, target, exc)
            return None
        if message is None:
            return None
        where = (channel_id, str(message["ts"]))
        log.info("alert %s: found an earlier Slack post %s naming it; not posting again", alert.id, where[1])
        with open_session(self._engine) as s, s.begin():
            for alert_id in sorted({alert.id or 0, *metadata_alert_ids(message)}):  # lock order: see _by_id
                store.record_slack_message(s, alert_id, channel=where[0], ts=where[1])
            recorded = store.slack_message(s, alert.id or 0)
        if recorded is not None and recorded != where:
            _duplicate(alert, recorded, where)
        return recorded or where

    def _refresh(self, where: Location, config: Config) -> list[Alert]:
        """Re-render a root message from every alert recorded in it; return those alerts."""
        with open_session(self._engine) as s:
            members = store.alerts_in_message(s, *where)
        if not members:
            return []
        text, blocks = self._render(members, config)
        channel, ts = where
        self._call("chat.update", lambda: self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks))
        return members

    def _render(self, members: Sequence[Alert], config: Config) -> tuple[str, list[dict[str, Any]]]:
        """The root message; an auto-resolved alert shows the values that fired it beside the
        recovered ones, which its AUTO_RESOLVED event holds (read only when there is one)."""
        auto = [m.id for m in members if m.id is not None and m.state is AlertState.RESOLVED]
        recovered: dict[int, Mapping[str, object]] = {}
        if auto:
            with open_session(self._engine) as s:
                recovered = groups.recovered_values(store.histories(s, auto))
        now = self._clock.now()
        return groups.render(
            members, now=now, runbook=lambda a: groups.has_runbook(a, config), recovered=recovered
        )

    # ------------------------------------------------------------------ thread replies

    def _reply(self, where: Location, alert: Alert, note: Notification, text: str, *, broadcast: bool = False) -> None:
        channel, root_ts = where
        if note.attempts > 0 and self._reply_exists(where, note):
            log.info("alert %s: reply for outbox row %s is already in the thread", alert.id, note.id)
            return
        metadata = {"event_type": REPLY_EVENT, "event_payload": {"alert_id": alert.id, "outbox_id": note.id}}
        what = f"{note.kind.removeprefix('alert.')} reply for alert {alert.id}"
        self._post(channel, text=text, metadata=metadata, thread_ts=root_ts, broadcast=broadcast, what=what)

    def _page_result(self, alert: Alert, where: Location | None, note: Notification) -> None:
        """Say in the alert's thread whether PagerDuty took its page. The alert's own post goes
        first (the outbox keeps an alert's notifications in order), so no root means it failed."""
        if where is None:
            raise DeliveryError(f"alert {alert.id} has no Slack message to reply under", retryable=False)
        with open_session(self._engine) as s:
            grouped = len(store.alerts_in_message(s, *where)) > 1
        text = page_result_reply(note.payload)
        self._reply(where, alert, note, groups.named(alert, text) if grouped else text)

    def _reply_exists(self, where: Location, note: Notification) -> bool:
        try:
            ours = partial(metadata_names, event_type=REPLY_EVENT, outbox_id=note.id)
            return thread_has(self._client, *where, ours, caller=self._call)
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("cannot read the thread %s/%s (%s); replying", *where, exc)
            return False

    # ------------------------------------------------------------------ weekly review

    def _post_review(self, note: Notification) -> None:
        """Post the weekly review to ``payload["channel"]`` (default: ``default_channel``), once."""
        body = note.payload.get("text")
        if not isinstance(body, str) or not body.strip():
            raise DeliveryError(f"outbox row {note.id}: the weekly review has no text", retryable=False)
        chosen = note.payload.get("channel")
        target = chosen if isinstance(chosen, str) and chosen else self._config().settings.default_channel
        title = str(note.payload.get("title") or "Weekly alert review")
        if note.attempts > 0 and self._review_posted(note, target):
            log.info("weekly review of outbox row %s is already in %s; not posting again", note.id, target)
            return
        metadata = {
            "event_type": REVIEW_EVENT,
            "event_payload": {"outbox_id": note.id, "week": note.payload.get("week")},
        }
        self._post(target, text=title, blocks=review_blocks(title, body), metadata=metadata, what="weekly review")

    def _review_posted(self, note: Notification, target: str) -> bool:
        """Whether an earlier attempt's post of this row is in ``target``'s history (searched from
        the row's creation). Raises a retryable DeliveryError; a refusal is logged and gives False."""
        with open_session(self._engine) as s:
            row = s.get(OutboxRow, note.id)
        since = ensure_utc(row.created_at) if row is not None else self._clock.now() - timedelta(days=1)
        channel_id = self._channel_id(target) or self._look_up_channel(target)
        if channel_id is None:
            log.warning("weekly review: the ID of %s is not known, so no earlier post can be sought", target)
            return False
        ours = partial(metadata_names, event_type=REVIEW_EVENT, outbox_id=note.id)
        try:
            found = find_in_history(
                self._client, channel_id, oldest=since - LOOKBACK, match=ours, pages=HISTORY_PAGES, caller=self._call
            )
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("weekly review: cannot search %s for an earlier post (%s); posting", target, exc)
            return False
        return found is not None

    # ------------------------------------------------------------------ Web API

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
        message the bot cannot post in ``channel`` (gone, archived, the bot not in it) goes to
        ``default_channel``, with a reply in its thread saying why, rather than nowhere."""
        post = partial(self._post_in, text=text, metadata=metadata, blocks=blocks, broadcast=broadcast)
        try:
            return post(channel, thread_ts=thread_ts, what=what)
        except DeliveryError as exc:
            fallback = self._config().settings.default_channel
            is_fallback = channel in (fallback, self._channel_id(fallback))
            if thread_ts is not None or exc.code not in CHANNEL_GONE or is_fallback:
                raise
            why = f"could not post in {channel if channel.startswith('#') else f'<#{channel}>'}: {exc.code}"
        log.warning("%s; posting %s in %s instead", why, what, fallback)
        where = post(fallback, thread_ts=None, what=what)
        note = f":warning: incident-bot {why}, so this is posted here. Invite the bot or fix `channel:` in rules/."
        try:
            self._post_in(
                where[0],
                text=note,
                metadata={"event_type": FALLBACK_EVENT, "event_payload": {"channel": channel}},
                thread_ts=where[1],
                what=f"the note on {what}",
            )
        except DeliveryError as exc:  # the alert is posted; the note is a courtesy, not worth a repost
            log.warning("could not add the fallback note under %s: %s", where, exc)
        return where

    def _post_in(
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
        self._pacer.wait(self._channel_id(channel) or channel)
        extra: dict[str, Any] = {"reply_broadcast": True} if broadcast else {}
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

    def _same_channel(self, channel_id: str, target: str, members: Sequence[Alert], config: Config) -> bool:
        """Whether a message recorded in ``channel_id`` is in ``target`` (a ``#name`` or an ID).
        Until this process learns the name's ID, the members' configured channel decides."""
        known = self._channel_id(target)
        if known is not None or channel_id == target:
            return channel_id in (known, target)
        return all(groups.configured_channel(m, config) == target for m in members)

    @staticmethod
    def _target(alert: Alert, payload: Mapping[str, Any], config: Config) -> str:
        """Routing may name the channel (a quiet channel outside business hours); else the rule's."""
        chosen = payload.get("slack_channel")
        return chosen if isinstance(chosen, str) and chosen else groups.configured_channel(alert, config)

    def _call(self, method: str, request: Callable[[], SlackResponse]) -> SlackResponse:
        started = time.perf_counter()
        try:
            return call(method, request)
        finally:
            if self._metrics:  # failed calls too: a slow Slack shows before it errors
                self._metrics.api_call("slack", method, time.perf_counter() - started)


def _by_id(alerts: Sequence[Alert]) -> list[Alert]:
    """Alerts in id order: every transaction that records several alerts' message locks their
    rows in the same order, so two replicas recording overlapping groups cannot deadlock."""
    return sorted(alerts, key=lambda a: a.id or 0)


def _record(session: Session, alert: Alert, where: Location) -> bool:
    """Record ``where`` as the alert's root message; first writer wins (see the store)."""
    return alert.id is not None and store.record_slack_message(session, alert.id, channel=where[0], ts=where[1])


def _duplicate(alert: Alert, kept: Location, extra: Location) -> None:
    log.warning("alert %s: two root messages were posted; keeping %s, %s is a duplicate", alert.id, kept, extra)


def review_blocks(title: str, body: str) -> list[dict[str, Any]]:
    """The review message: a header, the text as a code block in sections of at most 3,000
    characters, and a note if it is longer than one message can hold."""
    header = {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}}
    chunks = split_sections(f"```\n{escape_mrkdwn(body)}\n```")
    blocks: list[dict[str, Any]] = [header]
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": chunk}} for chunk in chunks[:REVIEW_SECTIONS]]
    if len(chunks) > REVIEW_SECTIONS:
        note = "_The review is longer than one Slack message; `incident-bot alerts review` prints it all._"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return blocks
