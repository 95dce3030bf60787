"""Outgoing webhooks: a signed JSON POST to each receiver of ``webhooks:`` for the events it asked for.

Routing (:mod:`bot.notify.routing`) enqueues one outbox row per receiver and event, on the
receiver's own channel ``webhook:<name>``, so each receiver has its own delivery lane: a slow or
dead receiver holds back only its own rows (per incident, in order), never another's. The outbox
owns retries; this module turns a row into one request and its answer into a
:class:`~bot.errors.DeliveryError` with :mod:`bot.notify.http_delivery`'s shared table (2xx
delivered; 429, 408, 5xx and network errors retried, honouring ``Retry-After``; other statuses
final).

The receiver is looked up by name in the *current* configuration at every attempt, so a URL or
secret changed by a reload applies to the next retry; a receiver removed by a reload fails its rows
(``incident-bot outbox drop`` clears them). Neither the secret nor the URL (which may embed a
token) is written to a log line or to the outbox's ``last_error``.

The body is :data:`SCHEMA_VERSION` 1 (README, "Outgoing webhooks"): additive changes keep the
version; a field removed or changed in meaning raises it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from bot.config.loader import Config
from bot.config.webhook_schema import WEBHOOK_CHANNEL_PREFIX, Webhook
from bot.errors import DeliveryError
from bot.notify.http_delivery import classify, post
from bot.notify.links import dashboard_of
from bot.notify.notifier import Notification
from bot.notify.routing import WEBHOOK_EVENT
from bot.notify.webhook_signature import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
USER_AGENT = "incident-bot-webhooks/1"
DELIVERY_NAMESPACE = uuid.UUID("6f1c7e38-3b0e-4f55-9a57-2f4a8a0c1d21")
"""Delivery ids are UUIDv5 in this namespace: the same row gives the same id on every retry."""
ALERT_FIELDS = (
    "key", "rule", "model", "severity", "state", "title", "description", "values", "started_at", "fired_at",
)  # fmt: skip
INCIDENT_FIELDS = (
    "title", "severity", "state", "channel", "opened_at", "acknowledged_at", "acknowledged_by",
    "resolved_at", "resolved_by", "model", "rule", "models", "alerts", "escalation_step",
)  # fmt: skip
"""What the body tells of an incident: a whitelist, since the outbox payload also holds routing keys."""
ESCALATION_FIELDS = ("step", "steps", "from_severity", "to_severity", "mention")


# ---------------------------------------------------------------------- the body (pure)


def delivery_id(note: Notification) -> str:
    """The body's ``id`` and the :data:`DELIVERY_HEADER`: stable across retries of one row,
    distinct between rows, so a receiver de-duplicates on it."""
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{note.channel}/{note.id}/{note.kind}/{note.payload.get('at')}"))


def build_body(note: Notification, event: str, config: Config) -> dict[str, Any]:
    """The JSON body of version 1 for one outbox row (README: "Outgoing webhooks").

    ``fired`` is about one alert: ``alert`` is filled and ``incident`` names only the incident it
    joined. The other events are about an incident: ``incident`` is filled (with its first
    alert's ``model`` and ``rule``) and ``alert`` is null."""
    p = note.payload
    about_incident = note.kind.startswith("incident.")
    incident_id = p.get("incident_id")
    body: dict[str, Any] = {
        "version": SCHEMA_VERSION,
        "id": delivery_id(note),
        "event": event,
        "occurred_at": p.get("at"),
        "actor": p.get("actor") or None,
        "detail": p.get("detail") or "",
        "incident": None if incident_id is None else {"id": incident_id},
        "alert": None,
        "links": links(p, config),
    }
    if about_incident:
        body["incident"] = {"id": incident_id, **{name: p.get(name) for name in INCIDENT_FIELDS}}
    else:
        body["alert"] = {"id": p.get("alert_id"), **{name: p.get(name) for name in ALERT_FIELDS}}
    if event == "escalated":
        step = p.get("escalation")
        body["escalation"] = {name: step.get(name) for name in ESCALATION_FIELDS} if isinstance(step, Mapping) else {}
    return body


def links(payload: Mapping[str, Any], config: Config) -> dict[str, str | None]:
    """``runbook`` (an alert's ``runbook_url``, as Alertmanager sends) and ``dashboard`` (the
    model's ``dashboard:``, ``{model}`` filled, as on Slack and PagerDuty: :mod:`bot.notify.links`),
    null when unknown."""
    values = payload.get("values")
    runbook = values.get("runbook_url") if isinstance(values, Mapping) else None
    return {
        "runbook": str(runbook) if runbook else None,
        "dashboard": dashboard_of(config, str(payload.get("model") or "")),
    }


def encode(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the exact bytes that are signed and sent."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()


# ---------------------------------------------------------------------- the notifier


class WebhookNotifier:
    """The notifier of one receiver's channel ``webhook:<name>`` (see the module docstring)."""

    def __init__(
        self,
        name: str,
        config: Callable[[], Config],
        *,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.channel = WEBHOOK_CHANNEL_PREFIX + name
        self._config = config
        # redirects are not followed: the signed request must reach the configured URL or fail
        self._client = client or httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT})
        self._clock = clock

    def close(self) -> None:
        self._client.close()

    def send(self, notification: Notification) -> None:
        """POST the row's event, signed; raise DeliveryError for the outbox to retry or not."""
        config = self._config()
        hook = next((h for h in config.webhooks if h.name == self.name), None)
        event = str(notification.payload.get(WEBHOOK_EVENT, ""))
        what = f"webhook {self.name} {event} (outbox row {notification.id})"
        if hook is None:
            raise DeliveryError(f"{what}: no webhook named {self.name!r} is configured any more", retryable=False)
        if event not in hook.events:
            log.info("%s: the webhook no longer asks for %s events; not sent", what, event)
            return
        body = encode(build_body(notification, event, config))
        self._post(hook, body, what, notification)

    def _post(self, hook: Webhook, body: bytes, what: str, note: Notification) -> None:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(hook.secret.get_secret_value(), body, timestamp=int(self._clock())),
            DELIVERY_HEADER: delivery_id(note),
            EVENT_HEADER: str(note.payload.get(WEBHOOK_EVENT, "")),
        }
        response = post(self._client, hook.url, what, "the receiver", content=body, headers=headers)
        if 200 <= response.status_code < 300:
            log.info("%s delivered (HTTP %s)", what, response.status_code)
            return
        said = response.text.strip()[:200].replace(hook.url, "<url>")
        raise classify(response, what, "the receiver", said=f": {said}" if said else "")
