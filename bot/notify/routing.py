"""Routing: which notifiers hear about an event, when, and with what extras (pure).

People hear about incidents (:mod:`bot.incidents`), so routing is split the same way:

* an **alert** event reaches the chat channels (its section of the incident's root message and a
  thread reply); PagerDuty never hears about a single alert;
* an **incident** event pages: the incident triggers once (its dedup key names the incident), when
  it opens at a paging severity, an alert raises it to one, or an escalation step reaches one or
  names its own routing key (an L2 service); its acknowledge and resolve reach each key it paged,
  once. Escalation steps and a person's action on the whole incident are also said in chat.
* an outgoing **webhook** (``webhooks:``, each its own channel ``webhook:<name>``) hears the events
  it asked for: ``fired`` when an alert fires (per alert: a new alert of an open incident is
  news), and per incident ``acknowledged``, ``resolved`` (by a person or when its last alert
  closed), ``escalated``, and ``paged`` when the incident newly pages PagerDuty.
* an incident at a ``routing.email`` severity (seed 001: P3) is emailed to its models' and rules'
  ``email:`` recipients when it opens and changes (:mod:`bot.notify.email_routing`).

Seed 001's table: P0 and P1 post to Slack and page PagerDuty at once; P2 and P3 post to Slack only
and, outside business hours, wait for the next business morning or go to a quieter channel; an
incident that pages is never held (its chat message goes out at once, to its normal channel). A
silenced alert is recorded but notifies no one.

Routing decides once per event, and says why a notification waits or goes elsewhere as a named
:class:`Held` value on its :class:`Delivery` (as Alertmanager's notify stages name their reasons),
so the log and the tests can say it: :mod:`bot.notify.dispatch` logs each held delivery at DEBUG,
and an alert a silence covers is logged at DEBUG here, as it has no delivery to carry the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from bot.alerts.lifecycle import Alert, Event, EventKind
from bot.config.loader import Config
from bot.config.webhook_schema import WEBHOOK_CHANNEL_PREFIX
from bot.incidents.incident import Incident, IncidentEvent, IncidentEventKind
from bot.notify.business_hours import is_open, next_opening
from bot.notify.email_routing import email_recipients

log = logging.getLogger(__name__)

CHAT_CHANNELS = ("slack", "log", "recording")
PAGER = "pagerduty"
EMAIL = "email"
"""Channels that hear only what is routed to them by name, never the chat's every alert event."""
DEFAULT_KEY = ""
"""Stands for the default routing key (``PAGERDUTY_ROUTING_KEY`` or the model's own)."""

SAID_IN_CHAT = frozenset({IncidentEventKind.ESCALATED, IncidentEventKind.REMINDED, IncidentEventKind.RELEASED})
"""The bot's own incident events that chat hears (a person's action always is)."""
TRIGGERS = (IncidentEventKind.OPENED, IncidentEventKind.JOINED, IncidentEventKind.ESCALATED)
CLOSERS = (IncidentEventKind.ACKNOWLEDGED, IncidentEventKind.RESOLVED, IncidentEventKind.AUTO_RESOLVED)
WEBHOOK_EVENT = "webhook_event"
"""The payload key naming the webhook event (``fired`` … ``paged``) a webhook row carries."""
INCIDENT_WEBHOOK_EVENTS = {
    IncidentEventKind.ACKNOWLEDGED: "acknowledged",
    IncidentEventKind.RESOLVED: "resolved",
    IncidentEventKind.AUTO_RESOLVED: "resolved",
    IncidentEventKind.ESCALATED: "escalated",
}


class Held(Enum):
    """Why a notification does not go out at once to its usual place."""

    NONE = "none"
    """Sent now, where it always goes."""
    GROUP_WAIT = "group wait"
    """A firing alert's Slack post waits ``settings.group_wait``, so alerts that fire with it join
    the same message."""
    BUSINESS_HOURS = "business hours"
    """Outside business hours, a P2 or P3 fire waits for the next business morning."""
    QUIET_CHANNEL = "quiet channel"
    """Outside business hours, a P2 or P3 fire goes now, to ``routing.quiet_channel``."""
    SILENCE = "silence"
    """A silence covers the alert: it is recorded, and no one is told."""


@dataclass(frozen=True)
class Delivery:
    channel: str
    hold: timedelta = timedelta(0)
    extra: Mapping[str, object] = field(default_factory=dict)
    """Merged into the notification payload (``slack_channel``, ``pagerduty_routing_key`` …)."""
    held: Held = Held.NONE
    """Why it waits ``hold`` or goes elsewhere (:class:`Held`)."""


