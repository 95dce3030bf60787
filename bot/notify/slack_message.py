"""An incident's root message and its thread: posted once, kept equal to the database.

:class:`IncidentMessage` is the part of :class:`bot.notify.slack.SlackNotifier` that owns the
message itself (the notifier decides which message a notification belongs to and what to say):

* the root is posted holding every alert the incident has, recorded on the incident and its
  alerts (first writer wins), and re-rendered from the current rows on every change;
* crash safety (SPEC §6): before posting a root, a retry -- or any delivery of an incident whose
  earlier Slack rows were tried -- looks for it in ``conversations.history`` by its metadata,
  and a thread reply in ``conversations.replies``, and records what it finds instead of posting
  twice;
* coalescing: a ``chat.update`` whose rendering equals the one this process last sent for that
  message (within :data:`COALESCE_FOR`) is not sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.alerts import store
from bot.alerts.lifecycle import Alert, AlertState
from bot.changes.events import Change
from bot.changes.log import made_before
from bot.clock import Clock
from bot.config.loader import Config
from bot.errors import DeliveryError
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident
from bot.notify import slack_incident as view
from bot.notify.notifier import Notification
from bot.notify.slack_api import (
    ChannelPacer,
    Location,
    SlackPoster,
    find_in_history,
    metadata_alert_ids,
    metadata_names,
    thread_has,
)
from bot.notify.slack_notes import seen_before_line
from bot.notify.thread_updates import broadcasts, says_in_thread
from bot.observability import Metrics
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow

log = logging.getLogger(__name__)

INCIDENT_EVENT = "incident_bot_incident"
"""The metadata event type of an incident's root message."""
REPLY_EVENT = "incident_bot_reply"
LOOKBACK = timedelta(minutes=1)
CHANGES_SHOWN = 3
"""The changes an incident's message names at most: the latest is the one people ask about."""
"""How far before the incident opened the history search starts: tolerance for clock skew."""
HISTORY_PAGES = 5
COALESCE_FOR = 60.0
"""Seconds a rendering this process sent stays trusted: an update equal to it is skipped. Short,
so a stale rendering another replica sent meanwhile is overwritten at the next change."""
RENDERINGS = 1000
"""Messages whose last rendering is remembered."""


