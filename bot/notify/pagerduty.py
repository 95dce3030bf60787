"""PagerDuty delivery through the Events API v2: trigger, acknowledge and resolve one incident per alert occurrence.

The outbox hands over one notification at a time and owns every retry; this module only
translates an alert notification into one ``POST /v2/enqueue`` and classifies the answer as a
:class:`~bot.errors.DeliveryError` the outbox understands (PagerDuty's own retry table, which
:mod:`bot.notify.http_delivery` applies to every HTTP notifier: 202 done, 400 final, 429 / 5xx /
network errors retry later).

Idempotency: every event carries a dedup key naming the alert *occurrence*
(:func:`occurrence_key`: the alert's ``rule:model`` key plus when it fired). A re-send after a
timeout whose fate is unknown lands on the same open PagerDuty alert instead of opening a second
one, while a re-fire after a resolve has a new ``fired_at`` and so opens a new incident (SPEC §2).
That is why this notifier, unlike Slack's, needs no "look before you re-send" step.

Rate limits: PagerDuty accepts about 120 events a minute per routing key and answers more with
429. A burst (a bad deploy firing one rule on 200 models) would otherwise spend its retries
learning that; :class:`RateLimiter` refuses the 121st event locally with the wait until a slot
frees, and the outbox reschedules it -- no thread sleeps, so other routing keys and channels
keep flowing.

Secrets: the routing key is an integration credential. It is never logged nor put into an error
message (which the outbox stores in the database); logs name it by :func:`key_fingerprint`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from bot.clock import ensure_utc
from bot.errors import DeliveryError
from bot.notify.http_delivery import classify, post
from bot.notify.links import from_payload
from bot.notify.notifier import Notification
from bot.observability import Metrics
from bot.settings import DEFAULT_PAGERDUTY_EVENTS_URL, Settings
from bot.severity import Severity

log = logging.getLogger(__name__)

MAX_SUMMARY = 1024
"""PagerDuty refuses a longer ``payload.summary`` with a 400."""
MAX_DEDUP_KEY = 255
"""PagerDuty refuses a longer ``dedup_key`` with a 400."""
DEFAULT_EVENTS_PER_WINDOW = 120
DEFAULT_WINDOW_SECONDS = 60.0
CLIENT_NAME = "incident-bot"

SEVERITIES: Mapping[Severity, str] = {
    Severity.P0: "critical",
    Severity.P1: "error",
    Severity.P2: "warning",
    Severity.P3: "info",
}
"""The bot's P0–P3 on PagerDuty's four PD-CEF severities."""

TRIGGER, ACKNOWLEDGE, RESOLVE = "trigger", "acknowledge", "resolve"
_ACTIONS: Mapping[str, str] = {
    "incident.opened": TRIGGER,
    "incident.joined": TRIGGER,
    "incident.escalated": TRIGGER,
    "incident.acknowledged": ACKNOWLEDGE,
    "incident.resolved": RESOLVE,
    "incident.auto_resolved": RESOLVE,
}
_HINTS: Mapping[int, str] = {
    401: "check the routing key (PAGERDUTY_ROUTING_KEY or the model's / escalation step's pagerduty_routing_key)",
    403: "check the routing key (PAGERDUTY_ROUTING_KEY or the model's / escalation step's pagerduty_routing_key)",
    404: "check PAGERDUTY_EVENTS_URL (it should end in /v2/enqueue)",
    405: "check PAGERDUTY_EVENTS_URL (it should end in /v2/enqueue)",
    413: "the event is larger than PagerDuty's 512 KB limit",
}


# ---------------------------------------------------------------------- pure translation


def occurrence_key(payload: Mapping[str, Any]) -> str:
    """The dedup key naming one occurrence of an alert: ``rule:model:20260105T090300Z``.

    The alert key alone (``rule:model``) would be reused by every re-fire; PagerDuty would
    accept that (a trigger after a resolve opens a new incident anyway), but a late retry of
    the *previous* occurrence's resolve would then close the new incident. The fire time makes
    each occurrence its own PagerDuty alert. ``started_at`` stands in when ``fired_at`` is
    missing, so acknowledge and resolve always compute the key their trigger used.

    Longer than PagerDuty's 255 characters, the key part is shortened and given a hash of
    the full key, keeping the time suffix: cutting the tail instead would drop the time and
    let two occurrences (or two long keys sharing a prefix) collide. Raises ValueError when
    the payload has no alert key.
    """
    key = str(payload.get("key") or payload.get("dedup_key") or "")
    if not key:
        raise ValueError("the notification names no alert key")
    moment = payload.get("fired_at") or payload.get("started_at")
    suffix = f":{compact_utc(moment)}" if moment else ""
    full = key + suffix
    if len(full) <= MAX_DEDUP_KEY:
        return full
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    room = MAX_DEDUP_KEY - len(suffix) - len(digest) - 1
    return f"{key[:room]}~{digest}{suffix}"


def compact_utc(moment: str | datetime) -> str:
    """``2026-01-05T10:03:00+01:00`` → ``20260105T090300Z``: short, sortable, unambiguous."""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return ensure_utc(value).strftime("%Y%m%dT%H%M%SZ")


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, marked with "…" when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_action(kind: str, payload: Mapping[str, Any]) -> str | None:
    """The Events API action for a notification kind, or None when PagerDuty has no part in it.

    ``alert.fired`` always triggers: the router only sends PagerDuty what should page.
    ``alert.escalated`` triggers when the severity it reached pages (P0/P1, seed 001) or when
    the notification names a routing key -- an escalation step paging its own (L2) service is
    a deliberate page whatever the severity, and dropping it here would lose it silently.
    """
    action = _ACTIONS.get(kind)
    if kind == "incident.escalated" and not (_severity(payload).pages or _named_key(payload)):
        return None
    return action


def build_event(action: str, payload: Mapping[str, Any], routing_key: str) -> dict[str, Any]:
    """The JSON body for ``POST /v2/enqueue``. Raises ValueError for a payload that cannot be sent."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": occurrence_key(payload),
    }
    if action != TRIGGER:
        return event  # acknowledge / resolve carry no payload: PagerDuty ignores one
    severity = _severity(payload)
    key = str(payload.get("key") or payload.get("dedup_key"))
    title = str(payload.get("title") or "").strip() or key
    body: dict[str, Any] = {
        "summary": cut(f"[{severity.value}] {title}", MAX_SUMMARY),
        "source": str(payload.get("model") or CLIENT_NAME),
        "severity": SEVERITIES[severity],
        "component": str(payload.get("rule") or ""),
        "custom_details": _details(payload, severity),
    }
    moment = payload.get("fired_at") or payload.get("started_at")
    if isinstance(moment, str):
        body["timestamp"] = moment
    event["payload"] = {name: value for name, value in body.items() if value != ""}
    event["client"] = CLIENT_NAME
    links = [{"href": link.url, "text": link.text} for link in from_payload(payload.get("links"))]
    if payload.get("runbook_url"):
        links.append({"href": str(payload["runbook_url"]), "text": "Runbook"})
    if payload.get("slack_permalink"):
        links.append({"href": str(payload["slack_permalink"]), "text": "Slack message"})
        event["client_url"] = str(payload["slack_permalink"])
    if links:
        event["links"] = links
    return event


