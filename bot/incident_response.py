"""Incident response use cases: declare an incident (its room), take command, post an update, resolve.

Like :class:`bot.service.AlertService` (whose engine, clock, configuration and :class:`Recorder`
it shares): load → decide with the pure core (:mod:`bot.incidents.response`) → save → enqueue,
one transaction each, retried on a concurrent change (:func:`bot.recording.retried`).

Declaring is a versioned change of the incident, so two people (a double click, a retry, two
replicas) declaring at once make one room: the loser's retry re-reads the incident, finds it
declared and is refused with where the room is. The room itself is made by the Slack notifier
from outbox rows enqueued in the same transaction as the declaration -- ``room.create``,
``room.invite``, ``room.topic``, ``room.card`` -- each with an idempotency key naming the
incident, so a crash or a retried declaration never makes a second channel
(:mod:`bot.notify.slack_rooms` adopts a channel an earlier attempt created).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlmodel import Session

from bot.alerts.lifecycle import Alert
from bot.config.choices import model_channel
from bot.config.loader import Config
from bot.incidents import response
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident, IncidentEvent, IncidentEventKind, IncidentState, IncidentTransition
from bot.notify.outbox import enqueue
from bot.recording import retried
from bot.service import AlertService
from bot.severity import Severity
from bot.slo.service import slo_dashboards
from bot.storage.database import session as open_session

log = logging.getLogger(__name__)

ROOM_CHANNEL = "slack"
"""The notifier channel that makes rooms: only Slack has channels to make."""
ROOM_STEPS = ("create", "invite", "topic", "card")
"""The room's outbox rows, in the order the outbox delivers them (one incident's rows go in order)."""
HAND_MADE_SEVERITY = Severity.P2
"""A hand-made incident (declared with no alert behind it) is medium until someone says otherwise."""
TOPIC_LIMIT = 250
"""Slack's longest channel topic."""


