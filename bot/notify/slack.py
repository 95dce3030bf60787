"""Slack delivery: one root message per *incident*, updated in place, every change in its thread.

The outbox hands over one notification at a time and owns every retry; this module decides
which message a notification belongs to and keeps that message consistent with the database
(the Web API calls and their failure classes are in :mod:`bot.notify.slack_api`; the message
itself in :mod:`bot.notify.slack_incident`). A root is always rendered from the *current*
incident and alert rows, never from a notification's snapshot, so whatever order two clicks were
delivered in, the message ends consistent.

People hear about incidents (SPEC §1). Every notification names its incident (``alert.*`` rows
through their alert, ``incident.*`` rows in their payload), and the outbox delivers an incident's
rows in order. The first delivery of an incident posts its root, holding every alert the
incident already has -- including companions whose own "fired" row is still queued (routing held
it for ``group_wait``) -- and records it on the incident and on each of those alerts (first writer
wins), so their own rows find it and do nothing. A later alert *joins*: it is recorded there, the
root is updated and "Also firing" (or "Fired again", for a re-fire of a rule:model the root
already shows) is said in the thread, broadcast to the channel when it is louder than everything
open. Every other change updates the root and replies in the thread: an alert acknowledged or
resolved on its own, an escalation of the incident, a person's action on the whole incident,
PagerDuty's answer to a page.

Coalescing: a burst of changes is a burst of rows, and each re-renders the root from the
database, so the first already shows the final state; a ``chat.update`` whose rendering equals the
one this process last sent for that message (within :data:`~bot.notify.slack_message.COALESCE_FOR`) is not sent.

Crash safety (SPEC §6): a post whose answer never arrived may still have reached the channel.
Every root carries metadata naming its incident, its alerts and its outbox row; before posting a
root, a retry -- or any delivery of an incident whose earlier Slack rows were tried -- looks for it
in ``conversations.history`` (thread replies in ``conversations.replies``) and records what it
finds instead of posting twice. History takes a channel *ID* while rules name ``#name``s: IDs are
learned from post answers, and a process that never had one for the channel (its first post timed
out, or it started after a crash) looks the name up with ``conversations.list``.

A postmortem draft (kind ``incident.postmortem``, :mod:`bot.notify.slack_postmortem`) goes to the
incident's room: a summary message, the Markdown file and charts in its thread, each sent once.

The weekly alert review (kind ``review.weekly``, no alert; :mod:`bot.review.weekly`) is one
message to ``payload["channel"]``: a header with the title and the review as a code block, cut
into sections of at most 3,000 characters. It carries metadata naming its outbox row, and a retry
looks for it in the channel's history (from the row's creation) before posting again, as root
posts do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine

from bot.alerts import store
from bot.alerts.lifecycle import Alert
from bot.clock import Clock, ensure_utc
from bot.config.loader import Config
from bot.errors import DeliveryError
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident
from bot.notify import slack_incident as view
from bot.notify import slack_replies as replies
from bot.notify.links import alert_links
from bot.notify.notifier import THREAD_NOTE, Notification
from bot.notify.slack_api import ChannelPacer, Location, api_error, find_in_history, make_client, metadata_names
from bot.notify.slack_blocks import alert_message
from bot.notify.slack_message import HISTORY_PAGES, LOOKBACK, record
from bot.notify.slack_notes import reply_with_note_button, wants_note
from bot.notify.slack_postmortem import POSTMORTEM, Drafts, PostmortemMessages
from bot.notify.slack_replies import page_result_reply, state_reply
from bot.notify.slack_review import REVIEW, REVIEW_EVENT, review_blocks
from bot.notify.slack_rooms import RoomDelivery
from bot.observability import Metrics
from bot.settings import Settings
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow

__all__ = [
    "REVIEW",
    "REVIEW_EVENT",
    "ChannelPacer",
    "Location",
    "SlackNotifier",
    "api_error",
    "make_client",
    "review_blocks",
]

log = logging.getLogger(__name__)

FIRED = "alert.fired"
REMINDED = "incident.reminded"
RESOLVES = frozenset({"incident.resolved", "incident.auto_resolved", "alert.resolved", "alert.auto_resolved"})
PAGE_RESULT = "alert.page_result"
"""What PagerDuty did with a page (``bot.app``): a thread reply only, the root message is left as it is."""


class SlackNotifier(RoomDelivery, PostmortemMessages):
    """The ``slack`` notifier of the outbox (see the module docstring for what it promises)."""

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
        drafts: Drafts | None = None,
    ) -> SlackNotifier:
        if settings.slack_bot_token is None:
            raise ValueError("SLACK_BOT_TOKEN is not set; Slack delivery needs the bot token")
        token = settings.slack_bot_token.get_secret_value()
        client = make_client(token, base_url=settings.slack_api_url, timeout=timeout)
        notifier = cls(client, engine=engine, config=config, clock=clock, metrics=metrics)
        notifier.drafts = drafts
        return notifier

    def send(self, notification: Notification) -> None:
        """Bring the incident's root message up to date (posting it first if it has none) and say
        what changed in its thread. Raises DeliveryError; the outbox retries."""
        note = notification
        if note.kind == REVIEW:
            self._post_review(note)
            return
        if note.kind == THREAD_NOTE:
            self._thread_note(note)
            return
        if note.kind.startswith("room."):
            self._room(note)
            return
        if note.kind == POSTMORTEM:
            self._postmortem(note)
            return
        if not note.kind.startswith(("alert.", "incident.")):
            raise DeliveryError(f"Slack cannot deliver {note.kind!r}", retryable=False)
        with open_session(self._engine) as s:
            alert = store.get(s, note.alert_id) if note.alert_id is not None else None
            incident_id = _incident_id(note, alert)
            incident = incident_store.get(s, incident_id) if incident_id is not None else None
            where = incident_store.slack_message(s, incident_id) if incident_id is not None else None
        config = self._config()
        if incident is None:
            self._legacy(alert, note, config)
            return
        if note.kind == PAGE_RESULT:
            self._page_result(incident, where, note)
            return
        if note.kind == FIRED and alert is not None:
            self._fired(incident, alert, where, note, config)
            return
        if where is None:  # its post failed for good earlier: this change posts the root
            where = self._root(incident, note, config)
        else:
            self._refresh(incident, where, config)
        at = note.payload.get("at")
        now = ensure_utc(datetime.fromisoformat(at)) if isinstance(at, str) else self._clock.now()
        blocks = None
        current = incident
        if note.kind.startswith("incident.") or note.kind in RESOLVES:  # as the change left it, once
            with open_session(self._engine) as s:
                current = incident_store.get(s, incident.id or 0) or incident
        if note.kind.startswith("incident."):
            text = replies.incident_reply(current, note.kind.removeprefix("incident."), dict(note.payload), now=now)
            blocks = replies.reminder_blocks(current, text) if note.kind == REMINDED else None
        elif alert is not None:
            text = state_reply(
                alert,
                note.kind.removeprefix("alert."),
                str(note.payload.get("actor") or ""),
                now,
                escalation=note.payload.get("escalation"),
                paged=bool(note.payload.get("paged_now")),
            )
            text = replies.named(alert, text) if self._several(incident) else text
        else:
            raise DeliveryError(f"{note.kind} of outbox row {note.id} names no alert", retryable=False)
        self._reply(where, note, text, blocks=blocks or _note_button(current, alert, note.kind, text))
        if incident.declared_at is not None:
            self._in_room(incident, note, text)

    def _legacy(self, alert: Alert | None, note: Notification, config: Config) -> None:
        """A change of an alert posted before incidents (it joined none): its own message is
        updated in the per-alert layout, whose buttons still work, and the change said in its thread."""
        with open_session(self._engine) as s:
            where = store.slack_message(s, alert.id or 0) if alert is not None else None
        if alert is None or where is None or note.kind in (FIRED, PAGE_RESULT):
            raise DeliveryError(f"{note.kind} of outbox row {note.id} names no incident", retryable=False)
        links = alert_links(config, model=alert.model, rule=alert.rule, values=alert.values)
        text, blocks = alert_message(alert, now=self._clock.now(), runbook=view.has_runbook(alert, config), links=links)
        if not self._unchanged(where, text, blocks):
            channel, ts = where
            self._call(
                "chat.update", lambda: self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
            )
            self._remember(where, text, blocks)
        now = self._clock.now()
        actor = str(note.payload.get("actor") or "")
        self._reply(where, note, state_reply(alert, note.kind.removeprefix("alert."), actor, now))

    # ------------------------------------------------------------------ fired: skip, join or post

    def _fired(
        self, incident: Incident, alert: Alert, where: Location | None, note: Notification, config: Config
    ) -> None:
        if where is None:
            self._root(incident, note, config)
            return
        with open_session(self._engine) as s, s.begin():
            recorded = store.slack_message(s, alert.id or 0)
            joined = recorded is None and record(s, alert, where)
        if recorded is not None and note.attempts == 0:
            log.debug("alert %s is already in Slack message %s (posted with its incident)", alert.id, recorded[1])
            return
        if recorded is not None:
            # an earlier attempt recorded the message and may have died before updating it or replying
            posted = replies.posted_at(recorded[1])
            joined = posted is not None and posted < (alert.fired_at or alert.started_at)
        members = self._refresh(incident, where, config)
        if not joined:
            return
        log.debug("alert %s joins the Slack message %s of incident %s", alert.id, where[1], incident.id)
        refired = [alert] if any(m.key == alert.key and m.id != alert.id for m in members) else []
        text = replies.also_firing([alert], refired=refired)
        self._reply(where, note, text, broadcast=replies.louder([alert], members))
        if incident.declared_at is not None:
            self._in_room(incident, note, text)

    def _several(self, incident: Incident) -> bool:
        with open_session(self._engine) as s:
            return len(view.newest_per_key(incident_store.alerts(s, incident.id or 0))) > 1

    def _thread_note(self, note: Notification) -> None:
        """Say ``payload["text"]`` under the message ``payload["channel"]`` / ``["thread_ts"]``, once."""
        channel, ts, text = (note.payload.get(k) for k in ("channel", "thread_ts", "text"))
        if not (isinstance(channel, str) and isinstance(ts, str) and isinstance(text, str) and text):
            raise DeliveryError(f"outbox row {note.id}: a thread note needs channel, thread_ts, text", retryable=False)
        self._reply((channel, ts), note, text)

    def _page_result(self, incident: Incident, where: Location | None, note: Notification) -> None:
        """Say in the incident's thread whether PagerDuty took its page. The incident's root goes
        first (the outbox keeps an incident's notifications in order), so no root means it failed."""
        if where is None:
            raise DeliveryError(f"incident {incident.id} has no Slack message to reply under", retryable=False)
        self._reply(where, note, page_result_reply(note.payload))

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


def _incident_id(note: Notification, alert: Alert | None) -> int | None:
    """The incident a notification is about: ``incident.*`` payloads name it, alerts know theirs."""
    named = note.payload.get("incident_id")
    if isinstance(named, int) and not isinstance(named, bool):
        return named
    return alert.incident_id if alert is not None else None


def _note_button(current: Incident, alert: Alert | None, kind: str, text: str) -> list[dict[str, Any]] | None:
    """The reply of the resolve that ended the incident, when nobody wrote a note: it offers
    **Add resolution note** (:mod:`bot.notify.slack_notes`)."""
    if kind not in RESOLVES or not wants_note(current):
        return None
    if alert is not None and alert.resolved_at != current.resolved_at:
        return None  # an alert closed on its own; the incident ended later
    return reply_with_note_button(text, current.id)