def _named_key(payload: Mapping[str, Any]) -> str | None:
    """The routing key the notification itself names (a model's or an escalation step's), if any."""
    key = payload.get("pagerduty_routing_key")
    return key.strip() if isinstance(key, str) and key.strip() else None


def _severity(payload: Mapping[str, Any]) -> Severity:
    try:
        return Severity(str(payload.get("severity")))
    except ValueError:
        raise ValueError(f"unknown severity {payload.get('severity')!r} (expected P0–P3)") from None


def _details(payload: Mapping[str, Any], severity: Severity) -> dict[str, Any]:
    """Metric values first, then the alert's identity (which wins a name clash, so PagerDuty
    event rules matching on ``rule`` / ``model`` can trust those fields)."""
    values = payload.get("values")
    details: dict[str, Any] = dict(values) if isinstance(values, Mapping) else {}
    details.update(
        {
            "rule": payload.get("rule"),
            "model": payload.get("model"),
            "state": payload.get("state"),
            "severity": severity.value,
            "alert_key": payload.get("key") or payload.get("dedup_key"),
        }
    )
    if payload.get("description"):
        details["description"] = payload["description"]
    shipped = payload.get("shipped_before")
    if isinstance(shipped, list) and shipped:  # "did something ship?", answered on the page
        details["shipped_before"] = shipped
    models = payload.get("models")
    if isinstance(models, list) and len(models) > 1:  # an incident of several models (a storm)
        details["models"] = models
        details["model_count"] = len(models)
    return details


def key_fingerprint(routing_key: str) -> str:
    """A routing key's name for logs: enough to tell keys apart, useless to send events with."""
    return "key#" + hashlib.sha256(routing_key.encode()).hexdigest()[:8]


# ---------------------------------------------------------------------- client-side throttle