@dataclass(frozen=True)
class Routes:
    """The routing table applied to the notifier channels this bot has."""

    channels: tuple[str, ...]

    def for_alert(
        self, alert: Alert, event: Event, *, config: Config, now: datetime, silenced: bool, urgent: bool
    ) -> list[Delivery]:
        """Chat deliveries of an alert event, and a firing one's to the webhooks. ``urgent``: its
        incident pages, so nothing waits."""
        if not event.kind.notifies:
            return []
        if silenced:
            log.debug("alert %s %s: not routed (%s)", alert.id, event.kind.value, Held.SILENCE.value)
            return []
        chat = [_chat(c, alert.severity, event.kind, config, now, urgent) for c in self.channels if _is_chat(c)]
        return chat + self._webhooks(config, "fired" if event.kind is EventKind.FIRED else None)

    def for_incident(
        self,
        incident: Incident,
        event: IncidentEvent,
        *,
        config: Config,
        model: str,
        by_person: bool,
        members: Sequence[Alert] = (),
        emailed: bool = False,
    ) -> list[Delivery]:
        """Pages, webhook events (and, for an escalation or a person's action on the whole incident,
        chat), and email to ``members``' models' and rules' recipients (see
        :mod:`bot.notify.email_routing`)."""
        deliveries = self._webhooks(config, INCIDENT_WEBHOOK_EVENTS.get(event.kind))
        if event.kind in SAID_IN_CHAT or by_person:
            deliveries += [Delivery(c) for c in self.channels if _is_chat(c)]
        if EMAIL in self.channels:
            to = email_recipients(incident, event, config, members=members, emailed=emailed)
            deliveries += [Delivery(EMAIL, extra={"email_to": to})] if to else []
        if PAGER not in self.channels:
            return deliveries
        if event.kind in TRIGGERS:
            keys = pages_to(incident, event, config, model=model)
        elif event.kind in CLOSERS:
            keys = list(incident.paged_keys)
        else:
            keys = []
        if keys and event.kind in TRIGGERS:
            deliveries += self._webhooks(config, "paged")
        return deliveries + [Delivery(PAGER, extra={"pagerduty_routing_key": k} if k else {}) for k in keys]

    def _webhooks(self, config: Config, event: str | None) -> list[Delivery]:
        """A delivery to each webhook that asked for ``event`` and has a channel in this bot (one
        added by a reload has none until a restart)."""
        if event is None:
            return []
        hooks = (h for h in config.webhooks if event in h.events and h.channel in self.channels)
        return [Delivery(h.channel, extra={WEBHOOK_EVENT: event}) for h in hooks]


def every_channel(channels: Collection[str]) -> Routes:
    """Route through the configured routing table to these notifier channels."""
    return Routes(tuple(channels))


def pages_to(incident: Incident, event: IncidentEvent, config: Config, *, model: str) -> list[str]:
    """Routing keys this incident event triggers a page on (``DEFAULT_KEY`` for the default) that
    the incident has not paged yet: one page per incident and key, however many alerts join."""
    keys: list[str] = []
    if incident.severity in config.routing.page:
        keys.append(_model_key(model, config))
    if event.kind is IncidentEventKind.ESCALATED:
        step_key = event.data.get("routing_key")
        if isinstance(step_key, str) and step_key:
            keys.append(step_key)
    return [k for k in dict.fromkeys(keys) if k not in incident.paged_keys]


def _is_chat(channel: str) -> bool:
    """Chat channels hear every alert; PagerDuty, email and webhooks only what they route."""
    return channel not in (PAGER, EMAIL) and not channel.startswith(WEBHOOK_CHANNEL_PREFIX)


def _chat(channel: str, severity: object, kind: EventKind, config: Config, now: datetime, urgent: bool) -> Delivery:
    hold = config.settings.group_wait if kind is EventKind.FIRED and channel == "slack" else timedelta(0)
    waits = Held.GROUP_WAIT if hold > timedelta(0) else Held.NONE
    hours = config.business_hours
    loud = urgent or severity in config.routing.page
    if hours is None or loud or kind is not EventKind.FIRED or is_open(hours, now):
        return Delivery(channel, hold, held=waits)
    if hours.outside == "quiet_channel" and config.routing.quiet_channel:
        return Delivery(channel, hold, {"slack_channel": config.routing.quiet_channel}, held=Held.QUIET_CHANNEL)
    morning = next_opening(hours, now) - now
    return Delivery(channel, max(hold, morning), held=Held.BUSINESS_HOURS if morning > hold else waits)


def _model_key(model: str, config: Config) -> str:
    known = config.models.get(model)
    key = known.settings.get("pagerduty_routing_key") if known else None
    return str(key) if key else DEFAULT_KEY