class IncidentResponse:
    """The room use cases; built on the :class:`AlertService` whose recorder it shares."""

    def __init__(self, service: AlertService) -> None:
        self._service = service
        self._engine = service.engine
        self._clock = service.clock
        self._config = service.config
        self._recorder = service.recorder
        self._makes_rooms = ROOM_CHANNEL in service.channels

    # ------------------------------------------------------------------ declare

    def declare(
        self,
        incident_id: int | None,
        *,
        actor: str,
        model: str | None = None,
        title: str | None = None,
        channel: str | None = None,
    ) -> Incident:
        """Declare incident ``incident_id``; without one, the open incident of ``model`` (or a new
        hand-made one, titled ``title``, told in ``channel`` or the model's channel). Raises
        ActionRefused (already declared: who and where the room is), LookupError, ConcurrentChange."""
        config = self._config()
        target = incident_id if incident_id is not None else self._open_for_model(model)
        budgets = self._budgets(config, target, model)

        def attempt(s: Session) -> Incident:
            now = self._clock.now()
            if target is None:
                current = self._open_by_hand(s, config, actor=actor, model=model, title=title, channel=channel, now=now)
            else:
                found = incident_store.get(s, target)
                if found is None:
                    raise LookupError(f"no incident with id {target}")
                current = found
            members = incident_store.alerts(s, current.id or 0)
            lead_model, rule = _subject(current, members, model)
            taken = incident_store.rooms_named(s, config.settings.incident_channel_prefix)
            name = response.room_name(
                config.settings.incident_channel_prefix, day=now.date(), model=lead_model, rule=rule, taken=taken
            )
            change = response.declare(current, actor=actor, room=name, now=now)
            saved = self._recorder.incident(s, change, config, now, by_person=True)
            self._enqueue_room(s, saved, config, oncall=_oncall(config, lead_model, rule), budgets=budgets, now=now)
            return saved

        what = f"incident {target}" if target is not None else f"a new incident for {model or 'this channel'}"
        return retried(self._engine, attempt, gives_up=f"{what} keeps changing; try again")

    def _open_for_model(self, model: str | None) -> int | None:
        if model is None:
            return None
        with open_session(self._engine) as s:
            found = incident_store.open_for_model(s, model)
        return found.id if found is not None else None

    def _budgets(self, config: Config, incident_id: int | None, model: str | None) -> list[str]:
        """Each SLO's error budget left for the incident's model, as ``/slo status`` computes it
        (read before the transaction: it opens its own session)."""
        if model is None and incident_id is not None:
            with open_session(self._engine) as s:
                found = incident_store.get(s, incident_id)
                members = incident_store.alerts(s, incident_id) if found else []
            model = _subject(found, members, None)[0] if found else None
        if not model:
            return []
        try:
            boards = slo_dashboards(self._engine, config, self._clock.now(), model=model)
        except Exception:  # a card without budgets beats a declaration refused over them
            log.warning("incident room: the error budgets of %s could not be read", model, exc_info=True)
            return []
        return [f"{row.spec.label}: {row.budget_text}" for board in boards for row in board.rows]

    def _open_by_hand(
        self,
        s: Session,
        config: Config,
        *,
        actor: str,
        model: str | None,
        title: str | None,
        channel: str | None,
        now: datetime,
    ) -> Incident:
        """A new incident with no alert behind it: a person saw something the rules did not. Its
        group key cannot collide with an alert group's (nor another hand-made one's)."""
        where = channel or (model_channel(config, model) if model else config.settings.default_channel)
        said = (title or "").strip() or (f"Declared on {model}" if model else "Declared incident")
        incident = Incident(
            group_key=f"{where}|declared:{uuid.uuid4().hex[:16]}",
            channel=where,
            severity=HAND_MADE_SEVERITY,
            state=IncidentState.FIRING,
            opened_at=now,
            title=said[:200],
            labels={"model": model} if model else {},
        )
        opened = IncidentTransition(incident, IncidentEvent(IncidentEventKind.OPENED, actor, now, "declared by hand"))
        return self._recorder.incident(s, opened, config, now, model=model or "", by_person=True)

    def _enqueue_room(
        self, s: Session, incident: Incident, config: Config, *, oncall: str | None, budgets: list[str], now: datetime
    ) -> None:
        """The room's outbox rows, in the declaration's transaction (see the module docstring)."""
        if not self._makes_rooms:
            log.info("incident %s declared without a Slack channel to make its room in", incident.id)
            return
        people = [p for p in (incident.declared_by, incident.acknowledged_by, incident.commander) if _is_user(p)]
        base: dict[str, Any] = {
            "incident_id": incident.id,
            "room": incident.room,
            "private": config.settings.incident_channel_private,
        }
        extra: dict[str, dict[str, Any]] = {
            "create": {},
            "invite": {"users": list(dict.fromkeys(people)), "usergroup": oncall},
            "topic": {"topic": room_topic(incident)},
            "card": {"budgets": budgets},
        }
        for step in ROOM_STEPS:
            enqueue(
                s,
                channel=ROOM_CHANNEL,
                kind=f"room.{step}",
                payload={**base, **extra[step]},
                idempotency_key=f"{ROOM_CHANNEL}:room:{incident.id}:{step}",
                now=now,
                incident_id=incident.id,
            )

    # ------------------------------------------------------------------ in the room

    def take_command(self, incident_id: int, *, actor: str, commander: str | None = None) -> Incident:
        """``commander`` (default: ``actor``, taking it) leads the response; the root and the card show it."""
        chosen = commander or actor
        return self._service.change_incident(
            incident_id, lambda i, now: response.take_command(i, actor=actor, commander=chosen, now=now)
        )

    def post_update(self, incident_id: int, *, actor: str, text: str) -> Incident:
        """A status update, said in the room and in the alert's thread (the ``incident.update`` row)."""
        update = partial(response.post_update, actor=actor, text=text)
        return self._service.change_incident(incident_id, lambda current, now: update(current, now=now))

    def resolve(self, incident_id: int, *, actor: str) -> Incident:
        """The whole incident is over: the alert service resolves it and its open alerts."""
        return self._service.resolve_incident(incident_id, actor=actor)


def room_topic(incident: Incident) -> str:
    """The room's topic: severity, what it is about, and which incident (plain text: topics are not mrkdwn)."""
    text = f"{incident.severity.value} · {incident.title or 'incident'} · incident-bot incident #{incident.id}"
    return text[:TOPIC_LIMIT]


def _subject(incident: Incident, members: Sequence[Alert], model: str | None) -> tuple[str, str]:
    """The model and rule a room is named after: its first alert's (a storm's rule), else its labels."""
    lead = members[0] if members else None
    chosen = lead.model if lead else (model or incident.labels.get("model", ""))
    rule = incident.storm_rule or (lead.rule if lead else incident.labels.get("rule", ""))
    return chosen, rule


def _oncall(config: Config, model: str, rule: str) -> str | None:
    """The user group invited to the room: the rule's ``oncall:``, else the model's."""
    configured = config.rule(rule) if rule else None
    known = config.models.get(model) if model else None
    return (configured.oncall if configured else None) or (known.oncall if known else None)


def _is_user(who: str | None) -> bool:
    """A Slack user id (``U…``/``W…``): the actors recorded for the system or a rule are not invited."""
    return bool(who) and str(who)[:1] in "UW" and str(who)[1:].isalnum()
