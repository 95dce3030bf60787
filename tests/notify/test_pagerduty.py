"""The PagerDuty notifier against the local Events API v2 emulator, over real HTTP.

Covers the translation (which notification becomes which event, with which fields and limits),
the failure classes the outbox acts on (429 / 5xx / timeout retry, 400 is final), the
client-side throttle, and one run through the real Outbox on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from bot.alerts import store
from bot.alerts.lifecycle import Alert, AlertState, Event, EventKind
from bot.clock import FrozenClock, ensure_utc
from bot.config.loader import Config
from bot.errors import DeliveryError
from bot.notify.dispatch import notification_payload
from bot.notify.http_delivery import retry_after
from bot.notify.notifier import Notification
from bot.notify.outbox import Outbox, pending
from bot.notify.pagerduty import (
    MAX_DEDUP_KEY,
    MAX_SUMMARY,
    PagerDutyNotifier,
    RateLimiter,
    key_fingerprint,
    occurrence_key,
)
from bot.service import AlertService, every_channel
from bot.settings import Settings
from bot.severity import Severity
from bot.storage.database import session
from tests.emulators.pagerduty_events import PagerDutyEmulator

KEY = "R0UTINGKEYDEFAULT000000000000001"
OTHER_KEY = "R0UTINGKEYFRAUDTEAM0000000000002"
FRAUD = "fraud-detector-v2"
FIRED_AT = datetime(2026, 1, 5, 9, 3, tzinfo=UTC)
OCCURRENCE = f"latency_spike:{FRAUD}:20260105T090300Z"


class Seconds:
    """A settable clock in seconds for the throttle."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pd() -> Iterator[PagerDutyEmulator]:
    with PagerDutyEmulator() as emulator:
        yield emulator


@pytest.fixture
def seconds() -> Seconds:
    return Seconds()


@pytest.fixture
def notifier(pd: PagerDutyEmulator, seconds: Seconds) -> Iterator[PagerDutyNotifier]:
    notifier = PagerDutyNotifier(pd.url, routing_key=KEY, timeout=2, throttle=RateLimiter(clock=seconds))
    yield notifier
    notifier.close()


def alert(**overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "rule": "latency_spike",
        "model": FRAUD,
        "severity": Severity.P1,
        "state": AlertState.FIRING,
        "started_at": FIRED_AT - timedelta(minutes=2),
        "title": f"P99 latency >5s for {FRAUD}",
        "description": "P99 latency: 6200ms (threshold: 5000ms).",
        "values": {"p99_latency_ms": 6200.0},
        "fired_at": FIRED_AT,
        "id": 7,
        "version": 2,
    }
    fields.update(overrides)
    return Alert(**fields)


INCIDENT_KIND = {
    EventKind.FIRED: "opened",
    EventKind.ESCALATED: "escalated",
    EventKind.ACKNOWLEDGED: "acknowledged",
    EventKind.RESOLVED: "resolved",
    EventKind.AUTO_RESOLVED: "auto_resolved",
}
"""PagerDuty hears incidents: the page of an alert's incident for each thing that happened to it."""


def note(kind: EventKind | str = EventKind.FIRED, *, subject: Alert | None = None, **extra: Any) -> Notification:
    """A page as the service writes it: here the incident's identity is its single alert's snapshot
    (``key`` and ``fired_at`` name what PagerDuty dedups on), plus ``extra`` payload keys."""
    name = INCIDENT_KIND.get(kind, str(kind)) if isinstance(kind, EventKind) else kind
    event_kind = kind if isinstance(kind, EventKind) else EventKind.FIRED
    subject = subject or alert()
    payload = {**notification_payload(subject, Event(event_kind, "U1", FIRED_AT)), **extra}
    return Notification(id=1, channel="pagerduty", kind=f"incident.{name}", alert_id=subject.id, payload=payload)


def sent(pd: PagerDutyEmulator) -> list[dict[str, Any]]:
    return [e["body"] for e in pd.events]


