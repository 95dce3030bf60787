"""A page's result in the alert's thread (SPEC §1): the outbox's result hook, wired as ``bot.app``
wires it, turns a PagerDuty trigger that was accepted -- or that failed for good -- into one Slack
thread reply. Real service, outbox and notifiers against the Slack and PagerDuty emulators."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from bot.alerts import store
from bot.clock import FrozenClock
from bot.config.loader import Config
from bot.notify.notifier import Notification, Notifier
from bot.notify.outbox import FAILED, SENT, Outbox, ResultHook
from bot.notify.page_results import page_result_hook
from bot.notify.pagerduty import PagerDutyNotifier
from bot.notify.slack import ChannelPacer, SlackNotifier, make_client
from bot.service import AlertService, every_channel
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow
from tests.emulators.pagerduty_events import PagerDutyEmulator
from tests.emulators.slack_api import SlackEmulator
from tests.notify.slack_harness import CHANNEL, COST_KEY, FakeTime

ROUTING_KEY = "rk-page-results-test"
PAGE_RESULT = "alert.page_result"


@pytest.fixture
def pd() -> Iterator[PagerDutyEmulator]:
    with PagerDutyEmulator() as emulator:
        yield emulator


@dataclass
class Paging:
    engine: Engine
    clock: FrozenClock
    slack: SlackEmulator
    pd: PagerDutyEmulator
    service: AlertService
    config: Config
    slack_notifier: SlackNotifier
    pager: PagerDutyNotifier

    def outbox(self, hook: ResultHook | None = None) -> Outbox:
        notifiers: dict[str, Notifier] = {"slack": self.slack_notifier, "pagerduty": self.pager}
        on_result = hook or page_result_hook(self.clock)
        return Outbox(self.engine, self.clock, notifiers, rng=random.Random(7), on_result=on_result)

    def fire_cost_alert(self) -> int:
        """support-bot at $450 of $500 fires ``llm_cost_runaway`` at P1: it posts and pages."""
        self.service.ingest([("support-bot", "daily_cost_usd", self.clock.now(), 450.0)])
        self.service.evaluate_once()
        with open_session(self.engine) as s:
            [alert] = [a for a in store.active(s) if a.key == COST_KEY]
        assert alert.id is not None
        return alert.id

    def rows(self, kind: str | None = None) -> list[OutboxRow]:
        with open_session(self.engine) as s:
            rows = list(s.exec(select(OutboxRow).order_by(col(OutboxRow.id))).all())
        return [r for r in rows if kind is None or r.kind == kind]

    def thread(self, alert_id: int) -> list[dict[str, Any]]:
        with open_session(self.engine) as s:
            where = store.slack_message(s, alert_id)
        assert where is not None, "the alert has no root message"
        return self.slack.thread(CHANNEL, where[1])


@pytest.fixture
def paging(
    db: Engine, clock: FrozenClock, config: Config, slack: SlackEmulator, fake_time: FakeTime, pd: PagerDutyEmulator
) -> Iterator[Paging]:
    chosen = replace(config, settings=config.settings.model_copy(update={"group_wait": timedelta(0)}))
    client = make_client("xoxb-test", base_url=slack.base_url, timeout=5)
    pacer = ChannelPacer(monotonic=fake_time.monotonic, sleep=fake_time.sleep)
    notifier = SlackNotifier(client, engine=db, config=lambda: chosen, clock=clock, pacer=pacer)
    pager = PagerDutyNotifier(pd.url, routing_key=ROUTING_KEY, timeout=2)
    service = AlertService(db, clock, lambda: chosen, every_channel(["slack", "pagerduty"]))
    yield Paging(db, clock, slack, pd, service, chosen, notifier, pager)
    pager.close()


def test_an_accepted_page_is_a_thread_reply_with_its_dedup_key(paging: Paging) -> None:
    alert_id = paging.fire_cost_alert()
    outbox = paging.outbox()
    assert outbox.deliver_due() == 3  # the root post, the page, and the page's result
    [trigger] = [e for e in paging.pd.accepted if e["body"]["event_action"] == "trigger"]
    dedup_key = trigger["body"]["dedup_key"]
    assert dedup_key == "incident:1:20260105T090000Z", "the page names the alert's incident"

    _root, reply = paging.thread(alert_id)
    assert reply["text"] == f"📟 PagerDuty accepted the page (dedup key `{dedup_key}`)"
    assert paging.slack.calls_to("chat.update") == [], "a page result leaves the root message as it is"
    [result] = paging.rows(PAGE_RESULT)
    [page] = [r for r in paging.rows() if r.channel == "pagerduty"]
    assert (result.channel, result.status, result.alert_id) == ("slack", SENT, alert_id)
    assert result.idempotency_key == f"slack:{PAGE_RESULT}:{page.id}"
    assert result.payload["outcome"] == "accepted" and result.payload["pagerduty_outbox_id"] == page.id
    assert ROUTING_KEY not in str(result.payload), "the routing key is a secret: it never reaches Slack"
    assert reply["metadata"]["event_payload"]["outbox_id"] == result.id

    assert outbox.deliver_due() == 0
    assert len(paging.thread(alert_id)) == 2, "one reply, once"


def test_a_page_refused_for_good_says_why_in_the_thread(paging: Paging) -> None:
    alert_id = paging.fire_cost_alert()
    paging.pd.fail_next(status=400)
    outbox = paging.outbox()
    assert outbox.deliver_due() == 1  # the root post; the page failed for good
    paging.clock.advance(timedelta(seconds=1))
    assert outbox.deliver_due() == 1  # its result
    [page] = [r for r in paging.rows() if r.channel == "pagerduty"]
    assert page.status == FAILED
    _root, reply = paging.thread(alert_id)
    assert reply["text"].startswith("⚠️ PagerDuty page failed: PagerDuty trigger ")
    assert "refused by PagerDuty (HTTP 400)" in reply["text"] and "injected fault" in reply["text"]
    assert ROUTING_KEY not in reply["text"]
    [result] = paging.rows(PAGE_RESULT)
    assert result.payload["outcome"] == "failed" and result.status == SENT


def test_a_page_retried_after_a_5xx_is_reported_once_when_accepted(paging: Paging) -> None:
    alert_id = paging.fire_cost_alert()
    paging.pd.fail_next(status=503)
    outbox = paging.outbox()
    outbox.deliver_due()
    assert paging.rows(PAGE_RESULT) == [], "a retry is not a result"
    assert len(paging.thread(alert_id)) == 1
    paging.clock.advance(timedelta(minutes=5))
    outbox.deliver_due()
    paging.clock.advance(timedelta(seconds=1))
    outbox.deliver_due()
    _root, reply = paging.thread(alert_id)
    assert reply["text"].startswith("📟 PagerDuty accepted the page")
    assert len(paging.rows(PAGE_RESULT)) == 1


def test_an_outcome_written_late_still_reports_the_page(paging: Paging) -> None:
    """The database refuses the first write of the page's outcome: outcome and result are kept in
    memory and written together on the next pass."""
    alert_id = paging.fire_cost_alert()
    real = page_result_hook(paging.clock)
    refusals = [OperationalError("INSERT", {}, Exception("database is locked"))]

    def flaky(session: Session, note: Notification, outcome: str, error: str | None) -> None:
        if note.channel == "pagerduty" and refusals:
            raise refusals.pop()
        real(session, note, outcome, error)

    outbox = paging.outbox(flaky)
    outbox.deliver_due()
    [page] = [r for r in paging.rows() if r.channel == "pagerduty"]
    assert page.status == "pending" and paging.rows(PAGE_RESULT) == []
    assert len(paging.pd.accepted) == 1
    outbox.deliver_due()
    [page] = [r for r in paging.rows() if r.channel == "pagerduty"]
    assert page.status == SENT
    assert paging.thread(alert_id)[-1]["text"].startswith("📟 PagerDuty accepted the page")
    assert len(paging.pd.accepted) == 1, "the page was not sent twice"


def test_a_broken_hook_does_not_lose_the_outcome(paging: Paging) -> None:
    paging.fire_cost_alert()

    def broken(_session: Session, _note: Notification, _outcome: str, _error: str | None) -> None:
        raise RuntimeError("a bug")

    outbox = paging.outbox(broken)
    outbox.deliver_due()
    assert {(r.channel, r.status) for r in paging.rows()} == {("slack", SENT), ("pagerduty", SENT)}


def test_the_hook_reports_pages_only_and_each_row_once(paging: Paging) -> None:
    alert_id = paging.fire_cost_alert()
    hook = page_result_hook(paging.clock)
    payload = {"key": COST_KEY, "severity": "P3", "fired_at": paging.clock.now().isoformat(), "title": "t"}
    cases = [
        Notification(101, "pagerduty", "incident.acknowledged", alert_id, payload),  # not a page
        Notification(102, "pagerduty", "incident.escalated", alert_id, payload),  # P3: PagerDuty had no part
        Notification(103, "slack", "incident.opened", alert_id, payload),  # not PagerDuty
        Notification(104, "pagerduty", "incident.opened", None, payload),  # no alert to reply under
    ]
    with open_session(paging.engine) as s, s.begin():
        for note in cases:
            hook(s, note, SENT, None)
    assert paging.rows(PAGE_RESULT) == []
    page = Notification(105, "pagerduty", "incident.escalated", alert_id, {**payload, "severity": "P1"})
    for _ in range(2):  # an outcome written twice (its first commit's answer was lost)
        with open_session(paging.engine) as s, s.begin():
            hook(s, page, FAILED, "PagerDuty trigger …: refused")
    [result] = paging.rows(PAGE_RESULT)
    assert result.payload["outcome"] == "failed" and result.payload["error"] == "PagerDuty trigger …: refused"
    assert result.payload["event"] == "escalated"


def test_a_page_result_without_a_root_message_fails_for_good(paging: Paging) -> None:
    paging.slack.error_next("chat.postMessage", "invalid_blocks")
    paging.fire_cost_alert()
    outbox = paging.outbox()
    outbox.deliver_due()
    paging.clock.advance(timedelta(seconds=1))
    outbox.deliver_due()
    [result] = paging.rows(PAGE_RESULT)
    assert result.status == FAILED and "no Slack message to reply under" in (result.last_error or "")
    assert len(paging.slack.calls_to("chat.postMessage")) == 1
