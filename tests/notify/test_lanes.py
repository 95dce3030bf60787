"""Delivery lanes: each notifier channel delivers on its own thread, woken by the commits that
feed it, most severe first. Every wait here is on an event (a send, an emulator's request), and
lanes poll only once a minute, so a pass that happens in time was woken, not polled."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import select
from starlette.testclient import TestClient

from bot.alerts import store
from bot.alerts.lifecycle import Observation, Timing, observe
from bot.app import build_bot
from bot.clock import Clock, FrozenClock, SystemClock, ensure_utc
from bot.config.conditions import Outcome
from bot.config.loader import Config
from bot.errors import DeliveryError
from bot.notify.lanes import ClaimRenewer, Lanes, WakeupListener, announcing
from bot.notify.notifier import Notification
from bot.notify.outbox import CLAIM_LEASE, ENQUEUED_CHANNELS, Outbox, enqueue
from bot.notify.pagerduty import PagerDutyNotifier
from bot.notify.slack import SlackNotifier, make_client
from bot.service import AlertService, every_channel
from bot.settings import Settings
from bot.severity import Severity
from bot.storage.database import make_engine
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow
from tests.emulators.pagerduty_events import PagerDutyEmulator
from tests.emulators.slack_api import SlackEmulator
from tests.support.recording import RecordingNotifier

IDLE = 60.0
"""The lanes' poll in these tests: far longer than any wait, so only a wake or a due row moves them."""
WAIT = 10.0
STUCK = 3.0
"""How long the stuck emulator sits on its answer: the other lane must deliver inside it."""
KEY = "R0UTINGKEYDEFAULT000000000000001"


class Notes:
    """A notifier that records each send (with the clock's time) for waiters, and can hold its
    first send until released: a slow remote API, without sleeping."""

    def __init__(self, channel: str, clock: Clock, *, hold_first: bool = False) -> None:
        self.channel = channel
        self.sent: list[tuple[str, datetime]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.failures: list[DeliveryError] = []
        self._clock = clock
        self._cond = threading.Condition()
        if not hold_first:
            self.release.set()

    def send(self, notification: Notification) -> None:
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the held send"
        with self._cond:
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append((str(notification.payload["name"]), self._clock.now()))
            self._cond.notify_all()

    def wait_for(self, count: int) -> list[str]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.sent) >= count, WAIT), f"only {self.sent} were sent"
            return [name for name, _at in self.sent]


def put(
    engine: Engine,
    clock: Clock,
    name: str,
    *,
    channel: str = "slack",
    severity: Severity | None = None,
    alert_id: int | None = None,
    not_before: datetime | None = None,
) -> None:
    with open_session(engine) as s, s.begin():
        enqueue(
            s,
            channel=channel,
            kind="alert.fired",
            payload={"name": name} | ({"severity": severity.value} if severity else {}),
            idempotency_key=f"{channel}:{name}",
            now=clock.now(),
            alert_id=alert_id,
            not_before=not_before,
        )


def new_alert(engine: Engine, clock: Clock, model: str, severity: Severity) -> int:
    seen = Observation("latency_spike", model, severity, Outcome.TRUE)
    change = observe(None, seen, Timing(), last_fired_resolved_at=None, now=clock.now())
    assert change is not None
    with open_session(engine) as s, s.begin():
        alert_id = store.save(s, change).id
    assert alert_id is not None
    return alert_id


@pytest.fixture
def running() -> Iterator[Callable[[Lanes], Lanes]]:
    """Starts lanes for a test and stops them at its end, whatever happens."""
    started: list[Lanes] = []

    def start(lanes: Lanes) -> Lanes:
        lanes.start()
        started.append(lanes)
        return lanes

    yield start
    for lanes in started:
        lanes.stop()


# ------------------------------------------------------------------ priority


