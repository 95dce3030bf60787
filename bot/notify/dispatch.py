"""Dispatch: turn recorded alert and incident events into outbox rows, in the caller's transaction.

Routing (:mod:`bot.notify.routing`) decides who hears what; this stage writes it down as
self-contained notifications (the notifier needs nothing else to say what happened) with
idempotency keys that name the event, so a retried pass or sweep never enqueues twice. Rows of
an incident carry its id: the outbox delivers them in order per incident, root message first.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlmodel import Session, col, select

from bot.alerts import store as alert_store
from bot.alerts.lifecycle import Alert, Event
from bot.changes.events import Change, how_long_before
from bot.changes.log import made_before, made_before_each
from bot.config.durations import humanize
from bot.config.loader import Config
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident, IncidentEvent
from bot.notify.email_routing import EMAILED
from bot.notify.links import alert_links, to_payload
from bot.notify.outbox import release_held
from bot.notify.outbox_rows import Enqueued, add
from bot.notify.routing import EMAIL, PAGER, TRIGGERS, WEBHOOK_EVENT, Held, Routes
from bot.storage.tables import OutboxRow
from bot.storage.versioned import in_chunks

log = logging.getLogger(__name__)

Hold = Callable[[str, Alert, Event], timedelta]
"""An extra wait before an alert notification may be delivered, per channel."""


SHIPPED_SHOWN = 5
"""Changes a page lists under "shipped before"."""


def no_hold(_channel: str, _alert: Alert, _event: Event) -> timedelta:
    return timedelta(0)


class Dispatcher:
    def __init__(self, routes: Routes, *, hold: Hold = no_hold) -> None:
        self.routes = routes
        self._hold = hold

    def alert_event(
        self, s: Session, alert: Alert, event: Event, config: Config, now: datetime, *, silenced: bool, urgent: bool
    ) -> None:
        """Chat rows for one alert event (its section of the incident message, a thread reply)."""
        for row in self.alert_rows(alert, event, config, now, silenced=silenced, urgent=urgent):
            add(s, row)

    def alert_rows(
        self, alert: Alert, event: Event, config: Config, now: datetime, *, silenced: bool, urgent: bool
    ) -> list[Enqueued]:
        """The rows :meth:`alert_event` adds, for a caller that adds many at once (:func:`enqueue_many`)."""
        rows: list[Enqueued] = []
        for delivery in self.routes.for_alert(alert, event, config=config, now=now, silenced=silenced, urgent=urgent):
            if delivery.held is not Held.NONE:
                log.debug(
                    "alert %s %s to %s held: %s (%s)",
                    alert.id,
                    event.kind.value,
                    delivery.channel,
                    delivery.held.value,
                    humanize(delivery.hold),
                )
            rows.append(
                Enqueued(
                    channel=delivery.channel,
                    kind=f"alert.{event.kind.value}",
                    alert_id=alert.id,
                    incident_id=alert.incident_id,
                    payload={**notification_payload(alert, event), "links": _links(config, alert), **delivery.extra},
                    idempotency_key=f"{delivery.channel}:{alert.id}:{event.kind.value}:{alert.version}"[:300],
                    now=event.at,
                    not_before=event.at + max(delivery.hold, self._hold(delivery.channel, alert, event)),
                )
            )
        return rows

    def pages(self, incident: Incident, event: IncidentEvent, config: Config, *, model: str) -> list[str]:
        """The routing keys this incident event newly pages (record them before saving it)."""
        deliveries = self.routes.for_incident(incident, event, config=config, model=model, by_person=False)
        if event.kind not in TRIGGERS:
            return []
        return [str(d.extra.get("pagerduty_routing_key", "")) for d in deliveries if d.channel == PAGER]

    def incident_event(
        self,
        s: Session,
        incident: Incident,
        event: IncidentEvent,
        config: Config,
        now: datetime,
        *,
        model: str,
        paged_before: tuple[str, ...],
        by_person: bool,
        members: list[Alert] | None = None,
    ) -> None:
        """Pages, and chat rows for an escalation or a person's action on the whole incident. A page
        releases the incident's chat rows held for business hours: it is urgent now. ``members``:
        the incident's alerts, when the caller has just read them in this transaction."""
        reads = ReadNow(s, config)
        rows = self.incident_rows(
            incident,
            event,
            config,
            model=model,
            paged_before=paged_before,
            by_person=by_person,
            members=members,
            reads=reads,
        )
        for row in rows:
            add(s, row)
        if incident.id is not None and pages_now(rows):
            release_held(s, incident_ids=[incident.id], now=now)

    def emails(self, event: IncidentEvent) -> bool:
        """Whether email hears this kind of incident event (its recipients need the members)."""
        return EMAIL in self.routes.channels and event.kind in EMAILED

    def incident_rows(
        self,
        incident: Incident,
        event: IncidentEvent,
        config: Config,
        *,
        model: str,
        paged_before: tuple[str, ...],
        by_person: bool,
        members: list[Alert] | None,
        reads: Reads,
    ) -> list[Enqueued]:
        """The rows :meth:`incident_event` adds, for a caller that adds many at once (an
        escalation sweep). ``members`` None: none are needed (no chat, page or email hears it)
        or the caller has not read them; ``reads`` answers the questions the rows ask of what is
        stored, now or read ahead for a whole sweep. Each row's ``paged_now`` says whether the
        event pages now (:func:`pages_now`)."""
        routed = replace(incident, paged_keys=paged_before)
        # email's recipients are the members' models' and rules': read them only for an event email hears
        # (not for each of a storm's many joins)
        emailing = self.emails(event)
        if members is None and emailing:
            members = reads.members(incident)
        deliveries = self.routes.for_incident(
            routed,
            event,
            config=config,
            model=model,
            by_person=by_person,
            members=members or [],
            emailed=emailing and reads.emailed(incident),
        )
        if not deliveries:
            return []
        if members is None:
            members = reads.members(incident)
        pages_now = any(d.channel == PAGER for d in deliveries) and event.kind in TRIGGERS
        lead = members[0] if members else None
        shipped = reads.shipped(incident, members) if pages_now else []
        rows: list[Enqueued] = []
        for delivery in deliveries:
            payload = {
                **incident_payload(incident, event, members),
                "links": _links(config, lead) if lead else [],
                "paged_now": pages_now,
                **({"shipped_before": shipped} if shipped and delivery.channel == PAGER else {}),
                **delivery.extra,
            }
            routing_key = str(delivery.extra.get("pagerduty_routing_key", ""))
            # one event may reach a webhook twice (escalated, and paged): its name tells the rows apart
            key_part = hashlib.sha256(routing_key.encode()).hexdigest()[:12] if routing_key else ""
            key_part = key_part or str(delivery.extra.get(WEBHOOK_EVENT, ""))
            rows.append(
                Enqueued(
                    channel=delivery.channel,
                    kind=f"incident.{event.kind.value}",
                    payload=payload,
                    idempotency_key=_key(delivery.channel, incident, event, key_part),
                    now=event.at,
                    alert_id=lead.id if lead else None,
                    incident_id=incident.id,
                )
            )
        return rows