class IncidentMessage(SlackPoster):
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
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            client,
            pacer=pacer,
            channel_ids=channel_ids,
            metrics=metrics,
            default_channel=lambda: config().settings.default_channel,
        )
        self._engine = engine
        self._config = config
        self._clock = clock
        self._monotonic = monotonic
        self._sent: OrderedDict[Location, tuple[float, str, list[dict[str, Any]]]] = OrderedDict()
        self._sent_lock = threading.Lock()

    # ------------------------------------------------------------------ root message

    def _root(self, incident: Incident, note: Notification, config: Config) -> Location:
        """The incident's root: one an earlier attempt posted, if it can be found, else a new one."""
        target = self._target(incident, note.payload)
        found = self._found_earlier(incident, note, target)
        if found is not None:
            self._refresh(incident, found, config)
            return found
        return self._post_root(incident, note, config, target=target)

    def _post_root(self, incident: Incident, note: Notification, config: Config, *, target: str) -> Location:
        """Post the incident's root holding every alert it has; record it for the incident and them."""
        with open_session(self._engine) as s:
            members = incident_store.alerts(s, incident.id or 0)
            recovered = _recovered(s, members)
            shipped = shipped_before(s, incident, members, config)
            seen = _seen_before(s, incident, members)
        text, blocks = view.render(
            incident, members, now=self._clock.now(), config=config, recovered=recovered, changes=shipped, seen=seen
        )
        ids = [m.id for m in _by_id(members)]
        payload: dict[str, Any] = {"incident_id": incident.id, "outbox_id": note.id, "alert_ids": ids}
        metadata = {"event_type": INCIDENT_EVENT, "event_payload": payload}
        what = f"incident {incident.id} (alerts {ids})"
        posted = self._post(target, text=text, blocks=blocks, metadata=metadata, what=what)
        self._remember(posted, text, blocks)
        with open_session(self._engine) as s, s.begin():
            won = incident_store.record_slack_message(s, incident.id or 0, channel=posted[0], ts=posted[1])
            if won:
                for member in _by_id(members):
                    record(s, member, posted)
            winner = incident_store.slack_message(s, incident.id or 0)
        if not won and winner is not None and winner != posted:
            _duplicate(incident, winner, posted)
            self._refresh(incident, winner, config)
            return winner
        if incident.storm_rule and not view.models_fit(members):
            for part, reply in enumerate(view.model_list_replies(members)):
                self._reply(posted, note, reply, part=f"models{part}")
        return posted

    def _found_earlier(self, incident: Incident, note: Notification, target: str) -> Location | None:
        """A root of this incident that an earlier attempt posted -- this row's, on a retry, or an
        earlier row of the incident that was tried and then failed -- recorded for the incident and
        the alerts it lists. Searched only when such an attempt exists, from the incident's opening."""
        if note.attempts == 0 and not self._tried_before(incident, note):
            return None
        channel_id = self._channel_id(target) or self._look_up_channel(target)
        if channel_id is None:
            log.warning("incident %s: the ID of %s is not known, so no earlier post can be sought", incident.id, target)
            return None
        ours = partial(metadata_names, event_type=INCIDENT_EVENT, incident_id=incident.id)
        try:
            message = find_in_history(
                self._client,
                channel_id,
                oldest=incident.opened_at - LOOKBACK,
                match=ours,
                pages=HISTORY_PAGES,
                caller=self._call,
            )
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("incident %s: cannot search %s for an earlier post (%s); posting", incident.id, target, exc)
            return None
        if message is None:
            return None
        where = (channel_id, str(message["ts"]))
        log.info("incident %s: found an earlier Slack post %s; not posting again", incident.id, where[1])
        with open_session(self._engine) as s, s.begin():
            incident_store.record_slack_message(s, incident.id or 0, channel=where[0], ts=where[1])
            for alert_id in sorted(metadata_alert_ids(message)):  # lock order: see _by_id
                store.record_slack_message(s, alert_id, channel=where[0], ts=where[1])
            recorded = incident_store.slack_message(s, incident.id or 0)
        if recorded is not None and recorded != where:
            _duplicate(incident, recorded, where)
        return recorded or where

    def _tried_before(self, incident: Incident, note: Notification) -> bool:
        """Whether an earlier Slack row of the incident was tried: its post may be in Slack."""
        with open_session(self._engine) as s:
            query = select(OutboxRow.id).where(
                OutboxRow.incident_id == incident.id,
                OutboxRow.channel == self.channel,
                col(OutboxRow.id) < note.id,
                col(OutboxRow.last_error).is_not(None),
            )
            return s.exec(query.limit(1)).first() is not None

    def _refresh(self, incident: Incident, where: Location, config: Config) -> list[Alert]:
        """Re-render the incident's root from the database; return the incident's alerts. An
        update equal to the last one this process sent for the message is not sent."""
        with open_session(self._engine) as s:
            current = incident_store.get(s, incident.id or 0) or incident
            members = incident_store.alerts(s, incident.id or 0)
            recovered = _recovered(s, members)
            shipped = shipped_before(s, incident, members, config)
            seen = _seen_before(s, incident, members)
        text, blocks = view.render(
            current, members, now=self._clock.now(), config=config, recovered=recovered, changes=shipped, seen=seen
        )
        if self._unchanged(where, text, blocks):
            log.debug("incident %s: Slack message %s already shows this; no update", incident.id, where[1])
            return members
        channel, ts = where
        self._call("chat.update", lambda: self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks))
        self._remember(where, text, blocks)
        return members

    def _remember(self, where: Location, text: str, blocks: list[dict[str, Any]]) -> None:
        with self._sent_lock:
            self._sent[where] = (self._monotonic(), text, blocks)
            self._sent.move_to_end(where)
            while len(self._sent) > RENDERINGS:
                self._sent.popitem(last=False)

    def _unchanged(self, where: Location, text: str, blocks: list[dict[str, Any]]) -> bool:
        with self._sent_lock:
            last = self._sent.get(where)
        return last is not None and self._monotonic() - last[0] < COALESCE_FOR and last[1:] == (text, blocks)

    # ------------------------------------------------------------------ thread replies

    def _reply(
        self,
        where: Location,
        note: Notification,
        text: str,
        *,
        broadcast: bool = False,
        part: str = "",
        blocks: list[dict[str, Any]] | None = None,
    ) -> None:
        channel, root_ts = where
        setting = self._config().settings.thread_updates
        if not part.startswith("models") and not says_in_thread(setting, note.kind, note.payload):
            log.debug("thread_updates: %s: outbox row %s (%s) is not said in the thread", setting, note.id, note.kind)
            return
        broadcast = broadcast and broadcasts(setting)
        if note.attempts > 0 and self._reply_exists(where, note, part):
            log.info("reply for outbox row %s is already in the thread", note.id)
            return
        event_payload: dict[str, Any] = {"alert_id": note.alert_id, "outbox_id": note.id}
        if part:
            event_payload["part"] = part
        metadata = {"event_type": REPLY_EVENT, "event_payload": event_payload}
        subject = f"alert {note.alert_id}" if note.kind.startswith("alert.") else "its incident"
        what = f"{note.kind.split('.', 1)[1]} reply for {subject}"
        self._post(
            channel, text=text, metadata=metadata, blocks=blocks, thread_ts=root_ts, broadcast=broadcast, what=what
        )

    def _reply_exists(self, where: Location, note: Notification, part: str = "") -> bool:
        try:
            expected: dict[str, Any] = {"outbox_id": note.id}
            if part:
                expected["part"] = part
            ours = partial(metadata_names, event_type=REPLY_EVENT, **expected)
            return thread_has(self._client, *where, ours, caller=self._call)
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("cannot read the thread %s/%s (%s); replying", *where, exc)
            return False

    def _target(self, incident: Incident, payload: Mapping[str, Any]) -> str:
        """Routing may name the channel (a quiet channel outside business hours); else the incident's."""
        chosen = payload.get("slack_channel")
        return chosen if isinstance(chosen, str) and chosen else incident.channel