class RateLimiter:
    """A sliding window of at most ``limit`` events per ``window`` seconds for each key.

    PagerDuty counts "over a 60 second window looking back from the current time", so this
    counts the same way (timestamps, not fixed buckets). Thread-safe: outbox workers share
    one instance. ``clock`` returns seconds; monotonic by default so a wall-clock step cannot
    open or jam the window, injectable so tests can move time.
    """

    def __init__(
        self,
        limit: int = DEFAULT_EVENTS_PER_WINDOW,
        window: float = DEFAULT_WINDOW_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window > 0")
        self._limit = limit
        self._window = window
        self._clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take a slot for ``key`` and return 0.0, or take none and return the seconds until one frees."""
        with self._lock:
            now = self._clock()
            sent = self._sent.setdefault(key, deque())
            while sent and sent[0] <= now - self._window:
                sent.popleft()
            if len(sent) < self._limit:
                sent.append(now)
                return 0.0
            return max(sent[0] + self._window - now, 0.001)

    def prune(self) -> None:
        """Forget keys with no event in the window, so many one-off keys do not accumulate."""
        with self._lock:
            now = self._clock()
            for key in [k for k, sent in self._sent.items() if not sent or sent[-1] <= now - self._window]:
                del self._sent[key]


# ---------------------------------------------------------------------- the notifier


class PagerDutyNotifier:
    """The ``pagerduty`` notifier of the outbox (see the module docstring for what it promises).

    Routing: ``payload["pagerduty_routing_key"]`` when the notification carries one (a model's
    or an escalation step's key), else ``routing_key`` (``PAGERDUTY_ROUTING_KEY``). PagerDuty
    drops an acknowledge or resolve sent through another key than its trigger's, so whoever
    builds the payloads must put the trigger's key on the follow-ups too.
    """

    channel = "pagerduty"

    def __init__(
        self,
        events_url: str = DEFAULT_PAGERDUTY_EVENTS_URL,
        *,
        routing_key: str | None = None,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        throttle: RateLimiter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._url = events_url
        self._routing_key = routing_key or None
        self._client = client or httpx.Client(timeout=timeout, headers={"User-Agent": CLIENT_NAME})
        self._throttle = throttle or RateLimiter()
        self._metrics = metrics

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        timeout: float = 10.0,
        throttle: RateLimiter | None = None,
        metrics: Metrics | None = None,
    ) -> PagerDutyNotifier:
        """Built without a default key when ``PAGERDUTY_ROUTING_KEY`` is unset: models and
        escalation steps may still name their own, and a page with no key at all fails loudly."""
        key = settings.pagerduty_routing_key.get_secret_value() if settings.pagerduty_routing_key else None
        return cls(settings.pagerduty_events_url, routing_key=key, timeout=timeout, throttle=throttle, metrics=metrics)

    def close(self) -> None:
        self._client.close()

    def send(self, notification: Notification) -> None:
        """Send the notification's event, or nothing for kinds PagerDuty has no part in.
        Raises DeliveryError; the outbox decides about retries."""
        payload = notification.payload
        try:
            action = event_action(notification.kind, payload)
            if action is None:
                log.debug("outbox row %s: %s does not concern PagerDuty", notification.id, notification.kind)
                return
            routing_key = self._routing_key_for(payload)
            event = build_event(action, payload, routing_key)
        except ValueError as exc:
            message = f"PagerDuty: cannot build the event for {notification.kind}: {exc}"
            raise DeliveryError(message, retryable=False) from exc
        self._post(event, routing_key, notification)

    def _routing_key_for(self, payload: Mapping[str, Any]) -> str:
        key = _named_key(payload)
        if key:
            return key
        if self._routing_key:
            return self._routing_key
        raise DeliveryError(
            "no PagerDuty routing key: set PAGERDUTY_ROUTING_KEY, or pagerduty_routing_key on the model "
            "or escalation step",
            retryable=False,
        )

    def _post(self, event: dict[str, Any], routing_key: str, note: Notification) -> None:
        action, dedup_key = event["event_action"], event["dedup_key"]
        what = f"PagerDuty {action} {dedup_key} ({key_fingerprint(routing_key)})"
        wait = self._throttle.acquire(routing_key)
        if wait > 0:
            raise DeliveryError(
                f"{what}: held back, {key_fingerprint(routing_key)} is at its events-per-minute limit",
                retryable=True,
                retry_after=wait,
            )
        started = time.perf_counter()
        try:
            response = post(self._client, self._url, what, "PagerDuty", json=event)
        except DeliveryError as exc:
            # a timeout may have been applied; the retry carries the same dedup key, so it cannot double the page
            raise _redact_error(exc, routing_key) from exc.__cause__
        finally:
            if self._metrics:  # method label: the event action (trigger, acknowledge, resolve)
                self._metrics.api_call("pagerduty", action, time.perf_counter() - started)
        status = response.status_code
        if 200 <= status < 300:
            log.info("%s accepted for outbox row %s (HTTP %s)", what, note.id, status)
            return
        raise _redact_error(classify(response, what, "PagerDuty", said=_said(response), hints=_HINTS), routing_key)


def _said(response: httpx.Response) -> str:
    """PagerDuty's own words: ``status: message (errors)``, or the start of a non-JSON body."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return f": {text[:200]}" if text else ""
    if not isinstance(body, dict):
        return f": {str(body)[:200]}"
    parts = [str(body[name]) for name in ("status", "message") if body.get(name)]
    said = f": {': '.join(parts)}" if parts else ""
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        said += f" ({'; '.join(str(e) for e in errors[:5])})"
    return said


def _redact(text: str, routing_key: str) -> str:
    return text.replace(routing_key, key_fingerprint(routing_key)) if routing_key else text


def _redact_error(error: DeliveryError, routing_key: str) -> DeliveryError:
    """The same error with any echo of the routing key (a server repeating the body) masked."""
    message = str(error)
    if routing_key not in message:
        return error
    return DeliveryError(_redact(message, routing_key), retryable=error.retryable, retry_after=error.retry_after)
