"""The notification outbox on SQLite and PostgreSQL: order, retries, failures, claims, replicas."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from bot.alerts import store
from bot.alerts.lifecycle import Observation, Timing, observe
from bot.clock import FrozenClock, ensure_utc
from bot.config.conditions import Outcome
from bot.errors import DeliveryError
from bot.notify.notifier import Notification
from bot.notify.outbox import CLAIM_LEASE, RENEW_EVERY, Backoff, Outbox, enqueue
from bot.severity import Severity
from bot.storage.database import session
from bot.storage.tables import OutboxRow
from tests.support.recording import RecordingNotifier

RATE_LIMITED = DeliveryError("429 Too Many Requests", retryable=True, retry_after=30)
REJECTED = DeliveryError("400 invalid_blocks", retryable=False)


def new_alert(engine: Engine, clock: FrozenClock, model: str) -> int:
    seen = Observation("latency_spike", model, Severity.P1, Outcome.TRUE)
    change = observe(None, seen, Timing(), last_fired_resolved_at=None, now=clock.now())
    assert change is not None
    with session(engine) as s, s.begin():
        alert_id = store.save(s, change).id
    assert alert_id is not None
    return alert_id


def put(engine: Engine, clock: FrozenClock, name: str, alert_id: int | None = None, channel: str = "recording") -> None:
    with session(engine) as s, s.begin():
        enqueue(
            s,
            channel=channel,
            kind="alert.fired",
            payload={"name": name},
            idempotency_key=f"{channel}:{name}",
            now=clock.now(),
            alert_id=alert_id,
        )


def names(notes: list[Notification]) -> list[str]:
    return [str(n.payload["name"]) for n in notes]


def rows(engine: Engine) -> dict[str, OutboxRow]:
    with session(engine) as s:
        return {str(r.payload["name"]): r for r in s.exec(select(OutboxRow)).all()}


@pytest.fixture
def recorder() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def outbox(engine: Engine, clock: FrozenClock, recorder: RecordingNotifier) -> Outbox:
    return Outbox(engine, clock, {"recording": recorder}, worker="replica-a", rng=random.Random(1))


def test_notifications_are_delivered_in_the_order_they_were_written(
    engine: Engine, clock: FrozenClock, outbox: Outbox, recorder: RecordingNotifier
) -> None:
    fraud, support = new_alert(engine, clock, "fraud-detector-v2"), new_alert(engine, clock, "support-bot")
    put(engine, clock, "fraud-posted", alert_id=fraud)
    put(engine, clock, "fraud-acknowledged", alert_id=fraud)
    put(engine, clock, "support-posted", alert_id=support)
    put(engine, clock, "fraud-resolved", alert_id=fraud)
    put(engine, clock, "weekly-review")

    while outbox.deliver_due():
        pass

    # oldest first; an alert's next notification goes out once its previous one has
    assert names(recorder.sent) == [
        "fraud-posted",
        "support-posted",
        "weekly-review",
        "fraud-acknowledged",
        "fraud-resolved",
    ]
    assert outbox.depth() == 0
    assert {r.status for r in rows(engine).values()} == {"sent"}
    assert all(ensure_utc(r.sent_at) == clock.now() and r.attempts == 1 for r in rows(engine).values())  # type: ignore[arg-type]


def test_rows_for_a_channel_without_a_notifier_stay_queued(
    engine: Engine, clock: FrozenClock, outbox: Outbox, recorder: RecordingNotifier
) -> None:
    put(engine, clock, "page", channel="pagerduty")
    put(engine, clock, "post")

    assert outbox.deliver_due() == 1
    assert names(recorder.sent) == ["post"]
    assert rows(engine)["page"].status == "pending"


def test_a_rate_limited_send_waits_as_long_as_asked_and_is_then_delivered_once(
    engine: Engine, clock: FrozenClock, outbox: Outbox, recorder: RecordingNotifier
) -> None:
    put(engine, clock, "posted")
    recorder.fail_next(RATE_LIMITED)

    assert outbox.deliver_due() == 0
    row = rows(engine)["posted"]
    assert row.status == "pending" and row.attempts == 1 and row.last_error == "429 Too Many Requests"
    assert ensure_utc(row.not_before) == clock.now() + timedelta(seconds=30)

    clock.advance(timedelta(seconds=29))
    assert outbox.deliver_due() == 0
    assert recorder.attempts == 1  # not tried again before Retry-After passed

    clock.advance(timedelta(seconds=1))
    assert outbox.deliver_due() == 1
    clock.advance(timedelta(minutes=10))
    assert outbox.deliver_due() == 0
    assert names(recorder.sent) == ["posted"]
    assert rows(engine)["posted"].attempts == 2 and rows(engine)["posted"].status == "sent"


def test_a_rejected_notification_fails_for_good_without_blocking_other_alerts(
    engine: Engine, clock: FrozenClock, outbox: Outbox, recorder: RecordingNotifier
) -> None:
    fraud, support = new_alert(engine, clock, "fraud-detector-v2"), new_alert(engine, clock, "support-bot")
    put(engine, clock, "fraud-posted", alert_id=fraud)
    put(engine, clock, "support-posted", alert_id=support)
    recorder.fail_next(REJECTED)

    outbox.deliver_due()
    clock.advance(timedelta(hours=1))
    outbox.deliver_due()

    assert names(recorder.sent) == ["support-posted"]
    failed = rows(engine)["fraud-posted"]
    assert failed.status == "failed" and failed.last_error == "400 invalid_blocks" and failed.sent_at is None
    assert recorder.attempts == 2  # never retried


def test_later_notifications_of_an_alert_wait_for_its_earlier_pending_one(
    engine: Engine, clock: FrozenClock, outbox: Outbox, recorder: RecordingNotifier
) -> None:
    fraud, support = new_alert(engine, clock, "fraud-detector-v2"), new_alert(engine, clock, "support-bot")
    put(engine, clock, "fraud-posted", alert_id=fraud)
    put(engine, clock, "fraud-acknowledged", alert_id=fraud)
    put(engine, clock, "support-posted", alert_id=support)
    put(engine, clock, "fraud-page", alert_id=fraud, channel="pagerduty")  # another channel: not held
    pagerduty = RecordingNotifier(channel="pagerduty")
    outbox = Outbox(engine, clock, {"recording": recorder, "pagerduty": pagerduty})
    recorder.fail_next(RATE_LIMITED)

    outbox.deliver_due()
    outbox.deliver_due()
    assert names(recorder.sent) == ["support-posted"]  # the update must not overtake its post
    assert names(pagerduty.sent) == ["fraud-page"]

    clock.advance(timedelta(seconds=30))
    while outbox.deliver_due():
        pass
    assert names(recorder.sent) == ["support-posted", "fraud-posted", "fraud-acknowledged"]


class Crash(BaseException):
    """The process dies mid-send: nothing after the claim is recorded, and nothing renews it."""


class Dying(RecordingNotifier):
    def send(self, notification: Notification) -> None:
        raise Crash


def test_a_claim_left_by_a_dead_worker_is_taken_over_when_its_lease_ends(
    engine: Engine, clock: FrozenClock, recorder: RecordingNotifier
) -> None:
    put(engine, clock, "posted")
    dead = Outbox(engine, clock, {"recording": Dying()}, worker="dead")
    with pytest.raises(Crash):
        dead.deliver_due()
    assert rows(engine)["posted"].claimed_by.startswith("dead:")  # type: ignore[union-attr]
    assert ensure_utc(rows(engine)["posted"].claimed_until) == clock.now() + CLAIM_LEASE  # type: ignore[arg-type]

    survivor = Outbox(engine, clock, {"recording": recorder}, worker="alive")
    assert survivor.due_in(["recording"]) == CLAIM_LEASE  # a lane sleeps until the lease ends, not a poll
    clock.advance(CLAIM_LEASE - timedelta(milliseconds=1))
    assert survivor.deliver_due() == 0  # the claim may still be alive
    assert survivor.due_in(["recording"]) == timedelta(milliseconds=1)
    clock.advance(timedelta(milliseconds=2))
    assert survivor.due_in(["recording"]) <= timedelta(0)  # type: ignore[operator]  # due: nobody renewed it
    assert survivor.deliver_due() == 1
    assert names(recorder.sent) == ["posted"]
    assert rows(engine)["posted"].status == "sent" and rows(engine)["posted"].attempts == 2


def test_a_live_claim_is_renewed_and_kept_past_the_lease_while_its_send_is_slow(
    engine: Engine, clock: FrozenClock, recorder: RecordingNotifier
) -> None:
    """A send (Slack's retries, its pacing) and the batch waiting behind it take twice the lease;
    the process renews its claims meanwhile, so a second process takes neither row."""
    put(engine, clock, "slow")
    put(engine, clock, "waiting-in-the-batch")
    other = Outbox(engine, clock, {"recording": recorder}, worker="other")
    held: list[int] = []

    class Slow(RecordingNotifier):
        def send(self, notification: Notification) -> None:
            for _ in range(6):  # 6 × lease/3: twice the lease
                clock.advance(RENEW_EVERY)
                held.append(live.renew_claims())
                assert other.deliver_due() == 0, "a live claim was taken over"
                assert other.due_in(["recording"]) == CLAIM_LEASE, "the other lane wakes when the renewed lease ends"
            super().send(notification)

    slow = Slow()
    live = Outbox(engine, clock, {"recording": slow}, worker="live")
    assert live.deliver_due() == 2
    assert names(slow.sent) == ["slow", "waiting-in-the-batch"] and recorder.sent == []
    assert held == [2] * 6 + [1] * 6  # both rows renewed while the first was sent, then the second
    assert {(r.status, r.attempts) for r in rows(engine).values()} == {("sent", 1)}
    assert live.renew_claims() == 0  # nothing pending is left to renew


def test_an_outcome_kept_for_the_database_keeps_its_renewed_claim_until_written(
    engine: Engine, clock: FrozenClock, recorder: RecordingNotifier
) -> None:
    """The send went out but the database refused its outcome: the row stays claimed, and renewed,
    past the lease, so another process does not send it again before the outcome is written."""
    put(engine, clock, "sent-but-unrecorded")
    refusals = [OperationalError("UPDATE outbox", {}, Exception("database is locked"))]

    def refuse_once(_session: Session, _note: Notification, _outcome: str, _error: str | None) -> None:
        if refusals:
            raise refusals.pop()

    live = Outbox(engine, clock, {"recording": recorder}, worker="live", on_result=refuse_once)
    other = Outbox(engine, clock, {"recording": RecordingNotifier()}, worker="other")
    assert live.deliver_due() == 1 and live.holds_claims
    assert rows(engine)["sent-but-unrecorded"].status == "pending"
    for _ in range(6):
        clock.advance(RENEW_EVERY)
        assert live.renew_claims() == 1
        assert other.deliver_due() == 0
    assert live.deliver_due() == 0  # writes the kept outcome
    assert rows(engine)["sent-but-unrecorded"].status == "sent" and not live.holds_claims
    assert names(recorder.sent) == ["sent-but-unrecorded"]


def test_renewal_extends_only_this_outboxs_pending_claims(
    engine: Engine, clock: FrozenClock, recorder: RecordingNotifier
) -> None:
    """``claimed_by`` is matched as a literal prefix: a worker name with LIKE wildcards renews
    only its own rows; rows another worker holds, unclaimed rows and finished rows stay as they are."""
    for name in ("mine", "similar", "free", "done"):
        put(engine, clock, name)
    until = clock.now() + timedelta(seconds=1)
    claims = {"mine": ("w_%:1", until), "similar": ("wx%:1", until), "done": ("w_%:2", until)}
    with session(engine) as s, s.begin():
        for name, (token, claimed_until) in claims.items():
            s.execute(
                update(OutboxRow)
                .where(col(OutboxRow.idempotency_key) == f"recording:{name}")
                .values(claimed_by=token, claimed_until=claimed_until)
            )
        s.execute(update(OutboxRow).where(col(OutboxRow.idempotency_key) == "recording:done").values(status="sent"))
    outbox = Outbox(engine, clock, {"recording": recorder}, worker="w_%")

    clock.advance(timedelta(seconds=5))
    assert outbox.renew_claims() == 1
    after = rows(engine)
    assert ensure_utc(after["mine"].claimed_until) == clock.now() + CLAIM_LEASE  # type: ignore[arg-type]
    assert ensure_utc(after["similar"].claimed_until) == until  # type: ignore[arg-type]
    assert ensure_utc(after["done"].claimed_until) == until  # type: ignore[arg-type]
    assert after["free"].claimed_until is None
    due = outbox.due_in(["recording"])
    assert due is not None and due <= timedelta(0)  # "free" is


def test_a_lane_is_due_when_a_claim_held_elsewhere_lapses_but_not_for_its_own(
    engine: Engine, clock: FrozenClock, recorder: RecordingNotifier
) -> None:
    put(engine, clock, "held-elsewhere")
    put(engine, clock, "held-here")
    with session(engine) as s, s.begin():
        for name, token, seconds in (("held-elsewhere", "other:1", 4), ("held-here", "here:1", 2)):
            s.execute(
                update(OutboxRow)
                .where(col(OutboxRow.idempotency_key) == f"recording:{name}")
                .values(claimed_by=token, claimed_until=clock.now() + timedelta(seconds=seconds))
            )
    here = Outbox(engine, clock, {"recording": recorder, "quiet": RecordingNotifier(channel="quiet")}, worker="here")
    assert here.due_in(["recording"]) == timedelta(seconds=4)  # not 2 s: its own claim is renewed, not awaited
    assert here.due_in(["quiet"]) is None  # another channel's claims are not this lane's
    clock.advance(timedelta(seconds=4, milliseconds=1))
    assert here.due_in(["recording"]) <= timedelta(0)  # type: ignore[operator]
    assert here.deliver_due() == 2  # both lapsed: whoever held them is gone (or cut off)
    assert sorted(names(recorder.sent)) == ["held-elsewhere", "held-here"]


def test_an_expired_claim_in_the_table_is_taken_over(
    engine: Engine, clock: FrozenClock, outbox: Outbox, recorder: RecordingNotifier
) -> None:
    put(engine, clock, "stuck")
    put(engine, clock, "held")
    with session(engine) as s, s.begin():
        s.execute(
            update(OutboxRow)
            .where(col(OutboxRow.idempotency_key) == "recording:stuck")
            .values(claimed_by="gone:1", claimed_until=clock.now() - timedelta(seconds=1))
        )
        s.execute(
            update(OutboxRow)
            .where(col(OutboxRow.idempotency_key) == "recording:held")
            .values(claimed_by="busy:1", claimed_until=clock.now() + timedelta(seconds=1))
        )

    assert outbox.deliver_due() == 1
    assert names(recorder.sent) == ["stuck"]


def test_rows_locked_by_another_replica_are_skipped_not_waited_for(pg_engine: Engine, clock: FrozenClock) -> None:
    put(pg_engine, clock, "locked")
    put(pg_engine, clock, "free")
    recorder = RecordingNotifier()
    outbox = Outbox(pg_engine, clock, {"recording": recorder})
    delivered: list[int] = []

    with pg_engine.connect() as other, other.begin():  # a replica in the middle of its claim
        other.execute(select(OutboxRow.id).where(OutboxRow.idempotency_key == "recording:locked").with_for_update())
        worker = threading.Thread(target=lambda: delivered.append(outbox.deliver_due()))
        worker.start()
        worker.join(timeout=5)
        assert not worker.is_alive(), "deliver_due waited for a row another replica had locked"

    assert delivered == [1] and names(recorder.sent) == ["free"]
    assert outbox.deliver_due() == 1
    assert names(recorder.sent) == ["free", "locked"]


class SlowRecorder(RecordingNotifier):
    """Takes a moment per send, so two replicas' claims really overlap; logs every send, in
    order, to a list shared by the replicas."""

    def __init__(self, log: list[Notification]) -> None:
        super().__init__()
        self.log = log

    def send(self, notification: Notification) -> None:
        time.sleep(0.0005)
        super().send(notification)
        with self._lock:
            self.log.append(notification)


def test_two_replicas_draining_one_queue_deliver_every_row_exactly_once(engine: Engine, clock: FrozenClock) -> None:
    total = 200
    alerts = [new_alert(engine, clock, f"model-{i}") for i in range(5)]
    with session(engine) as s, s.begin():
        for i in range(total):
            enqueue(
                s,
                channel="recording",
                kind="alert.fired",
                payload={"name": str(i)},
                idempotency_key=f"row-{i}",
                now=clock.now(),
                alert_id=alerts[i % 6] if i % 6 < 5 else None,
            )
    log: list[Notification] = []
    notifiers = [SlowRecorder(log), SlowRecorder(log)]
    replicas = [Outbox(engine, clock, {"recording": n}, worker=f"replica-{i}") for i, n in enumerate(notifiers)]
    start = threading.Barrier(len(replicas))
    errors: list[BaseException] = []

    def drain(outbox: Outbox) -> None:
        try:
            start.wait(timeout=10)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (outbox.deliver_due(limit=7) or outbox.depth()):
                pass
        except BaseException as exc:  # surfaced below, with its traceback
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(outbox,)) for outbox in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors, errors
    sent = Counter(note.id for note in log)
    assert [row_id for row_id, times in sent.items() if times > 1] == []
    assert len(sent) == total
    assert all(notifier.sent for notifier in notifiers), "both replicas should have taken part"
    for alert_id in alerts:  # and each alert's notifications still went out in order
        ids = [note.id for note in log if note.alert_id == alert_id]
        assert ids == sorted(ids)


@pytest.mark.parametrize("attempts", range(1, 12))
def test_backoff_grows_exponentially_with_jitter_under_the_cap(attempts: int) -> None:
    backoff = Backoff(base=1.0, cap=300.0)
    rng = random.Random(attempts)
    ceiling = min(300.0, 2.0 ** (attempts - 1))
    delays = [backoff.delay(attempts, None, rng) for _ in range(50)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1  # jittered, so replicas do not retry in lockstep


def test_backoff_doubles_its_range_per_attempt_until_the_cap() -> None:
    backoff = Backoff(base=2.0, cap=60.0)
    rng = random.Random(7)
    upper = [max(backoff.delay(n, None, rng) for _ in range(200)) for n in range(1, 9)]
    assert upper[:5] == pytest.approx([2, 4, 8, 16, 32], rel=0.05)
    assert all(u <= 60 for u in upper) and upper[-1] == pytest.approx(60, rel=0.05)


def test_backoff_honours_retry_after_even_above_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=10.0)
    rng = random.Random(0)
    assert backoff.delay(1, 42.0, rng) == 42.0
    assert backoff.delay(9, 0.5, rng) == 0.5
    assert backoff.delay(3, -5.0, rng) == 0.0