def test_the_most_severe_due_row_goes_first_then_the_oldest(engine: Engine, clock: FrozenClock) -> None:
    recorder = RecordingNotifier(channel="slack")
    outbox = Outbox(engine, clock, {"slack": recorder})
    put(engine, clock, "p3-old", severity=Severity.P3)
    put(engine, clock, "weekly-review")  # no severity: after every alert
    put(engine, clock, "p2", severity=Severity.P2)
    put(engine, clock, "p3-new", severity=Severity.P3)
    put(engine, clock, "p0", severity=Severity.P0)
    put(engine, clock, "p1", severity=Severity.P1)

    while outbox.deliver_due():
        pass

    assert [n.payload["name"] for n in recorder.sent] == ["p0", "p1", "p2", "p3-old", "p3-new", "weekly-review"]


def test_an_urgent_update_lifts_the_row_it_must_follow(engine: Engine, clock: FrozenClock) -> None:
    """An alert's rows keep their order, so its P1 escalation waits for its P3 post: that post
    ranks as P1 too, instead of waiting behind the other alerts' P2 posts."""
    recorder = RecordingNotifier(channel="slack")
    outbox = Outbox(engine, clock, {"slack": recorder})
    climbing = new_alert(engine, clock, "support-bot", Severity.P3)
    put(engine, clock, "climbing-posted", severity=Severity.P3, alert_id=climbing)
    for model in ("fraud-detector-v2", "ranker"):
        alert_id = new_alert(engine, clock, model, Severity.P2)
        put(engine, clock, f"{model}-posted", severity=Severity.P2, alert_id=alert_id)
    put(engine, clock, "climbing-escalated", severity=Severity.P1, alert_id=climbing)

    while outbox.deliver_due(limit=1):  # one send per claim, as a lane does when new rows arrive
        pass

    assert [n.payload["name"] for n in recorder.sent] == [
        "climbing-posted",
        "climbing-escalated",
        "fraud-detector-v2-posted",
        "ranker-posted",
    ]


def test_a_p0_queued_behind_slow_sends_goes_next(
    db: Engine, clock: FrozenClock, running: Callable[[Lanes], Lanes]
) -> None:
    """The lane had claimed a batch of P3 posts and is stuck on the first; a P0 committed
    meanwhile is the next send, and the P3 posts it overtook count one attempt each."""
    slack = Notes("slack", clock, hold_first=True)
    outbox = Outbox(db, clock, {"slack": slack})
    for i in range(4):
        put(db, clock, f"p3-{i}", severity=Severity.P3)
    running(Lanes(outbox, db, poll=IDLE))
    assert slack.entered.wait(WAIT)

    put(db, clock, "p0", severity=Severity.P0)
    slack.release.set()

    assert slack.wait_for(5) == ["p3-0", "p0", "p3-1", "p3-2", "p3-3"]
    with open_session(db) as s:
        assert {r.attempts for r in s.exec(select(OutboxRow)).all()} == {1}


def test_stopping_with_a_backlog_ends_after_the_send_in_flight(db: Engine, clock: FrozenClock) -> None:
    """Shutdown waits for one send, not for a batch paced at a post a second: the rest of the
    claimed batch goes back to the queue, unsent and not counted as tried."""
    slack = Notes("slack", clock, hold_first=True)
    outbox = Outbox(db, clock, {"slack": slack})
    for i in range(6):
        put(db, clock, f"p3-{i}", severity=Severity.P3)
    lanes = Lanes(outbox, db, poll=IDLE)
    lanes.start()
    assert slack.entered.wait(WAIT)

    lanes.request_stop()
    slack.release.set()
    lanes.stop()

    assert not lanes.running
    assert [name for name, _at in slack.sent] == ["p3-0"]
    with open_session(db) as s:
        rows = s.exec(select(OutboxRow).where(OutboxRow.status == "pending")).all()
    assert len(rows) == 5 and {(r.claimed_by, r.attempts) for r in rows} == {(None, 0)}


# ------------------------------------------------------------------ waking


def test_a_commit_wakes_the_lanes_it_enqueued_to(
    engine: Engine, clock: FrozenClock, running: Callable[[Lanes], Lanes]
) -> None:
    slack, pagerduty = Notes("slack", clock), Notes("pagerduty", clock)
    outbox = Outbox(engine, clock, {"slack": slack, "pagerduty": pagerduty})
    running(Lanes(outbox, engine, poll=IDLE))
    put(engine, clock, "first-post")
    assert slack.wait_for(1) == ["first-post"]  # the Slack lane has had its pass and sleeps

    with open_session(engine) as s, s.begin():  # one transaction, as an evaluation pass writes it
        for channel in ("slack", "pagerduty"):
            payload = {"name": "fired"}
            enqueue(s, channel=channel, kind="alert.fired", payload=payload, idempotency_key=channel, now=clock.now())

    assert slack.wait_for(2) == ["first-post", "fired"]
    assert pagerduty.wait_for(1) == ["fired"]