# ------------------------------------------------------------------ occurrence key (pure)
def test_the_occurrence_key_is_the_alert_key_plus_its_fire_time_in_compact_utc() -> None:
    assert occurrence_key(note().payload) == OCCURRENCE
    local = {"key": "r:m", "fired_at": "2026-01-05T10:03:00+01:00", "started_at": "2026-01-05T08:00:00+00:00"}
    assert occurrence_key(local) == "r:m:20260105T090300Z"
    assert (
        occurrence_key({"key": "r:m", "fired_at": None, "started_at": "2026-01-05T08:00:00"}) == "r:m:20260105T080000Z"
    )
    with pytest.raises(ValueError, match="no alert key"):
        occurrence_key({"fired_at": "2026-01-05T08:00:00"})


def test_the_occurrence_key_agrees_with_the_alerts_own() -> None:
    subject = alert()
    assert occurrence_key(note(subject=subject).payload) == subject.occurrence == OCCURRENCE


def test_a_re_fire_gets_a_new_occurrence_key() -> None:
    first = occurrence_key(note().payload)
    again = occurrence_key(note(subject=alert(fired_at=FIRED_AT + timedelta(hours=1), id=8)).payload)
    assert first != again and first.rsplit(":", 1)[0] == again.rsplit(":", 1)[0]


def test_a_long_occurrence_key_is_cut_to_255_keeping_its_time_and_staying_distinct() -> None:
    long_a = {"key": "r:" + "a" * 300, "fired_at": FIRED_AT.isoformat()}
    long_b = {"key": "r:" + "a" * 299 + "b", "fired_at": FIRED_AT.isoformat()}

    a, b = occurrence_key(long_a), occurrence_key(long_b)

    assert len(a) == len(b) == MAX_DEDUP_KEY
    assert a.endswith(":20260105T090300Z") and a.startswith("r:aaaa")
    assert a != b
    assert occurrence_key(long_a) == a  # stable: the resolve finds the trigger's incident


# ------------------------------------------------------------------ trigger / acknowledge / resolve
def test_a_fired_alert_triggers_an_incident_with_pagerdutys_fields(
    pd: PagerDutyEmulator, notifier: PagerDutyNotifier
) -> None:
    notifier.send(
        note(runbook_url="https://runbooks.example/latency-spike", slack_permalink="https://slack.example/p123")
    )

    [body] = sent(pd)
    assert body["routing_key"] == KEY and body["event_action"] == "trigger" and body["dedup_key"] == OCCURRENCE
    assert body["payload"] == {
        "summary": f"[P1] P99 latency >5s for {FRAUD}",
        "source": FRAUD,
        "severity": "error",
        "component": "latency_spike",
        "timestamp": FIRED_AT.isoformat(),
        "custom_details": {
            "p99_latency_ms": 6200.0,
            "rule": "latency_spike",
            "model": FRAUD,
            "state": "firing",
            "severity": "P1",
            "alert_key": f"latency_spike:{FRAUD}",
            "description": "P99 latency: 6200ms (threshold: 5000ms).",
        },
    }
    assert body["links"] == [
        {"href": "https://runbooks.example/latency-spike", "text": "Runbook"},
        {"href": "https://slack.example/p123", "text": "Slack message"},
    ]
    assert body["client"] == "incident-bot"
    assert pd.incidents[(KEY, OCCURRENCE)].status == "triggered"


def test_the_alerts_links_come_first_in_the_trigger_events_links(
    pd: PagerDutyEmulator, notifier: PagerDutyNotifier
) -> None:
    links = [{"text": "Dashboard", "url": "https://grafana.example/d/fraud"}, {"text": "bad", "url": "file:///x"}]
    notifier.send(note(links=links, slack_permalink="https://slack.example/p123"))
    assert sent(pd)[0]["links"] == [
        {"href": "https://grafana.example/d/fraud", "text": "Dashboard"},
        {"href": "https://slack.example/p123", "text": "Slack message"},
    ]


def test_links_are_left_out_when_the_payload_has_none(pd: PagerDutyEmulator, notifier: PagerDutyNotifier) -> None:
    notifier.send(note())
    assert "links" not in sent(pd)[0]