def pages_now(rows: Sequence[Enqueued]) -> bool:
    """Whether an incident event's rows (:meth:`Dispatcher.incident_rows`) page now: a page
    releases the incident's chat rows held for business hours."""
    return any(row.payload.get("paged_now") for row in rows)


class Reads(Protocol):
    """What an incident event's rows ask of what is stored: read now, one event at a time
    (:class:`ReadNow`), or read ahead for a whole escalation sweep (:class:`ReadAhead`)."""

    def members(self, incident: Incident) -> list[Alert]:
        """The incident's alerts, oldest first."""
        ...

    def emailed(self, incident: Incident) -> bool:
        """Whether an earlier event of the incident was queued for email: its readers hear the rest."""
        ...

    def shipped(self, incident: Incident, members: list[Alert]) -> list[str]:
        """What shipped to the members' models in ``settings.change_window`` before the incident
        opened, newest first ("prompt v42, 4 min before"): the page says it, for whoever is woken up."""
        ...


class ReadNow:
    """:class:`Reads` in the caller's transaction, a query per question."""

    def __init__(self, s: Session, config: Config) -> None:
        self._s = s
        self._config = config

    def members(self, incident: Incident) -> list[Alert]:
        return incident_store.members(self._s, incident)

    def emailed(self, incident: Incident) -> bool:
        return incident.id is not None and incident.id in emailed_among(self._s, [incident.id])

    def shipped(self, incident: Incident, members: list[Alert]) -> list[str]:
        window = self._config.settings.change_window
        changes = made_before(self._s, {m.model for m in members}, incident.opened_at, window, limit=SHIPPED_SHOWN)
        return _said_before(changes, incident)


