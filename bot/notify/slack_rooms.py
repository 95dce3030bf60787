"""Slack delivery of an incident's room: create the channel, invite, set the topic, pin the card.

:class:`RoomDelivery` is the part of :class:`bot.notify.slack.SlackNotifier` that delivers the
``room.*`` rows a declaration enqueues (:mod:`bot.incident_response`) and keeps the room told
of the incident afterwards. Every step may be retried by the outbox, and a process may die
between any two calls, so each step finds what an earlier attempt did before doing it again:

* ``room.create``: ``conversations.create``, then ``conversations.setPurpose`` with a marker
  naming the incident (:func:`marker`), then the room is recorded on the incident (first writer
  wins). A ``name_taken`` answer is first checked: a channel whose purpose carries our marker,
  or one this bot created with no purpose yet that no incident has recorded (an attempt that died
  right after creating it), is *adopted*; a channel of someone else's makes the name take
  ``-2``, ``-3`` …;
* ``room.invite``: the declarer, the acknowledger and the members of the model's ``oncall:``
  user group (``S…`` or ``@handle``), in one ``conversations.invite`` (``already_in_channel`` is
  success);
* ``room.topic``: ``conversations.setTopic``;
* ``room.card``: the card (:mod:`bot.notify.slack_room_card`), posted with metadata naming the
  incident so a retry finds it in the room's history instead of posting twice, then
  ``pins.add`` (``already_pinned`` is success).

Afterwards each change of a declared incident is also said in its room, once (:meth:`_echo`),
and the card is re-rendered.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from bot.config.loader import Config
from bot.errors import DeliveryError
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident
from bot.incidents.response import numbered
from bot.notify.links import alert_links
from bot.notify.notifier import Notification
from bot.notify.slack_api import find_channel_id, find_in_history, metadata_names
from bot.notify.slack_incident import has_runbook
from bot.notify.slack_message import HISTORY_PAGES, LOOKBACK, IncidentMessage, shipped_before
from bot.notify.slack_room_card import room_card
from bot.storage.database import session as open_session

log = logging.getLogger("bot.notify.slack")

ROOM_KINDS = ("room.create", "room.invite", "room.topic", "room.card")
CARD_EVENT = "incident_bot_room_card"
ECHO_EVENT = "incident_bot_room_echo"
NAME_ATTEMPTS = 20
"""How many numbered names (``-2`` … ``-20``) a room tries before giving up on ``name_taken``."""
INVITE_BATCH = 1000
"""Slack invites at most this many users per ``conversations.invite``."""
ALREADY_FINE = frozenset({"already_in_channel", "cant_invite_self", "already_pinned"})


def marker(incident_id: int | None) -> str:
    """The purpose of a room: says whose it is, so a retry recognises a channel it created."""
    return f"incident-bot incident #{incident_id}"


class RoomDelivery(IncidentMessage):
    """Room rows, and the room's share of every later notification of a declared incident."""

    def _room(self, note: Notification) -> None:
        """Deliver one ``room.*`` row. Raises DeliveryError; the outbox retries."""
        incident_id = note.payload.get("incident_id")
        with open_session(self._engine) as s:
            incident = incident_store.get(s, incident_id) if isinstance(incident_id, int) else None
        if incident is None:
            raise DeliveryError(f"outbox row {note.id}: {note.kind} names no incident", retryable=False)
        step = note.kind.removeprefix("room.")
        if step == "create":
            self._create(incident, note.payload)
            return
        if incident.room_id is None:  # the outbox keeps the incident's rows in order: creation failed for good
            raise DeliveryError(f"incident {incident.id} has no room for {note.kind}", retryable=False)
        if step == "invite":
            self._invite(incident, note.payload)
        elif step == "topic":
            topic = str(note.payload.get("topic") or "")
            self._call(
                "conversations.setTopic",
                lambda: self._client.conversations_setTopic(channel=incident.room_id or "", topic=topic),
            )
        else:
            self._card(incident, note)

    # ------------------------------------------------------------------ create

    def _create(self, incident: Incident, payload: Mapping[str, Any]) -> None:
        if incident.room_id is not None:
            log.info("incident %s already has its room %s", incident.id, incident.room_id)
            return
        base = str(payload.get("room") or incident.room or f"incident-{incident.id}")
        private = bool(payload.get("private"))
        for n in range(1, NAME_ATTEMPTS + 1):
            name = numbered(base, n)
            room_id = self._create_or_adopt(incident, name, private=private)
            if room_id is not None:
                self._record_room(incident, room_id, name)
                return
        taken = f"incident {incident.id}: every name from {base} to -{NAME_ATTEMPTS} is taken"
        raise DeliveryError(taken, retryable=False)

    def _create_or_adopt(self, incident: Incident, name: str, *, private: bool) -> str | None:
        """The room's ID: a new channel ``name``, or one an earlier attempt made; None if ``name``
        belongs to someone else."""
        try:
            answer = self._call(
                "conversations.create", lambda: self._client.conversations_create(name=name, is_private=private)
            )
        except DeliveryError as exc:
            if exc.code != "name_taken":
                raise
            return self._adoptable(incident, name)
        room_id = str(answer["channel"]["id"])
        log.info("created the room #%s (%s) of incident %s", name, room_id, incident.id)
        self._mark(incident, room_id)
        return room_id

    def _mark(self, incident: Incident, room_id: str) -> None:
        purpose = marker(incident.id)
        self._call(
            "conversations.setPurpose",
            lambda: self._client.conversations_setPurpose(channel=room_id, purpose=purpose),
        )

    def _adoptable(self, incident: Incident, name: str) -> str | None:
        """The ID of the existing channel ``name`` if it is this incident's room from an attempt
        that died (see the module docstring), else None."""
        found = find_channel_id(self._client, name, caller=self._call)
        if found is None:  # private, or archived: not one the bot can use
            return None
        info = self._call("conversations.info", lambda: self._client.conversations_info(channel=found))
        channel = info.get("channel") or {}
        purpose = str((channel.get("purpose") or {}).get("value") or "")
        if purpose == marker(incident.id):
            log.info("incident %s: adopting #%s (%s), made by an earlier attempt", incident.id, name, found)
            return found
        with open_session(self._engine) as s:
            claimed = incident_store.by_room(s, found) is not None
        if not purpose and not claimed and channel.get("creator") == self._bot_user_id():
            log.info("incident %s: adopting #%s (%s), created by an attempt that died", incident.id, name, found)
            self._mark(incident, found)
            return found
        log.info("incident %s: #%s is someone else's channel; trying the next number", incident.id, name)
        return None

    _bot_user: str | None = None
    """The bot's own user id (``auth.test``), learned once: it is not invited, and it made the rooms."""

    def _bot_user_id(self) -> str:
        if self._bot_user is None:
            self._bot_user = str(self._call("auth.test", self._client.auth_test).get("user_id") or "")
        return self._bot_user

    def _record_room(self, incident: Incident, room_id: str, name: str) -> None:
        with open_session(self._engine) as s, s.begin():
            won = incident_store.record_room(s, incident.id or 0, room_id=room_id, name=name)
            current = incident_store.get(s, incident.id or 0) or incident
        if not won and current.room_id != room_id:
            log.warning(
                "incident %s: two rooms were made; keeping %s, %s is a duplicate", incident.id, current.room_id, room_id
            )
        where = self._root_of(current)
        if where is not None:  # the root now links the room
            self._refresh(current, where, self._config())

    def _root_of(self, incident: Incident) -> tuple[str, str] | None:
        with open_session(self._engine) as s:
            return incident_store.slack_message(s, incident.id or 0)

    # ------------------------------------------------------------------ invite

    def _invite(self, incident: Incident, payload: Mapping[str, Any]) -> None:
        listed = payload.get("users")
        users = [str(u) for u in listed] if isinstance(listed, list) else []
        group = payload.get("usergroup")
        if isinstance(group, str) and group:
            users += self._group_members(group)
        wanted = [u for u in dict.fromkeys(users) if u != self._bot_user_id()]
        room = incident.room_id or ""
        for start in range(0, len(wanted), INVITE_BATCH):
            batch = ",".join(wanted[start : start + INVITE_BATCH])
            try:
                invite = partial(self._client.conversations_invite, channel=room, users=batch, force=True)
                self._call("conversations.invite", invite)
            except DeliveryError as exc:
                if exc.code not in ALREADY_FINE:
                    raise
        log.info("incident %s: invited %d people to its room %s", incident.id, len(wanted), room)

    def _group_members(self, group: str) -> list[str]:
        """The members of user group ``S…`` or ``@handle``; a group Slack does not know is logged
        and skipped (the people are still invited)."""
        try:
            group_id = group if not group.startswith("@") else self._group_id(group.removeprefix("@"))
            if group_id is None:
                log.warning("no Slack user group @%s: its members are not invited", group.removeprefix("@"))
                return []
            answer = self._call("usergroups.users.list", lambda: self._client.usergroups_users_list(usergroup=group_id))
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("cannot read the members of user group %s (%s): they are not invited", group, exc)
            return []
        return [str(u) for u in answer.get("users") or []]

    def _group_id(self, handle: str) -> str | None:
        answer = self._call("usergroups.list", self._client.usergroups_list)
        return next((str(g["id"]) for g in answer.get("usergroups") or [] if g.get("handle") == handle), None)

    # ------------------------------------------------------------------ the card

    def _card(self, incident: Incident, note: Notification) -> None:
        found = self._find_card(incident) if note.attempts > 0 else None
        budgets = note.payload.get("budgets")
        text, blocks = self._render_card(incident, [str(b) for b in budgets] if isinstance(budgets, list) else [])
        room = incident.room_id or ""
        if found is None:
            metadata = {"event_type": CARD_EVENT, "event_payload": {"incident_id": incident.id, "budgets": budgets}}
            what = f"the card of incident {incident.id}"
            ts = self._post(room, text=text, blocks=blocks, metadata=metadata, what=what)[1]
        else:
            ts = str(found["ts"])
        self._remember((room, ts), text, blocks)
        try:
            self._call("pins.add", lambda: self._client.pins_add(channel=room, timestamp=ts))
        except DeliveryError as exc:
            if exc.code not in ALREADY_FINE:
                raise

    def _render_card(self, incident: Incident, budgets: list[str]) -> tuple[str, list[dict[str, Any]]]:
        config: Config = self._config()
        with open_session(self._engine) as s:
            current = incident_store.get(s, incident.id or 0) or incident
            members = incident_store.alerts(s, incident.id or 0)
            shipped = shipped_before(s, current, members, config)
        lead = members[0] if members else None
        links = alert_links(config, model=lead.model, rule=lead.rule, values=lead.values) if lead else []
        runbook = lead is not None and has_runbook(lead, config)
        return room_card(
            current, members, now=self._clock.now(), budgets=budgets, changes=shipped, links=links, runbook=runbook
        )

    def _find_card(self, incident: Incident) -> Mapping[str, Any] | None:
        ours = partial(metadata_names, event_type=CARD_EVENT, incident_id=incident.id)
        since = (incident.declared_at or incident.opened_at) - LOOKBACK
        return find_in_history(
            self._client, incident.room_id or "", oldest=since, match=ours, pages=HISTORY_PAGES, caller=self._call
        )

    # ------------------------------------------------------------------ later changes

    def _in_room(self, incident: Incident, note: Notification, text: str) -> None:
        """Say a change of a declared incident in its room too (once), and bring the card up to date."""
        with open_session(self._engine) as s:
            current = incident_store.get(s, incident.id or 0) or incident
        if current.room_id is None:
            return
        self._echo(current, note, text)
        card = self._find_card(current)
        if card is None:
            return
        budgets = ((card.get("metadata") or {}).get("event_payload") or {}).get("budgets")
        text, blocks = self._render_card(current, [str(b) for b in budgets] if isinstance(budgets, list) else [])
        where = (current.room_id, str(card["ts"]))
        if not self._unchanged(where, text, blocks):
            self._call(
                "chat.update", lambda: self._client.chat_update(channel=where[0], ts=where[1], text=text, blocks=blocks)
            )
            self._remember(where, text, blocks)

    def _echo(self, incident: Incident, note: Notification, text: str) -> None:
        room = incident.room_id or ""
        ours = partial(metadata_names, event_type=ECHO_EVENT, outbox_id=note.id)
        since = (incident.declared_at or incident.opened_at) - LOOKBACK
        if note.attempts > 0 and find_in_history(
            self._client, room, oldest=since, match=ours, pages=HISTORY_PAGES, caller=self._call
        ):
            return
        metadata = {"event_type": ECHO_EVENT, "event_payload": {"incident_id": incident.id, "outbox_id": note.id}}
        self._post(room, text=text, metadata=metadata, what=f"{note.kind} of incident {incident.id} in its room")