@pytest.mark.parametrize(
    ("severity", "expected"),
    [(Severity.P0, "critical"), (Severity.P1, "error"), (Severity.P2, "warning"), (Severity.P3, "info")],
)
def test_severities_map_to_pagerdutys_four(
    pd: PagerDutyEmulator, notifier: PagerDutyNotifier, severity: Severity, expected: str
) -> None:
    notifier.send(note(subject=alert(severity=severity)))

    assert sent(pd)[0]["payload"]["severity"] == expected
    assert sent(pd)[0]["payload"]["summary"].startswith(f"[{severity.value}] ")
    assert pd.accepted


def test_a_summary_over_1024_characters_is_cut_with_an_ellipsis_and_accepted(
    pd: PagerDutyEmulator, notifier: PagerDutyNotifier
) -> None:
    notifier.send(note(subject=alert(title="x" * 2000)))

    summary = sent(pd)[0]["payload"]["summary"]
    assert len(summary) == MAX_SUMMARY and summary.startswith("[P1] xxx") and summary.endswith("…")
    assert pd.events[0]["status"] == 202


def test_a_dedup_key_over_255_characters_is_cut_and_accepted(
    pd: PagerDutyEmulator, notifier: PagerDutyNotifier
) -> None:
    notifier.send(note(subject=alert(model="m" * 300)))
    notifier.send(note(EventKind.RESOLVED, subject=alert(model="m" * 300, state=AlertState.RESOLVED)))

    trigger, resolve = sent(pd)
    assert len(trigger["dedup_key"]) == MAX_DEDUP_KEY and trigger["dedup_key"] == resolve["dedup_key"]
    assert [e["status"] for e in pd.events] == [202, 202]
    assert pd.incidents[(KEY, trigger["dedup_key"])].status == "resolved"


def test_acknowledge_and_resolve_follow_the_trigger_onto_the_same_incident(
    pd: PagerDutyEmulator, notifier: PagerDutyNotifier
) -> None:
    notifier.send(note())
    notifier.send(note(EventKind.ACKNOWLEDGED, subject=alert(state=AlertState.ACKNOWLEDGED)))
    assert pd.incidents[(KEY, OCCURRENCE)].status == "acknowledged"
    notifier.send(note(EventKind.RESOLVED, subject=alert(state=AlertState.RESOLVED)))

    assert [(b["event_action"], b["dedup_key"]) for b in sent(pd)] == [
        ("trigger", OCCURRENCE),
        ("acknowledge", OCCURRENCE),
        ("resolve", OCCURRENCE),
    ]
    assert set(sent(pd)[1]) == {"routing_key", "event_action", "dedup_key"}  # no payload on follow-ups
    assert pd.incidents[(KEY, OCCURRENCE)].status == "resolved"
    assert all(e["applied"] for e in pd.events)


def test_an_auto_resolve_resolves_the_incident(pd: PagerDutyEmulator, notifier: PagerDutyNotifier) -> None:
    notifier.send(note())
    notifier.send(note(EventKind.AUTO_RESOLVED, subject=alert(state=AlertState.RESOLVED)))

    assert sent(pd)[1]["event_action"] == "resolve"
    assert pd.incidents[(KEY, OCCURRENCE)].status == "resolved"


def test_a_re_fire_after_a_resolve_opens_a_new_incident(pd: PagerDutyEmulator, notifier: PagerDutyNotifier) -> None:
    notifier.send(note())
    notifier.send(note(EventKind.RESOLVED, subject=alert(state=AlertState.RESOLVED)))
    notifier.send(note(subject=alert(id=8, fired_at=FIRED_AT + timedelta(minutes=30))))
    notifier.send(note(EventKind.RESOLVED))  # a late retry of the first occurrence's resolve

    first, second = pd.all_incidents
    assert first.dedup_key == OCCURRENCE and second.dedup_key.endswith(":20260105T093300Z")
    assert second.status == "triggered"  # the stale resolve did not close the new incident


def test_an_escalation_pages_only_when_its_severity_pages(pd: PagerDutyEmulator, notifier: PagerDutyNotifier) -> None:
    notifier.send(note("escalated", subject=alert(severity=Severity.P2)))
    assert pd.events == []

    notifier.send(note("escalated", subject=alert(severity=Severity.P1)))
    notifier.send(note("escalated", subject=alert(severity=Severity.P0)))

    assert [b["payload"]["severity"] for b in sent(pd)] == ["error", "critical"]
    incident = pd.incidents[(KEY, OCCURRENCE)]
    assert incident.triggers == 2 and incident.severity == "critical" and len(pd.all_incidents) == 1


