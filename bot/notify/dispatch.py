"""Dispatch: turn recorded alert and incident events into outbox rows, in the caller's transaction.

Routing (:mod:`bot.notify.routing`) decides who hears what; this stage writes it down as
self-contained notifications (the notifier needs nothing else to say what happened) with
idempotency keys that name the event, so a retried pass or sweep never enqueues twice. Rows of
an incident carry its id: the outbox delivers them in order per incident, root message first.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from bot.alerts import store as alert_store
from bot.alerts.lifecycle import Alert, Event
from bot.changes.events import how_long_before
from bot.changes.log import made_before
from bot.config.durations import humanize
from bot.config.loader import Config
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident, IncidentEvent
from bot.notify.email_routing import EMAILED
from bot.notify.links import alert_links, to_payload
from bot.notify.outbox import enqueue, release_held
from bot.notify.outbox_rows import Enqueued, add
from bot.notify.routing import EMAIL, PAGER, TRIGGERS, WEBHOOK_EVENT, Held, Routes
from bot.storage.tables import OutboxRow

log = logging.getLogger(__name__)

Hold = Callable[[str, Alert, Event], timedelta]
"""An extra wait before an alert notification may be delivered, per channel."""


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
        routed = replace(incident, paged_keys=paged_before)
        # email's recipients are the members' models' and rules': read them only for an event email hears
        # (not for each of a storm's many joins)
        emailing = EMAIL in self.routes.channels and event.kind in EMAILED
        if members is None and emailing:
            members = incident_store.members(s, incident)
        deliveries = self.routes.for_incident(
            routed,
            event,
            config=config,
            model=model,
            by_person=by_person,
            members=members or [],
            emailed=emailing and _emailed(s, incident),
        )
        if not deliveries:
            return
        if members is None:
            members = incident_store.members(s, incident)
        pages_now = [d for d in deliveries if d.channel == PAGER and event.kind in TRIGGERS]
        lead = members[0] if members else None
        shipped = _shipped_before(s, incident, members, config) if pages_now else []
        for delivery in deliveries:
            payload = {
                **incident_payload(incident, event, members),
                "links": _links(config, lead) if lead else [],
                "paged_now": bool(pages_now),
                **({"shipped_before": shipped} if shipped and delivery.channel == PAGER else {}),
                **delivery.extra,
            }
            routing_key = str(delivery.extra.get("pagerduty_routing_key", ""))
            # one event may reach a webhook twice (escalated, and paged): its name tells the rows apart
            key_part = hashlib.sha256(routing_key.encode()).hexdigest()[:12] if routing_key else ""
            key_part = key_part or str(delivery.extra.get(WEBHOOK_EVENT, ""))
            enqueue(
                s,
                channel=delivery.channel,
                kind=f"incident.{event.kind.value}",
                alert_id=lead.id if lead else None,
                incident_id=incident.id,
                payload=payload,
                idempotency_key=_key(delivery.channel, incident, event, key_part),
                now=event.at,
            )
        if pages_now and incident.id is not None:
            release_held(s, incident_id=incident.id, now=now)


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


def _shipped_before(s: Session, incident: Incident, members: list[Alert], config: Config) -> list[str]:
    """What shipped to the incident's models in ``settings.change_window`` before it opened, newest
    first ("prompt v42, 4 min before"): the page says it too, for whoever is woken up."""
    opened = incident.opened_at
    changes = made_before(s, {m.model for m in members}, opened, config.settings.change_window, limit=5)
    return [f"{change.model}: {change.said()}, {how_long_before(change, opened)}" for change in changes]


def _emailed(s: Session, incident: Incident) -> bool:
    """Whether an earlier event of this incident was queued for email: its readers hear the rest."""
    if incident.id is None:
        return False
    query = select(OutboxRow.id).where(OutboxRow.channel == EMAIL, OutboxRow.incident_id == incident.id)
    return s.exec(query.limit(1)).first() is not None


def _key(channel: str, incident: Incident, event: IncidentEvent, key_part: str) -> str:
    return f"{channel}:incident:{incident.id}:{event.kind.value}:{incident.version}:{key_part}"[:300]


def _json(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in values.items()}