def test_a_rolled_back_enqueue_leaves_nothing_to_wake(
    db: Engine, clock: FrozenClock, running: Callable[[Lanes], Lanes]
) -> None:
    running(Lanes(Outbox(db, clock, {"slack": Notes("slack", clock)}), db, poll=IDLE))
    with open_session(db) as s:
        s.begin()
        enqueue(s, channel="slack", kind="alert.fired", payload={}, idempotency_key="x", now=clock.now())
        assert s.info[ENQUEUED_CHANNELS] == {"slack"}
        s.rollback()
        assert ENQUEUED_CHANNELS not in s.info


def test_a_lane_sleeps_until_its_held_row_is_due_and_honours_retry_after(
    db: Engine, running: Callable[[Lanes], Lanes]
) -> None:
    """No poll for held rows (``group_wait``, business hours, a retry's backoff): the lane
    sleeps until the earliest is due."""
    clock = SystemClock()
    slack = Notes("slack", clock)
    slack.failures.append(DeliveryError("429", retryable=True, retry_after=0.2))
    outbox = Outbox(db, clock, {"slack": slack}, rng=random.Random(1))
    due = clock.now() + timedelta(milliseconds=300)
    put(db, clock, "held", not_before=due)
    running(Lanes(outbox, db, poll=IDLE))

    slack.wait_for(1)
    [(_name, sent_at)] = slack.sent
    assert sent_at >= due + timedelta(milliseconds=200)  # held, then Retry-After after the first attempt
    with open_session(db) as s:
        assert [r.attempts for r in s.exec(select(OutboxRow)).all()] == [2]


def test_rows_another_replica_enqueued_are_found_by_the_poll(
    db: Engine, clock: FrozenClock, running: Callable[[Lanes], Lanes]
) -> None:
    slack = Notes("slack", clock)
    running(Lanes(Outbox(db, clock, {"slack": slack}), db, poll=0.1))
    other = make_engine(str(db.url))  # the other replica: its commits wake only its own lanes
    try:
        put(other, clock, "from-the-other-replica")
        assert slack.wait_for(1) == ["from-the-other-replica"]
    finally:
        other.dispose()


def test_a_lane_takes_over_a_dead_processs_row_as_its_claim_lapses_without_a_poll(
    db: Engine, running: Callable[[Lanes], Lanes]
) -> None:
    clock = SystemClock()
    slack = Notes("slack", clock)
    put(db, clock, "claimed-by-the-dead")
    lapses = clock.now() + timedelta(milliseconds=300)
    with open_session(db) as s, s.begin():
        s.execute(update(OutboxRow).values(claimed_by="dead:1", claimed_until=lapses, attempts=1))
    running(Lanes(Outbox(db, clock, {"slack": slack}), db, poll=IDLE))

    assert slack.wait_for(1) == ["claimed-by-the-dead"]  # long before the minute's poll
    [(_name, sent_at)] = slack.sent
    assert sent_at > lapses


def test_running_lanes_renew_their_claims_while_a_send_is_held(
    engine: Engine, clock: FrozenClock, running: Callable[[Lanes], Lanes]
) -> None:
    """The renewer runs with the lanes: a send held longer than the lease keeps its claim (the
    clock moves past the lease; the claim moves with it), and the renewer stops with the lanes."""
    slack = Notes("slack", clock, hold_first=True)
    outbox = Outbox(engine, clock, {"slack": slack})
    put(engine, clock, "held")
    lanes = running(Lanes(outbox, engine, poll=IDLE, renew_every=0.05))
    assert slack.entered.wait(WAIT)

    def claim() -> tuple[str | None, datetime | None]:
        with open_session(engine) as s:
            row = s.exec(select(OutboxRow)).one()
            return row.claimed_by, row.claimed_until and ensure_utc(row.claimed_until)

    for _ in range(3):
        renewed = clock.advance(CLAIM_LEASE) + CLAIM_LEASE  # past the lease each time
        deadline = time.monotonic() + WAIT
        while claim()[1] != renewed:
            assert time.monotonic() < deadline, f"the claim was not renewed: {claim()}"
            time.sleep(0.01)
        assert (claim()[0] or "").startswith(f"{outbox.worker}:")
    slack.release.set()

    assert slack.wait_for(1) == ["held"]
    lanes.stop()
    assert not lanes.running