def test_an_escalation_step_naming_its_own_service_pages_it_whatever_the_severity(
    pd: PagerDutyEmulator, notifier: PagerDutyNotifier
) -> None:
    notifier.send(note("escalated", subject=alert(severity=Severity.P2), pagerduty_routing_key=OTHER_KEY))

    [body] = sent(pd)
    assert body["routing_key"] == OTHER_KEY and body["payload"]["severity"] == "warning"
    assert pd.incidents[(OTHER_KEY, OCCURRENCE)].status == "triggered"


@pytest.mark.parametrize("kind", ["alert.fired", "alert.acknowledged", "incident.joined_quietly", "digest"])
def test_kinds_pagerduty_has_no_part_in_are_ignored(
    pd: PagerDutyEmulator, notifier: PagerDutyNotifier, kind: str
) -> None:
    notifier.send(Notification(1, "pagerduty", kind, 7, note().payload))
    assert pd.events == []


def test_re_sending_the_same_trigger_does_not_open_a_second_incident(
    pd: PagerDutyEmulator, notifier: PagerDutyNotifier
) -> None:
    notifier.send(note())
    notifier.send(note())

    assert len(pd.accepted) == 2
    assert len(pd.all_incidents) == 1 and pd.incidents[(KEY, OCCURRENCE)].triggers == 2


# ------------------------------------------------------------------ routing keys
def test_a_routing_key_in_the_payload_wins_over_the_default(pd: PagerDutyEmulator, notifier: PagerDutyNotifier) -> None:
    notifier.send(note(pagerduty_routing_key=OTHER_KEY))
    notifier.send(note(EventKind.RESOLVED, pagerduty_routing_key=OTHER_KEY))

    assert [b["routing_key"] for b in sent(pd)] == [OTHER_KEY, OTHER_KEY]
    assert pd.incidents[(OTHER_KEY, OCCURRENCE)].status == "resolved"


def test_without_any_routing_key_the_page_fails_for_good(pd: PagerDutyEmulator) -> None:
    notifier = PagerDutyNotifier(pd.url, routing_key=None)

    with pytest.raises(DeliveryError, match="no PagerDuty routing key") as caught:
        notifier.send(note())

    assert not caught.value.retryable and "PAGERDUTY_ROUTING_KEY" in str(caught.value)
    assert pd.events == []
    notifier.close()


def test_from_settings_uses_the_events_url_and_default_key(pd: PagerDutyEmulator) -> None:
    settings = Settings(pagerduty_routing_key=KEY, pagerduty_events_url=pd.url)  # type: ignore[arg-type]
    notifier = PagerDutyNotifier.from_settings(settings, timeout=2)

    notifier.send(note())

    assert pd.incidents[(KEY, OCCURRENCE)].status == "triggered"
    notifier.close()