def _by_id(alerts: Sequence[Alert]) -> list[Alert]:
    """Alerts in id order: every transaction that records several alerts' message locks their
    rows in the same order, so two replicas recording overlapping incidents cannot deadlock."""
    return sorted(alerts, key=lambda a: a.id or 0)


def record(session: Session, alert: Alert, where: Location) -> bool:
    """Record ``where`` as the alert's root message too (lookups by message find it); first writer wins."""
    return alert.id is not None and store.record_slack_message(session, alert.id, channel=where[0], ts=where[1])


def _duplicate(incident: Incident, kept: Location, extra: Location) -> None:
    log.warning("incident %s: two root messages were posted; keeping %s, %s is a duplicate", incident.id, kept, extra)


def shipped_before(s: Session, incident: Incident, members: Sequence[Alert], config: Config) -> list[Change]:
    """What shipped to the incident's models before it opened, as many as a message shows."""
    models = {m.model for m in members}
    return made_before(s, models, incident.opened_at, config.settings.change_window, limit=CHANGES_SHOWN)


def _seen_before(s: Session, incident: Incident, members: Sequence[Alert]) -> str:
    """The last resolved incidents of the same rule and model (a storm's fleet has no one model)."""
    if incident.storm_rule or not members:
        return ""
    lead = view.newest_per_key(members)[0]
    past = incident_store.resolved_for(s, rule=lead.rule, model=lead.model, before=incident.opened_at)
    return seen_before_line(past)


def _recovered(s: Session, members: Sequence[Alert]) -> dict[int, Mapping[str, object]]:
    """What the auto-resolved members recovered to (read only when there is one)."""
    resolved = [m.id for m in members if m.id is not None and m.state is AlertState.RESOLVED]
    return view.recovered_values(store.histories(s, resolved)) if resolved else {}
