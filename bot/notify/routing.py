"""Routing: which notifiers hear about an alert event, when, and with what extras (pure).

Seed 001's table: P0 and P1 post to Slack and page PagerDuty at once; P2 and P3 post to Slack
only and, outside business hours, wait for the next business morning or go to a quieter
channel. An escalation that reaches a paging severity pages, as does a step that names its own
PagerDuty routing key (an L2 service). A silenced alert is recorded but notifies no one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.alerts.lifecycle import Alert, Event, EventKind
from bot.config.loader import Config
from bot.notify.business_hours import is_open, next_opening

CHAT_CHANNELS = ("slack", "log", "recording")
PAGER = "pagerduty"
DEFAULT_KEY = ""
"""Stands for the default routing key (``PAGERDUTY_ROUTING_KEY`` or the model's own)."""


@dataclass(frozen=True)
class Delivery:
    channel: str
    hold: timedelta = timedelta(0)
    extra: Mapping[str, object] = field(default_factory=dict)
    """Merged into the notification payload (``slack_channel``, ``pagerduty_routing_key`` …)."""


def route(
    alert: Alert, event: Event, *, config: Config, channels: Collection[str], now: datetime, silenced: bool = False
) -> list[Delivery]:
    if silenced or not event.kind.notifies:
        return []
    deliveries = [_chat(channel, alert, event, config, now) for channel in channels if channel != PAGER]
    if PAGER in channels:
        deliveries += _pages(alert, event, config)
    return deliveries


def pages_to(alert: Alert, event: Event, config: Config) -> list[str]:
    """Routing keys this event triggers a page on (``DEFAULT_KEY`` for the default)."""
    paging = set(config.routing.page)
    keys: list[str] = []
    if event.kind is EventKind.FIRED and alert.severity in paging:
        keys.append(_model_key(alert, config))
    elif event.kind is EventKind.ESCALATED:
        was_paging = str(event.data.get("from_severity")) in {s.value for s in paging}
        if alert.severity in paging and not was_paging:
            keys.append(_model_key(alert, config))
        step_key = event.data.get("routing_key")
        if isinstance(step_key, str) and step_key:
            keys.append(step_key)
    return [k for k in dict.fromkeys(keys) if k not in alert.paged_keys]


def _pages(alert: Alert, event: Event, config: Config) -> list[Delivery]:
    if event.kind in (EventKind.FIRED, EventKind.ESCALATED):
        keys = pages_to(alert, event, config)
    else:  # acknowledge / resolve reach every service this alert paged
        keys = list(alert.paged_keys)
    return [Delivery(PAGER, extra={"pagerduty_routing_key": key} if key else {}) for key in keys]


def _chat(channel: str, alert: Alert, event: Event, config: Config, now: datetime) -> Delivery:
    hold = config.settings.group_wait if event.kind is EventKind.FIRED and channel == "slack" else timedelta(0)
    hours = config.business_hours
    urgent = alert.severity in config.routing.page
    if hours is None or urgent or event.kind not in (EventKind.FIRED, EventKind.ESCALATED) or is_open(hours, now):
        return Delivery(channel, hold)
    if hours.outside == "quiet_channel" and config.routing.quiet_channel:
        return Delivery(channel, hold, {"slack_channel": config.routing.quiet_channel})
    return Delivery(channel, max(hold, next_opening(hours, now) - now))


def _model_key(alert: Alert, config: Config) -> str:
    model = config.models.get(alert.model)
    key = model.settings.get("pagerduty_routing_key") if model else None
    return str(key) if key else DEFAULT_KEY