def test_renewal_failures_are_logged_once_per_outage_and_never_stop_the_renewer(
    db: Engine, clock: FrozenClock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = Outbox(db, clock, {"slack": Notes("slack", clock)})
    renewer = ClaimRenewer(outbox)
    down = OperationalError("UPDATE outbox", {}, Exception("the database system is shutting down"))
    outcomes: list[BaseException | None] = [down, down, down, None, None, down, RuntimeError("a bug"), None]

    def renew_claims() -> int:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return 0

    monkeypatch.setattr(outbox, "renew_claims", renew_claims)
    monkeypatch.setattr(Outbox, "holds_claims", property(lambda _self: True))
    with caplog.at_level(logging.DEBUG, logger="bot.notify.lanes"):
        while outcomes:
            renewer.renew()  # never raises
    said = [(r.levelname, r.getMessage().split(":")[1].strip()) for r in caplog.records]
    assert said == [
        ("WARNING", "cannot renew this process's claims (retrying quietly)"),  # three failures, one line
        ("WARNING", "claims renewed again"),
        ("WARNING", "cannot renew this process's claims (retrying quietly)"),  # a second outage
        ("WARNING", "claims renewed again"),
    ]


def test_the_renewer_leaves_the_database_alone_while_the_outbox_holds_no_claim(
    db: Engine, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle bot writes nothing every few seconds (on SQLite each UPDATE takes the write lock);
    a delivery under way, or an outcome kept for the database, is renewed."""
    renewed: list[bool] = []
    slack = Notes("slack", clock)
    outbox = Outbox(db, clock, {"slack": slack})
    monkeypatch.setattr(outbox, "renew_claims", lambda: renewed.append(outbox.holds_claims) or 0)
    renewer = ClaimRenewer(outbox)
    renewer.renew()
    assert renewed == [] and not outbox.holds_claims

    put(db, clock, "sending")
    real_send = slack.send
    monkeypatch.setattr(slack, "send", lambda note: (renewer.renew(), real_send(note)))
    assert outbox.deliver_due() == 1
    assert renewed == [True]  # during the send
    renewer.renew()
    assert renewed == [True] and not outbox.holds_claims


# ------------------------------------------------------------------ independence


@pytest.fixture
def emulators() -> Iterator[tuple[SlackEmulator, PagerDutyEmulator]]:
    with SlackEmulator(token="xoxb-test") as slack, PagerDutyEmulator() as pd:
        yield slack, pd


def pending_on(engine: Engine, channel: str) -> list[str]:
    with open_session(engine) as s:
        rows = s.exec(select(OutboxRow).where(OutboxRow.channel == channel, OutboxRow.status == "pending")).all()
        return [r.kind for r in rows]


@pytest.mark.parametrize("stuck", ["slack", "pagerduty"])
def test_a_stuck_lane_does_not_hold_up_the_other(
    stuck: str,
    db: Engine,
    clock: FrozenClock,
    config: Config,
    emulators: tuple[SlackEmulator, PagerDutyEmulator],
    running: Callable[[Lanes], Lanes],
) -> None:
    """Slack sitting on a post does not delay the page; PagerDuty sitting on a page does not
    delay the acknowledgement's Slack update (both notifiers real, against the emulators)."""
    slack_api, pd = emulators
    chosen = replace(config, settings=config.settings.model_copy(update={"group_wait": timedelta(0)}))
    client = make_client("xoxb-test", base_url=slack_api.base_url)
    slack = SlackNotifier(client, engine=db, config=lambda: chosen, clock=clock)
    pagerduty = PagerDutyNotifier(pd.url, routing_key=KEY, timeout=WAIT)
    service = AlertService(db, clock, lambda: chosen, every_channel(["slack", "pagerduty"]))
    running(Lanes(Outbox(db, clock, {"slack": slack, "pagerduty": pagerduty}), db, poll=IDLE))
    if stuck == "slack":
        slack_api.delay_next("chat.postMessage", STUCK)
    else:
        pd.delay_next(STUCK)

    service.ingest([("support-bot", "daily_cost_usd", clock.now(), 900.0)])  # llm_cost_runaway, P1: post and page
    service.evaluate_once()

    if stuck == "slack":
        slack_api.wait_for("chat.postMessage", WAIT)  # the post is in flight
        pd.wait_for(lambda e: (e["body"] or {}).get("event_action") == "trigger", WAIT)
        assert pending_on(db, "slack") == ["alert.fired"]  # Slack has not answered the post yet
    else:
        slack_api.wait_for("chat.postMessage", WAIT)
        pd.wait_for(lambda e: True, WAIT)  # the page is in flight
        with open_session(db) as s:
            alert_id = next(iter(store.open_alerts(s).values())).id
        assert alert_id is not None
        service.acknowledge(alert_id, actor="U1")
        slack_api.wait_for(lambda c: c.method == "chat.update" and "acknowledged" in str(c.params).lower(), WAIT)
        assert pending_on(db, "pagerduty") == ["incident.opened", "incident.acknowledged"]  # the page still waits


# ------------------------------------------------------------------ shutdown


def test_lanes_run_with_serve_and_stop_on_shutdown(tmp_path: Path, repo_root: Path) -> None:
    bot = build_bot(Settings(database_url=f"sqlite:///{tmp_path}/bot.db"), config_dir=repo_root)
    assert bot.lanes.channels == ["log"] and bot.scheduler.get_job("delivery") is None
    with TestClient(bot.app):
        assert bot.lanes.running
    assert not bot.lanes.running
    bot.engine.dispose()


def test_a_web_only_processs_commit_wakes_the_workers_lanes_on_postgresql(
    pg_engine: Engine, clock: FrozenClock, running: Callable[[Lanes], Lanes]
) -> None:
    """The web process runs no lanes; its commit is announced (NOTIFY) and the worker's lane,
    which would not poll for a minute, delivers at once."""
    slack = Notes("slack", clock)
    lanes = running(Lanes(Outbox(pg_engine, clock, {"slack": slack}), pg_engine, poll=IDLE))
    assert lanes.listener is not None and lanes.listener.listening.wait(WAIT)
    web = make_engine(pg_engine.url.render_as_string(hide_password=False))
    try:
        with announcing(web):
            put(web, clock, "acknowledged-by-a-click")
        assert slack.wait_for(1) == ["acknowledged-by-a-click"]
    finally:
        web.dispose()


def test_announcing_on_sqlite_changes_nothing(db: Engine, clock: FrozenClock) -> None:
    with announcing(db):
        put(db, clock, "found-by-the-poll")
    with open_session(db) as s:
        assert [r.status for r in s.exec(select(OutboxRow)).all()] == ["pending"]


def test_the_listener_wakes_exactly_the_channels_a_commit_announced(pg_engine: Engine, clock: FrozenClock) -> None:
    woken: list[list[str]] = []
    cond = threading.Condition()

    def wake(channels: Iterable[str]) -> None:
        with cond:
            woken.append(sorted(channels))
            cond.notify_all()

    listener = WakeupListener(pg_engine, wake, ["email", "pagerduty", "slack"])
    listener.start()
    try:
        assert listener.listening.wait(WAIT)
        assert woken == [["email", "pagerduty", "slack"]], "every lane once, for what came before LISTEN"
        web = make_engine(pg_engine.url.render_as_string(hide_password=False))
        try:
            with announcing(web), open_session(web) as s, s.begin():
                for channel in ("slack", "pagerduty"):
                    enqueue(
                        s, channel=channel, kind="alert.fired", payload={}, idempotency_key=channel, now=clock.now()
                    )
        finally:
            web.dispose()
        with cond:
            assert cond.wait_for(lambda: len(woken) == 2, WAIT), woken
        assert woken[1] == ["pagerduty", "slack"]
    finally:
        listener.stop()
