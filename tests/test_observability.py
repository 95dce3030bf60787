"""``GET /metrics`` (SPEC §4, issue 7): the bot's own counters, scraped like any other service.

The bots here are built by :func:`bot.app.build_bot`, the way ``incident-bot serve`` builds
them, and scraped through the real route; the exposition is read back with prometheus_client's
own parser, so a malformed page fails the tests the way it would fail a Prometheus scrape.
The TestClient is used without ``with``: the lifespan (and so the scheduler) does not start,
and the test decides when evaluation, delivery and escalation run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.testclient import TestClient

from bot.app import Bot, build_bot
from bot.clock import FrozenClock
from bot.errors import DeliveryError
from bot.notify import outbox
from bot.notify.notifier import Notification, Notifier
from bot.notify.pagerduty import PagerDutyNotifier
from bot.observability import OUTBOX_FAILED, OUTBOX_PENDING, PATH, Metrics
from bot.settings import Settings
from bot.storage.database import make_engine
from tests.emulators.pagerduty_events import PagerDutyEmulator
from tests.emulators.slack_api import SlackEmulator
from tests.support.recording import RecordingNotifier

REPO = Path(__file__).resolve().parent.parent
INGEST_TOKEN = "metrics-ingest-t0ken"
SLACK_TOKEN = "xoxb-metrics-test"

Scrape = dict[str, list[Sample]]
"""Samples by metric family name."""


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        ingest_token=INGEST_TOKEN,  # type: ignore[arg-type]
        **overrides,  # type: ignore[arg-type]
    )


def make_bot(tmp_path: Path, clock: FrozenClock, notifiers: Mapping[str, Notifier] | None, **overrides: object) -> Bot:
    return build_bot(settings(tmp_path, **overrides), clock=clock, notifiers=notifiers, config_dir=REPO)


@pytest.fixture
def recording() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def bot(tmp_path: Path, clock: FrozenClock, recording: RecordingNotifier) -> Iterator[Bot]:
    built = make_bot(tmp_path, clock, {"recording": recording})
    yield built
    built.engine.dispose()


def scrape(bot: Bot) -> Scrape:
    response = TestClient(bot.app).get(PATH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def parse(exposition: str) -> Scrape:
    """Read the page back as Prometheus would: a malformed exposition raises here."""
    return {family.name: family.samples for family in text_string_to_metric_families(exposition)}


def value(page: Scrape, family: str, sample: str | None = None, **labels: str) -> float:
    """The one sample of ``family`` named ``sample`` (default: the family's name) with exactly these labels."""
    name = sample or family
    found = [s.value for s in page[family] if s.name == name and s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {found} among {page[family]}"
    return found[0]


def notifications(page: Scrape, channel: str, outcome: str) -> float:
    return value(
        page, "incident_bot_notifications", "incident_bot_notifications_total", channel=channel, outcome=outcome
    )


def api_calls(page: Scrape, api: str, method: str) -> float:
    return value(page, "incident_bot_api_seconds", "incident_bot_api_seconds_count", api=api, method=method)


def push_cost(bot: Bot, usd: float = 455.20) -> None:
    """support-bot's daily cost over 80% of its budget fires ``llm_cost_runaway`` (P1) at once."""
    response = TestClient(bot.app).post(
        "/api/v1/metrics",
        headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
        json={"model": "support-bot", "metrics": {"daily_cost_usd": usd}},
    )
    assert response.status_code == 202, response.text


def test_an_idle_bot_exposes_every_family_at_zero(bot: Bot) -> None:
    page = scrape(bot)
    assert {
        "incident_bot_notifications",
        "incident_bot_evaluation_seconds",
        "incident_bot_escalation_lateness_seconds",
        "incident_bot_api_seconds",
        "incident_bot_alerts",
        "incident_bot_outbox_depth",
        "incident_bot_outbox_failed",
        "incident_bot_database_up",
    } <= page.keys()
    for outcome in ("sent", "failed", "retried"):
        assert notifications(page, "recording", outcome) == 0
    assert value(page, "incident_bot_alerts", state="firing", severity="P0") == 0
    assert value(page, "incident_bot_outbox_depth", channel="recording") == 0
    assert value(page, "incident_bot_outbox_failed", channel="recording") == 0
    assert value(page, "incident_bot_database_up") == 1
    assert all(s.labels.get("state") != "resolved" for s in page["incident_bot_alerts"])


def test_a_firing_alert_is_counted_queued_and_then_sent(bot: Bot, recording: RecordingNotifier) -> None:
    push_cost(bot)
    assert bot.service.evaluate_once().transitions

    page = scrape(bot)
    assert value(page, "incident_bot_alerts", state="firing", severity="P1") == 1
    assert sum(s.value for s in page["incident_bot_alerts"]) == 1
    queued = value(page, "incident_bot_outbox_depth", channel="recording")
    assert queued == bot.outbox.depth() >= 1
    evaluations = "incident_bot_evaluation_seconds_count"
    assert value(page, "incident_bot_evaluation_seconds", evaluations) >= 1

    sent = bot.outbox.deliver_due()
    assert sent == len(recording.sent) >= 1

    page = scrape(bot)
    assert notifications(page, "recording", "sent") == sent
    assert notifications(page, "recording", "retried") == 0
    assert value(page, "incident_bot_outbox_depth", channel="recording") == queued - sent
    assert value(page, "incident_bot_alerts", state="firing", severity="P1") == 1


def test_every_pass_is_timed(bot: Bot) -> None:
    for _ in range(3):
        bot.service.evaluate_once()
    page = scrape(bot)
    assert value(page, "incident_bot_evaluation_seconds", "incident_bot_evaluation_seconds_count") == 3
    assert value(page, "incident_bot_evaluation_seconds", "incident_bot_evaluation_seconds_sum") > 0


def test_a_retryable_failure_counts_as_retried_and_stays_queued(bot: Bot, recording: RecordingNotifier) -> None:
    push_cost(bot)
    bot.service.evaluate_once()
    queued = bot.outbox.depth()
    recording.fail_next(DeliveryError("Slack is down", retryable=True))

    assert bot.outbox.deliver_due() == 0

    page = scrape(bot)
    assert notifications(page, "recording", "retried") == 1
    assert notifications(page, "recording", "sent") == 0
    assert notifications(page, "recording", "failed") == 0
    assert value(page, "incident_bot_outbox_depth", channel="recording") == queued


def test_a_refused_notification_counts_as_failed_and_leaves_the_queue(bot: Bot, recording: RecordingNotifier) -> None:
    push_cost(bot)
    bot.service.evaluate_once()
    queued = bot.outbox.depth()
    recording.fail_next(DeliveryError("channel_not_found", retryable=False))

    bot.outbox.deliver_due()

    page = scrape(bot)
    assert notifications(page, "recording", "failed") == 1
    assert notifications(page, "recording", "retried") == 0
    assert value(page, "incident_bot_outbox_depth", channel="recording") < queued
    assert value(page, "incident_bot_outbox_failed", channel="recording") == 1, "and waits in sight for retry or drop"


def test_escalation_lateness_is_the_time_past_the_steps_deadline(bot: Bot, clock: FrozenClock) -> None:
    push_cost(bot)
    bot.service.evaluate_once()
    # the default policy's first step is due 15 minutes after firing; the sweep runs 42 s after that
    clock.advance(timedelta(minutes=15, seconds=42))

    assert bot.service.escalate_due() == 1

    page = scrape(bot)
    family = "incident_bot_escalation_lateness_seconds"
    assert value(page, family, f"{family}_count") == 1
    assert value(page, family, f"{family}_sum") == pytest.approx(42)
    assert value(page, family, f"{family}_bucket", le="30.0") == 0
    assert value(page, family, f"{family}_bucket", le="60.0") == 1


def test_slack_and_pagerduty_calls_are_timed_by_method(tmp_path: Path, clock: FrozenClock) -> None:
    with SlackEmulator(token=SLACK_TOKEN) as slack, PagerDutyEmulator() as pagerduty:
        bot = make_bot(
            tmp_path,
            clock,
            None,  # the notifiers build_bot picks from the settings: Slack and PagerDuty
            slack_bot_token=SLACK_TOKEN,
            slack_api_url=slack.base_url,
            pagerduty_routing_key="R0UT1NGKEY0000000000000000000000",
            pagerduty_events_url=pagerduty.url,
        )
        try:
            push_cost(bot)
            bot.service.evaluate_once()
            clock.advance(timedelta(minutes=1))  # past any grouping wait
            bot.outbox.deliver_due()
            page = scrape(bot)
        finally:
            bot.engine.dispose()
        assert pagerduty.accepted  # the trigger reached PagerDuty

    assert api_calls(page, "slack", "chat.postMessage") >= 1
    assert api_calls(page, "pagerduty", "trigger") == 1
    assert notifications(page, "pagerduty", "sent") == 1
    assert notifications(page, "slack", "sent") >= 1


def test_a_call_that_gets_no_answer_is_timed_too() -> None:
    def no_answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    metrics = Metrics()
    notifier = PagerDutyNotifier(
        "http://pagerduty.invalid/v2/enqueue",
        routing_key="R0UT1NGKEY0000000000000000000000",
        client=httpx.Client(transport=httpx.MockTransport(no_answer)),
        metrics=metrics,
    )
    payload = {
        "key": "latency_spike:fraud",
        "severity": "P1",
        "title": "P99 latency",
        "fired_at": "2026-01-05T09:00:00Z",
    }

    try:
        with pytest.raises(DeliveryError):
            notifier.send(Notification(1, "pagerduty", "incident.opened", 1, payload))
    finally:
        notifier.close()

    page = parse(metrics.exposition().decode())
    assert api_calls(page, "pagerduty", "trigger") == 1


def test_an_unreadable_database_still_answers_with_the_in_process_metrics(tmp_path: Path) -> None:
    metrics = Metrics(make_engine(f"sqlite:///{tmp_path}/no/such/dir/bot.db"), channels=["slack"])
    metrics.notification("slack", "retried")

    page = parse(metrics.exposition().decode())

    assert value(page, "incident_bot_database_up") == 0
    assert notifications(page, "slack", "retried") == 1
    assert "incident_bot_alerts" not in page and "incident_bot_outbox_depth" not in page


def test_bots_in_one_process_keep_separate_registries(tmp_path: Path, clock: FrozenClock) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_bot(tmp_path / "a", clock, {"recording": RecordingNotifier()})
    second = make_bot(tmp_path / "b", clock, {"recording": RecordingNotifier()})
    try:
        first.service.evaluate_once()
        evaluations = "incident_bot_evaluation_seconds_count"
        assert value(scrape(first), "incident_bot_evaluation_seconds", evaluations) == 1
        assert value(scrape(second), "incident_bot_evaluation_seconds", evaluations) == 0
    finally:
        first.engine.dispose()
        second.engine.dispose()


def test_the_outbox_depth_gauge_counts_the_outboxs_pending_status() -> None:
    assert OUTBOX_PENDING == outbox.PENDING  # repeated in bot.observability to avoid an import cycle
    assert OUTBOX_FAILED == outbox.FAILED