class ReadAhead:
    """:class:`Reads` for a whole escalation sweep: each question is one query for all of its
    incidents, asked the first time it is needed. ``members``: every incident's alerts, read in
    the sweep's transaction, an entry for each incident of the sweep (an empty list for one
    without alerts: whether it was emailed is still asked); ``paging``: the incidents a step of
    the sweep pages (only a page says what shipped). The sweep tells it of each event's rows
    (:meth:`enqueued`), so an incident emailed by one step is emailed by its next, as one event
    at a time would see it."""

    def __init__(
        self, s: Session, config: Config, members: Mapping[int, list[Alert]], paging: Sequence[Incident]
    ) -> None:
        self._s = s
        self._config = config
        self._members = members
        self._paging = paging
        self._emailed: set[int] | None = None
        self._shipped: dict[int, list[Change]] | None = None

    def members(self, incident: Incident) -> list[Alert]:
        return list(self._members.get(incident.id or 0, []))

    def emailed(self, incident: Incident) -> bool:
        return incident.id in self._emailed_ones()

    def shipped(self, incident: Incident, members: list[Alert]) -> list[str]:
        if self._shipped is None:
            wanted = {i.id or 0: ({m.model for m in self.members(i)}, i.opened_at) for i in self._paging}
            window = self._config.settings.change_window
            self._shipped = made_before_each(self._s, wanted, window, limit=SHIPPED_SHOWN)
        return _said_before(self._shipped.get(incident.id or 0, []), incident)

    def enqueued(self, rows: Sequence[Enqueued]) -> None:
        """An event's rows were built: an email among them makes its incident emailed."""
        emailed = {row.incident_id for row in rows if row.channel == EMAIL and row.incident_id is not None}
        if emailed:
            self._emailed_ones().update(emailed)

    def _emailed_ones(self) -> set[int]:
        if self._emailed is None:
            self._emailed = emailed_among(self._s, list(self._members))
        return self._emailed


def notification_payload(alert: Alert, event: Event) -> dict[str, Any]:
    """An alert event as a self-contained, JSON-ready snapshot."""
    return {
        **_event_fields(event),
        "alert_id": alert.id,
        "key": alert.key,
        "occurrence": alert.occurrence,
        **_json(alert_store.fields(alert)),
    }


def incident_payload(incident: Incident, event: IncidentEvent, members: list[Alert]) -> dict[str, Any]:
    """An incident event as a self-contained snapshot. ``key`` and ``fired_at`` name the incident
    (PagerDuty's dedup key is built from them: one PagerDuty incident per incident); ``model``,
    ``rule``, ``values`` and ``description`` are its first alert's, for the page's details, and
    ``models`` every model it holds (a storm's page lists them)."""
    fields = _json(incident_store.fields(incident))
    lead = members[0] if members else None
    return {
        **_event_fields(event),
        "incident_id": incident.id,
        "key": incident.page_name,
        "fired_at": incident.opened_at.isoformat(),
        "model": lead.model if lead else "",
        "rule": incident.storm_rule or (lead.rule if lead else ""),
        "values": dict(lead.values) if lead else {},
        "description": lead.description if lead else "",
        "models": sorted({a.model for a in members}),
        "alerts": len(members),
        **fields,
        "title": incident.title or (lead.title if lead else ""),
    }


def _event_fields(event: Event | IncidentEvent) -> dict[str, Any]:
    """What happened, by whom, when: the head of every notification."""
    return {
        "event": event.kind.value,
        "actor": event.actor,
        "at": event.at.isoformat(),
        "detail": event.detail,
        "escalation": dict(event.data),
    }


def _links(config: Config, alert: Alert) -> list[dict[str, str]]:
    """The alert's links as the configuration says them now, so a page carries the dashboard
    without the notifier reading the configuration."""
    return to_payload(alert_links(config, model=alert.model, rule=alert.rule, values=alert.values))


def _said_before(changes: Sequence[Change], incident: Incident) -> list[str]:
    return [f"{change.model}: {change.said()}, {how_long_before(change, incident.opened_at)}" for change in changes]


def emailed_among(s: Session, incident_ids: Sequence[int]) -> set[int]:
    """Those of ``incident_ids`` that have a row queued for email (read in chunks, so any number fits)."""
    found: set[int] = set()
    for chunk in in_chunks(incident_ids):
        query = select(OutboxRow.incident_id).where(OutboxRow.channel == EMAIL, col(OutboxRow.incident_id).in_(chunk))
        found.update(i for i in s.exec(query.distinct()) if i is not None)
    return found


def _key(channel: str, incident: Incident, event: IncidentEvent, key_part: str) -> str:
    return f"{channel}:incident:{incident.id}:{event.kind.value}:{incident.version}:{key_part}"[:300]


def _json(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in values.items()}
