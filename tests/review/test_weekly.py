"""The review read from real alerts (SQLite and PostgreSQL), and the weekly post through the outbox."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.alerts import store
from bot.clock import FrozenClock
from bot.config.email_schema import Reports
from bot.config.loader import Config
from bot.config.routing_schema import BusinessHours
from bot.notify.outbox import Outbox
from bot.review.weekly import KIND, SLO_KIND, load_review, post_weekly_review, week_of, weekly_review_text
from bot.service import AlertService
from bot.storage.database import session
from bot.storage.tables import OutboxRow
from tests.support.recording import RecordingNotifier

FRAUD = "fraud-detector-v2"
MIN = timedelta(minutes=1)


def fire_latency(service: AlertService, clock: FrozenClock, engine: Engine) -> int:
    """latency_spike (for: 2m) fires on fraud-detector-v2; returns the alert id."""
    service.ingest([(FRAUD, "p99_latency_ms", clock.now(), 6100)])
    service.evaluate_once()
    clock.advance(2 * MIN)
    service.ingest([(FRAUD, "p99_latency_ms", clock.now(), 6200)])
    service.evaluate_once()
    with session(engine) as s:
        alert = store.open_alerts(s)[f"latency_spike:{FRAUD}"]
    assert alert.id is not None
    return alert.id


def clear_latency(service: AlertService, clock: FrozenClock) -> None:
    """Latency back to normal, and kept there for the rule's 5m ``keep_firing_for``: auto-resolved."""
    for _ in range(2):
        service.ingest([(FRAUD, "p99_latency_ms", clock.now(), 800)])
        service.evaluate_once()
        clock.advance(5 * MIN)
    clock.advance(-5 * MIN)


def test_review_from_the_database(service: AlertService, clock: FrozenClock, engine: Engine, config: Config) -> None:
    start = clock.now()
    first = fire_latency(service, clock, engine)
    clock.advance(3 * MIN)
    service.acknowledge(first, actor="U_ANA")
    clock.advance(10 * MIN)
    service.resolve(first, actor="U_ANA")
    for _ in range(3):  # three blips after the 15m cooldown, each clearing a minute after firing
        clock.advance(20 * MIN)
        fire_latency(service, clock, engine)
        clock.advance(MIN)
        clear_latency(service, clock)
    clock.advance(timedelta(hours=1))

    (latency,) = load_review(engine, config, clock.now(), timedelta(days=7))
    assert (latency.rule, latency.fires, latency.acknowledged, latency.median_time_to_ack) == (
        "latency_spike",
        4,
        1,
        3 * MIN,
    )
    assert (latency.auto_resolved_unactioned, latency.acted_on, latency.ratio) == (3, 1, 4.0)
    assert latency.flagged and latency.suggestion is not None
    # each blip held 3 minutes (2 pending + 1 firing): for: 2m today, so the next step up, 5m
    assert latency.suggestion.startswith("add `for: 5m` — 3 of 4 fires auto-resolved within 15 min")

    text = weekly_review_text(engine, config, clock.now())
    assert "⚠ latency_spike │     4 │    1 │ 3 min" in text
    assert "Total: 4 incidents from 4 fires, 1 acted on" in text, "what people heard about, beside the alerts"
    # a window that ends before the first fire sees nothing
    assert "No alert fired" in weekly_review_text(engine, config, start, timedelta(days=1))


def test_the_weekly_post_is_enqueued_once_per_week_on_monday_morning(
    engine: Engine, clock: FrozenClock, config: Config
) -> None:
    clock.set(clock.now().replace(hour=8, minute=59))  # Monday 08:59 UTC
    assert not post_weekly_review(engine, config, clock.now(), channels=["slack"])
    clock.advance(MIN)
    assert not post_weekly_review(engine, config, clock.now(), channels=["log"])  # no Slack: nobody to post to
    assert post_weekly_review(engine, config, clock.now(), channels=["slack", "pagerduty"])
    clock.advance(timedelta(hours=3))
    assert not post_weekly_review(engine, config, clock.now(), channels=["slack"])  # once per week
    clock.advance(timedelta(days=1))
    assert not post_weekly_review(engine, config, clock.now(), channels=["slack"])  # Tuesday
    clock.advance(timedelta(days=6))
    assert post_weekly_review(engine, config, clock.now(), channels=["slack"])  # next Monday

    with session(engine) as s:
        rows = s.exec(select(OutboxRow).where(OutboxRow.kind == KIND).order_by(OutboxRow.id)).all()  # type: ignore[arg-type]
    assert [r.idempotency_key for r in rows] == ["review.weekly:2026-W02", "review.weekly:2026-W03"]
    row = rows[0]
    assert (row.channel, row.alert_id) == ("slack", None)
    assert row.payload["channel"] == "#ml-alerts" and row.payload["week"] == "2026-W02"
    assert row.payload["title"] == "Weekly alert review (2026-W02)"
    assert row.payload["text"].startswith("Alert review — last 7 days (")


def test_the_post_reaches_the_slack_notifier_through_the_outbox(
    engine: Engine, clock: FrozenClock, config: Config
) -> None:
    assert post_weekly_review(engine, config, clock.now(), channels=["slack"])
    slack = RecordingNotifier(channel="slack")
    Outbox(engine, clock, {"slack": slack}).deliver_due()
    (note,) = slack.sent
    assert (note.kind, note.alert_id, note.payload["channel"]) == (KIND, None, "#ml-alerts")


def test_monday_morning_is_in_the_business_hours_time_zone(clock: FrozenClock, config: Config) -> None:
    assert week_of(clock.now(), config) == ("2026-W02", True)  # Monday 09:00 UTC
    new_york = replace(config, business_hours=BusinessHours(timezone="America/New_York"))
    assert week_of(clock.now(), new_york) == ("2026-W02", False)  # 04:00 in New York
    assert week_of(clock.now() + timedelta(hours=5), new_york) == ("2026-W02", True)


def test_the_review_and_the_slo_summary_are_emailed_once_a_week_to_the_report_recipients(
    engine: Engine, clock: FrozenClock, config: Config
) -> None:
    leads = ["ml-leads@example.com"]
    emailing = replace(config, routing=config.routing.model_copy(update={"reports": Reports(email=leads)}))

    assert post_weekly_review(engine, emailing, clock.now(), channels=["log", "email"])
    assert not post_weekly_review(engine, emailing, clock.now(), channels=["log", "email"])  # once per week
    assert post_weekly_review(engine, emailing, clock.now(), channels=["slack", "email"])  # Slack's is its own row
    clock.advance(timedelta(days=7))
    assert not post_weekly_review(engine, config, clock.now(), channels=["email"])  # no recipients: no email

    with session(engine) as s:
        rows = s.exec(select(OutboxRow).order_by(OutboxRow.id)).all()  # type: ignore[arg-type]
    assert [(r.channel, r.kind, r.idempotency_key) for r in rows] == [
        ("email", KIND, "email:review.weekly:2026-W02"),
        ("email", SLO_KIND, "email:slo.summary:2026-W02"),
        ("slack", KIND, "review.weekly:2026-W02"),
    ]
    review, slo = rows[0].payload, rows[1].payload
    assert review["email_to"] == leads and review["title"] == "Weekly alert review (2026-W02)"
    assert review["text"] == rows[2].payload["text"]
    assert slo["email_to"] == leads and slo["title"] == "SLO summary (2026-W02)"
    assert FRAUD in slo["text"]