def test_the_routing_key_never_reaches_logs_or_error_messages(
    pd: PagerDutyEmulator, notifier: PagerDutyNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[DeliveryError] = []
    pd.fail_next(status=400)
    pd.fail_next(status=500)
    for _ in range(3):
        try:
            notifier.send(note())
        except DeliveryError as exc:
            errors.append(exc)

    assert len(errors) == 2 and pd.accepted
    assert KEY not in caplog.text and all(KEY not in str(e) for e in errors)
    assert key_fingerprint(KEY) in caplog.text and key_fingerprint(KEY) != key_fingerprint(OTHER_KEY)


# ------------------------------------------------------------------ failures
def test_a_429_is_retryable_with_the_servers_retry_after(pd: PagerDutyEmulator, notifier: PagerDutyNotifier) -> None:
    pd.fail_next(status=429, retry_after=30)
    pd.fail_next(status=429)

    with pytest.raises(DeliveryError) as with_header:
        notifier.send(note())
    with pytest.raises(DeliveryError) as without_header:
        notifier.send(note())

    assert with_header.value.retryable and with_header.value.retry_after == 30
    assert "429" in str(with_header.value)
    assert without_header.value.retryable and without_header.value.retry_after is None
    assert pd.incidents == {}


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_is_retryable(pd: PagerDutyEmulator, notifier: PagerDutyNotifier, status: int) -> None:
    pd.fail_next(status=status)

    with pytest.raises(DeliveryError) as caught:
        notifier.send(note())

    assert caught.value.retryable and str(status) in str(caught.value)
    notifier.send(note())  # and the retry goes through
    assert pd.incidents[(KEY, OCCURRENCE)].status == "triggered"


def test_a_400_is_final_and_reports_pagerdutys_errors(pd: PagerDutyEmulator, notifier: PagerDutyNotifier) -> None:
    pd.fail_next(status=400)

    with pytest.raises(DeliveryError) as caught:
        notifier.send(note())

    assert not caught.value.retryable
    assert "HTTP 400" in str(caught.value) and "Event object is invalid" in str(caught.value)
    assert "injected fault" in str(caught.value)


def test_a_400_from_validation_names_what_pagerduty_refused() -> None:
    with PagerDutyEmulator(strict_routing_key=True) as strict:
        notifier = PagerDutyNotifier(strict.url, routing_key="too-short", timeout=2)
        with pytest.raises(DeliveryError) as caught:
            notifier.send(note())
        notifier.close()

    assert not caught.value.retryable and "should be 32 characters" in str(caught.value)
    assert "too-short" not in str(caught.value)


def test_a_timeout_is_retryable_and_the_retry_does_not_page_twice(pd: PagerDutyEmulator, seconds: Seconds) -> None:
    notifier = PagerDutyNotifier(pd.url, routing_key=KEY, timeout=0.2, throttle=RateLimiter(clock=seconds))
    pd.delay_next(1.0)

    with pytest.raises(DeliveryError) as caught:
        notifier.send(note())
    assert caught.value.retryable and "may or may not have been applied" in str(caught.value)

    notifier.send(note())  # PagerDuty took the first one after all: the same dedup key lands on it
    assert len(pd.all_incidents) == 1 and pd.incidents[(KEY, OCCURRENCE)].triggers == 2
    notifier.close()


def test_an_unreachable_server_is_retryable() -> None:
    emulator = PagerDutyEmulator().start()
    url = emulator.url
    emulator.stop()
    notifier = PagerDutyNotifier(url, routing_key=KEY, timeout=1)

    with pytest.raises(DeliveryError) as caught:
        notifier.send(note())

    assert caught.value.retryable and "cannot reach PagerDuty" in str(caught.value)
    notifier.close()


def test_a_wrong_events_url_is_final_and_says_which_setting(pd: PagerDutyEmulator) -> None:
    notifier = PagerDutyNotifier(pd.base_url + "/v1/wrong", routing_key=KEY, timeout=2)

    with pytest.raises(DeliveryError) as caught:
        notifier.send(note())

    assert not caught.value.retryable and "PAGERDUTY_EVENTS_URL" in str(caught.value)
    notifier.close()


def test_retry_after_reads_seconds_and_http_dates() -> None:
    later = datetime.now(UTC) + timedelta(seconds=90)
    assert retry_after(httpx.Headers({"Retry-After": "12"})) == 12
    assert 80 < (retry_after(httpx.Headers({"Retry-After": format_datetime(later, usegmt=True)})) or 0) <= 90
    assert retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert retry_after(httpx.Headers({})) is None


# ------------------------------------------------------------------ client-side throttle
def test_the_121st_event_in_a_minute_for_one_key_is_held_back_while_another_key_goes_through(
    pd: PagerDutyEmulator, notifier: PagerDutyNotifier, seconds: Seconds
) -> None:
    for i in range(120):
        notifier.send(note(subject=alert(model=f"model-{i}")))
        seconds.now += 0.25  # 120 events over 30 s

    with pytest.raises(DeliveryError) as caught:
        notifier.send(note(subject=alert(model="model-120")))

    assert caught.value.retryable
    assert caught.value.retry_after == pytest.approx(30.0)  # the first event leaves the window 60 s after it went out
    assert len(pd.events) == 120  # held back here, not sent to collect a 429

    notifier.send(note(subject=alert(model="model-120"), pagerduty_routing_key=OTHER_KEY))
    assert pd.incidents[(OTHER_KEY, f"latency_spike:model-120:{FIRED_AT:%Y%m%dT%H%M%SZ}")].status == "triggered"

    seconds.now += 30.0
    notifier.send(note(subject=alert(model="model-120")))
    assert len(pd.accepted) == 122


def test_ignored_kinds_and_unbuildable_events_take_no_throttle_slot(seconds: Seconds) -> None:
    limiter = RateLimiter(limit=1, window=60, clock=seconds)
    notifier = PagerDutyNotifier("http://127.0.0.1:9/v2/enqueue", routing_key=KEY, throttle=limiter)
    notifier.send(note("escalated", subject=alert(severity=Severity.P3)))
    with pytest.raises(DeliveryError):
        notifier.send(Notification(1, "pagerduty", "incident.opened", 7, {"severity": "P9", "key": "r:m"}))
    assert limiter.acquire(KEY) == 0.0
    notifier.close()


def test_the_rate_limiter_admits_exactly_its_limit_across_threads(seconds: Seconds) -> None:
    limiter = RateLimiter(limit=120, window=60, clock=seconds)
    admitted: list[float] = []
    lock = threading.Lock()

    def burst() -> None:
        for _ in range(50):
            wait = limiter.acquire(KEY)
            with lock:
                admitted.append(wait)

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert admitted.count(0.0) == 120 and all(w == 60 for w in admitted if w)
    seconds.now += 60
    assert limiter.acquire(KEY) == 0.0
    limiter.prune()
    assert limiter.acquire(OTHER_KEY) == 0.0


def test_the_rate_limiter_refuses_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        RateLimiter(limit=0)
    with pytest.raises(ValueError):
        RateLimiter(window=0)


# ------------------------------------------------------------------ through the real outbox
def test_a_page_rate_limited_once_is_delivered_exactly_once_through_the_outbox(
    engine: Engine, clock: FrozenClock, config: Config, pd: PagerDutyEmulator
) -> None:
    service = AlertService(engine, clock, lambda: config, every_channel(["pagerduty"]))
    notifier = PagerDutyNotifier(pd.url, routing_key=KEY, timeout=2)
    outbox = Outbox(engine, clock, {"pagerduty": notifier}, rng=random.Random(1))
    service.ingest([(FRAUD, "p99_latency_ms", clock.now(), 6100)])
    service.evaluate_once()
    clock.advance(timedelta(minutes=2))
    service.ingest([(FRAUD, "p99_latency_ms", clock.now(), 6200)])
    service.evaluate_once()
    fired_at = clock.now()
    pd.fail_next(status=429, retry_after=30)

    assert outbox.deliver_due() == 0
    [row] = pending(engine)
    assert row.attempts == 1 and "429" in (row.last_error or "")
    assert ensure_utc(row.not_before) == clock.now() + timedelta(seconds=30)

    clock.advance(timedelta(seconds=29))
    assert outbox.deliver_due() == 0 and len(pd.events) == 1  # not before Retry-After
    clock.advance(timedelta(seconds=1))
    assert outbox.deliver_due() == 1
    clock.advance(timedelta(minutes=10))
    assert outbox.deliver_due() == 0

    dedup_key = f"incident:1:{fired_at:%Y%m%dT%H%M%SZ}"
    assert [(e["status"], e["body"]["event_action"]) for e in pd.events] == [(429, "trigger"), (202, "trigger")]
    assert pd.events[1]["body"]["links"] == [{"href": "https://grafana.internal/d/fraud-v2", "text": "Dashboard"}]
    assert list(pd.incidents) == [(KEY, dedup_key)] and pd.incidents[(KEY, dedup_key)].triggers == 1

    with session(engine) as s:
        firing = store.open_alerts(s)[f"latency_spike:{FRAUD}"]
    assert firing.id is not None
    service.acknowledge(firing.id, actor="U1")
    service.resolve(firing.id, actor="U1")
    while outbox.deliver_due():
        pass
    assert [e["body"]["event_action"] for e in pd.accepted] == ["trigger", "acknowledge", "resolve"]
    assert pd.incidents[(KEY, dedup_key)].status == "resolved" and pending(engine) == []
    notifier.close()
