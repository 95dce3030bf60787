"""Outgoing webhooks end to end: the service enqueues, the real outbox delivers over HTTP to a
loopback receiver that verifies every signature (tests/emulators/webhook_receiver.py).

Covers each of the five events with the body's schema, per-receiver subscriptions and secrets,
the retry table (503 with Retry-After delivered once, 4xx final, network errors retried), a
signature the receiver refuses as a replay, one receiver's lane not holding another's, and that
neither secret nor URL reaches an error message or the log.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.alerts import store
from bot.app import default_notifiers
from bot.clock import FrozenClock, ensure_utc
from bot.config.holder import ConfigHolder
from bot.config.loader import Config
from bot.config.routing_schema import EscalationStep, Routing
from bot.config.webhook_schema import WEBHOOK_EVENTS, Webhook
from bot.errors import DeliveryError
from bot.notify.lanes import Lanes
from bot.notify.notifier import Notification, Notifier
from bot.notify.outbox import FAILED, Outbox, pending
from bot.notify.pagerduty import PagerDutyNotifier
from bot.notify.webhook_signature import DELIVERY_HEADER, EVENT_HEADER
from bot.notify.webhooks import WebhookNotifier
from bot.service import AlertService, every_channel
from bot.settings import Settings
from bot.severity import Severity
from bot.storage.database import session
from bot.storage.tables import OutboxRow
from tests.emulators.pagerduty_events import PagerDutyEmulator
from tests.emulators.webhook_receiver import WebhookReceiver
from tests.support.ports import free_port

OPS_SECRET = "whsec-ops-0123456789abcdef"
TICKETS_SECRET = "whsec-tickets-0123456789abcdef"
KEY = "R0UTINGKEYDEFAULT000000000000001"
FRAUD = "fraud-detector-v2"


@pytest.fixture
def ops() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(OPS_SECRET) as receiver:
        yield receiver


@pytest.fixture
def tickets() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(TICKETS_SECRET) as receiver:
        yield receiver


@pytest.fixture
def pd() -> Iterator[PagerDutyEmulator]:
    with PagerDutyEmulator() as emulator:
        yield emulator


def hook(name: str, url: str, secret: str, events: Any = WEBHOOK_EVENTS) -> Webhook:
    return Webhook.model_validate({"name": name, "url": url, "secret": secret, "events": events})


def escalating(config: Config, *hooks: Webhook) -> Config:
    """Only P0 pages, and an incident unacknowledged for 15 minutes climbs to P0: a P1 alert then
    fires quietly and is escalated and paged later, which shows all five events in one incident."""
    policy = (EscalationStep(after=timedelta(minutes=15), severity=Severity.P0),)
    return replace(config, webhooks=hooks, routing=Routing(page=[Severity.P0]), escalation={"default": policy})


class Bot:
    """The service and an outbox with the webhooks' notifiers (and PagerDuty's, for ``paged``)."""

    def __init__(self, engine: Engine, clock: FrozenClock, config: Config, *extra: tuple[str, Notifier]) -> None:
        self.clock = clock
        self.notifiers: dict[str, Notifier] = {
            h.channel: WebhookNotifier(h.name, lambda: config) for h in config.webhooks
        }
        self.notifiers.update(extra)
        self.service = AlertService(engine, clock, lambda: config, every_channel(list(self.notifiers)))
        self.outbox = Outbox(engine, clock, self.notifiers, rng=random.Random(3))

    def fire(self, model: str = FRAUD) -> None:
        """``latency_spike`` (P1, ``for: 2m``) fires on ``model``."""
        self.service.ingest([(model, "p99_latency_ms", self.clock.now(), 6100)])
        self.service.evaluate_once()
        self.clock.advance(timedelta(minutes=2))
        self.service.ingest([(model, "p99_latency_ms", self.clock.now(), 6200)])
        self.service.evaluate_once()

    def drain(self) -> int:
        sent = 0
        while delivered := self.outbox.deliver_due():
            sent += delivered
        return sent

    def firing_alert_id(self, engine: Engine) -> int:
        with session(engine) as s:
            alert_id = store.open_alerts(s)[f"latency_spike:{FRAUD}"].id
        assert alert_id is not None
        return alert_id


def test_each_event_reaches_each_receiver_that_asked_for_it_signed_and_in_order(
    engine: Engine,
    clock: FrozenClock,
    config: Config,
    ops: WebhookReceiver,
    tickets: WebhookReceiver,
    pd: PagerDutyEmulator,
) -> None:
    hooks = hook("ops", ops.url, OPS_SECRET), hook("tickets", tickets.url, TICKETS_SECRET, ["fired", "resolved"])
    bot = Bot(engine, clock, escalating(config, *hooks), ("pagerduty", PagerDutyNotifier(pd.url, routing_key=KEY)))
    bot.fire()
    bot.drain()
    clock.advance(timedelta(minutes=15))
    bot.service.escalate_due()
    bot.drain()
    alert_id = bot.firing_alert_id(engine)
    bot.service.acknowledge(alert_id, actor="U123")
    bot.service.resolve(alert_id, actor="U123")
    bot.drain()

    assert ops.events() == ["fired", "escalated", "paged", "acknowledged", "resolved"]
    assert tickets.events() == ["fired", "resolved"]  # its own subscription, signed with its own secret
    assert all(r.status == 202 for r in [*ops.requests, *tickets.requests])  # every signature verified
    fired, escalated, paged, acknowledged, resolved = ops.accepted
    incident_id = fired["incident"]["id"]
    assert fired["version"] == 1 and fired["actor"] == "rule:latency_spike"
    assert fired["alert"]["rule"] == "latency_spike" and fired["alert"]["model"] == FRAUD
    assert (fired["alert"]["severity"], fired["alert"]["state"]) == ("P1", "firing")
    assert fired["links"] == {"runbook": None, "dashboard": "https://grafana.internal/d/fraud-v2"}
    assert escalated["escalation"]["to_severity"] == "P0" and escalated["incident"]["severity"] == "P0"
    assert paged["incident"]["models"] == [FRAUD] and paged["alert"] is None
    assert (acknowledged["actor"], acknowledged["incident"]["acknowledged_by"]) == ("U123", "U123")
    assert resolved["incident"]["state"] == "resolved"
    for body in (escalated, paged, acknowledged, resolved):
        assert body["incident"]["id"] == incident_id and body["incident"]["rule"] == "latency_spike"
    assert len({body["id"] for body in ops.accepted}) == 5
    assert [r.headers[EVENT_HEADER.lower()] for r in ops.requests] == ops.events()
    assert [r.headers[DELIVERY_HEADER.lower()] for r in ops.requests] == [b["id"] for b in ops.accepted]
    assert not any(KEY.encode() in r.raw for r in ops.requests)  # routing keys stay out of the body
    assert pending(engine) == []


def test_a_503_is_retried_after_its_retry_after_and_delivered_once(
    db: Engine, clock: FrozenClock, config: Config, ops: WebhookReceiver
) -> None:
    bot = Bot(db, clock, escalating(config, hook("ops", ops.url, OPS_SECRET, ["fired"])))
    ops.fail_next(503, retry_after=7)
    bot.fire()

    assert bot.outbox.deliver_due() == 0
    [row] = pending(db)
    assert row.attempts == 1 and "answered HTTP 503" in (row.last_error or "")
    assert ops.url not in (row.last_error or "")
    assert ensure_utc(row.not_before) == clock.now() + timedelta(seconds=7)
    clock.advance(timedelta(seconds=6))
    assert bot.outbox.deliver_due() == 0
    clock.advance(timedelta(seconds=1))
    assert bot.outbox.deliver_due() == 1
    clock.advance(timedelta(minutes=10))
    assert bot.drain() == 0

    assert [r.status for r in ops.requests] == [503, 202] and ops.events() == ["fired"]
    first, second = (r.headers[DELIVERY_HEADER.lower()] for r in ops.requests)
    assert first == second  # the retry repeats the delivery id: a receiver can de-duplicate


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (404, False), (410, False), (408, True), (429, True), (500, True)]
)
def test_the_shared_retry_table_decides_what_is_retried(
    db: Engine, clock: FrozenClock, config: Config, ops: WebhookReceiver, status: int, retryable: bool
) -> None:
    bot = Bot(db, clock, escalating(config, hook("ops", ops.url, OPS_SECRET, ["fired"])))
    ops.fail_next(status)
    bot.fire()
    assert bot.outbox.deliver_due() == 0
    with session(db) as s:
        [row] = s.exec(select(OutboxRow)).all()
    assert (row.status == FAILED) is not retryable
    assert f"HTTP {status}" in (row.last_error or "")


def test_a_receiver_refuses_a_signature_too_old_and_that_is_final(
    clock: FrozenClock, config: Config, ops: WebhookReceiver
) -> None:
    hour_ago = lambda: time.time() - 3600  # noqa: E731
    notifier = WebhookNotifier("ops", lambda: escalating(config, hook("ops", ops.url, OPS_SECRET)), clock=hour_ago)
    with pytest.raises(DeliveryError) as refused:
        notifier.send(note("alert.fired", "fired"))
    assert not refused.value.retryable and "HTTP 401" in str(refused.value)
    assert "replay" in ops.requests[-1].refused and ops.accepted == []


def test_an_unreachable_receiver_is_retried_without_naming_its_url(config: Config) -> None:
    port = free_port()  # a loopback port nobody listens on
    url = f"http://127.0.0.1:{port}/hooks/T0KEN"
    notifier = WebhookNotifier("ops", lambda: escalating(config, hook("ops", url, OPS_SECRET)), timeout=2)
    with pytest.raises(DeliveryError) as failed:
        notifier.send(note("alert.fired", "fired"))
    assert failed.value.retryable and "cannot reach the receiver" in str(failed.value)
    assert "T0KEN" not in str(failed.value) and OPS_SECRET not in str(failed.value)


def test_a_webhook_removed_by_a_reload_fails_its_rows_and_one_unsubscribed_skips_them(
    config: Config, ops: WebhookReceiver
) -> None:
    gone = WebhookNotifier("ops", lambda: config)
    with pytest.raises(DeliveryError, match="no webhook named 'ops'") as failed:
        gone.send(note("incident.resolved", "resolved"))
    assert not failed.value.retryable
    narrower = WebhookNotifier("ops", lambda: escalating(config, hook("ops", ops.url, OPS_SECRET, ["paged"])))
    narrower.send(note("incident.resolved", "resolved"))
    assert ops.requests == []


def test_a_held_receiver_does_not_hold_another_receivers_lane(
    db: Engine, clock: FrozenClock, config: Config, ops: WebhookReceiver, tickets: WebhookReceiver
) -> None:
    hooks = hook("ops", ops.url, OPS_SECRET, ["fired"]), hook("tickets", tickets.url, TICKETS_SECRET, ["fired"])
    bot = Bot(db, clock, escalating(config, *hooks))
    lanes = Lanes(bot.outbox, db)
    ops.hold()
    lanes.start()
    try:
        bot.fire()
        assert tickets.wait_for(1)[0]["event"] == "fired"  # while ops' request still hangs
        assert ops.accepted == []
        ops.release()
        assert ops.wait_for(1)[0]["event"] == "fired"
    finally:
        ops.release()
        lanes.stop()


def test_the_composition_root_gives_each_configured_webhook_its_own_notifier(
    db: Engine, clock: FrozenClock, config: Config, tmp_path: Any
) -> None:
    hooks = hook("ops", "https://a.example/x", OPS_SECRET), hook("tickets", "https://b.example/y", TICKETS_SECRET)
    holder = ConfigHolder(tmp_path, initial=escalating(config, *hooks))
    notifiers = default_notifiers(Settings(_env_file=None), db, holder, clock)  # type: ignore[call-arg]
    assert [c for c in notifiers if c.startswith("webhook:")] == ["webhook:ops", "webhook:tickets"]
    assert all(isinstance(notifiers[c], WebhookNotifier) for c in ("webhook:ops", "webhook:tickets"))


def test_no_secret_or_url_reaches_the_log_while_delivering(
    db: Engine, clock: FrozenClock, config: Config, ops: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = Bot(db, clock, escalating(config, hook("ops", ops.url, OPS_SECRET)))
    ops.fail_next(500)
    bot.fire()
    bot.drain()
    clock.advance(timedelta(minutes=5))
    bot.drain()
    assert ops.events() == ["fired"]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot."))
    assert "webhook ops fired" in ours and "HTTP 500" in ours  # the webhook is named by its name
    assert OPS_SECRET not in caplog.text and ops.url not in ours


def note(kind: str, event: str) -> Notification:
    payload = {"event": event, "webhook_event": event, "at": "2026-01-05T09:00:00+00:00", "model": FRAUD}
    return Notification(1, "webhook:ops", kind, 1, {**payload, "incident_id": 1, "alert_id": 1})
