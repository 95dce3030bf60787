"""The SQLite file locked under the running bot (SPEC §6): another connection holds ``BEGIN
EXCLUSIVE`` while the bot evaluates, delivers, ingests and answers clicks.

Shorter than the bot's wait for a lock (30 s), the lock only delays work. Longer, every write
fails for as long as it lasts: the scheduler's jobs log and run again on the next tick, the
ingest API answers 503 (retry later; nothing was stored) instead of 500 or hanging, a click is
kept until the database takes it, and once the lock is gone everything goes out exactly once.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.reliability.harness import (
    COST,
    DRIFT,
    USER,
    Running,
    ScriptedSlack,
    accepted_roots,
    alert,
    alert_when,
    assert_slack_exactly_once,
    explainer,
    outbox,
    reliability_config,
    rendered,
    root_message,
    start_bot,
    wait_until,
)

CHANNELS = ["#ml-alerts", "#llm-alerts"]
PROBE = {"model": "support-bot", "metrics": {"reliability_probe": 1.0}}
"""A sample no rule reads."""


@contextmanager
def exclusive_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Hold SQLite's write lock on ``path`` from a connection of our own until the block ends."""
    locker = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        yield locker
        locker.execute("ROLLBACK")
    finally:
        locker.close()


class Pusher(threading.Thread):
    """Pushes one sample like a client would (retrying 503s), off the test's thread."""

    def __init__(self, run: Running, sample: Mapping[str, object]) -> None:
        super().__init__(daemon=True)
        self.run_, self.sample = run, sample
        self.statuses: list[int] = []
        self.took = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.statuses = self.run_.push(self.sample, within=60)
        except BaseException as exc:  # reported by the test's thread
            self.error = exc
        self.took = time.monotonic() - started


def all_sent(run: Running) -> bool:
    return all(o.status == "sent" for o in outbox(run.engine))


def test_a_lock_held_for_seconds_delays_work_and_loses_or_doubles_nothing(tmp_path: Path, slack: ScriptedSlack) -> None:
    db = tmp_path / "bot.db"
    run = start_bot(f"sqlite:///{db}", reliability_config(tmp_path / "config"), slack, None)
    try:
        why = explainer(run.engine, slack)
        run.push(COST)
        cost = wait_until(
            alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.slack_ts),
            "the cost alert in Slack",
            explain=why,
        )
        with exclusive_lock(db):
            pusher = Pusher(run, DRIFT)
            pusher.start()
            started = time.monotonic()
            answer = run.click("alert_acknowledge", cost)
            assert answer.status_code == 200 and time.monotonic() - started < 2, "a click is acked without the database"
            time.sleep(4)
            still = alert(run.engine, "llm_cost_runaway", "support-bot")  # reads go on (WAL)
            assert still is not None and still.state == "firing", "nothing could be written meanwhile"
            assert pusher.is_alive(), "the ingest request waits for the lock"
            assert run.healthz()["scheduler"] is True
        pusher.join(timeout=30)
        assert pusher.error is None, pusher.error
        assert pusher.statuses[-1] == 202 and set(pusher.statuses) <= {202, 503}, pusher.statuses
        assert pusher.took < 15, f"the ingest request took {pusher.took:.1f}s"

        acked = wait_until(
            alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.state == "acknowledged"),
            "the click to be applied once the lock is gone",
            explain=why,
        )
        assert acked.acknowledged_by == USER
        wait_until(
            alert_when(run.engine, "significant_data_drift", "fraud-detector-v2", lambda a: a.slack_ts),
            "the drift alert in Slack",
            explain=why,
        )
        wait_until(
            lambda: all_sent(run) and f"Acknowledged by <@{USER}>" in rendered(root_message(slack, acked)),
            "every delivery",
            explain=why,
        )
        assert_slack_exactly_once(run.engine, slack, CHANNELS)
        assert len(accepted_roots(slack)) == 2
        assert not slack.calls_to("chat.postEphemeral"), "nobody was told to try again"
    finally:
        run.close()


def test_a_lock_held_longer_than_the_bot_waits_gets_503s_and_retries_then_delivers_once(
    tmp_path: Path, slack: ScriptedSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """The lock is taken while a root post is in flight: Slack stores the message, but the bot
    cannot record it, nor record that the attempt failed. Meanwhile a push gets 503 and a click
    is made. Once the lock is gone the post is found (not posted again), the click applies."""
    caplog.set_level(logging.WARNING)
    db = tmp_path / "bot.db"
    config = reliability_config(tmp_path / "config")
    run = start_bot(f"sqlite:///{db}", config, slack, None, sqlite_busy_timeout=0.3)
    try:
        why = explainer(run.engine, slack)
        run.push(COST)
        cost = wait_until(
            alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.slack_ts and all_sent(run)),
            "the cost alert in Slack",
            explain=why,
        )
        slack.delay_next("chat.postMessage", 0.7)  # the drift post: stored at once, answered within the timeout
        run.push(DRIFT)
        wait_until(lambda: len(accepted_roots(slack)) == 2, "the drift post to reach Slack", explain=why)
        with exclusive_lock(db):
            started = time.monotonic()
            refused = run.push_once(PROBE)
            took = time.monotonic() - started
            assert refused.status_code == 503, refused.text
            assert "retry" in refused.json()["error"], refused.text
            assert took < 3, f"the refusal took {took:.1f}s"
            assert run.click("alert_acknowledge", cost).status_code == 200
            time.sleep(3)
            assert run.healthz()["scheduler"] is True
            assert run.thread.is_alive()
            assert any("locked" in r.getMessage() or "locked" in str(r.exc_info) for r in caplog.records), (
                "the failures are logged"
            )
        assert run.push(PROBE) == [202]  # the client's retry

        acked = wait_until(
            alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.state == "acknowledged"),
            "the click made during the lock to be applied",
            explain=why,
        )
        assert acked.acknowledged_by == USER
        wait_until(
            lambda: (
                alert_when(run.engine, "significant_data_drift", "fraud-detector-v2", lambda d: d.slack_ts)()
                and all_sent(run)
                and f"Acknowledged by <@{USER}>" in rendered(root_message(slack, acked))
            ),
            "every delivery after the lock",
            explain=why,
            timeout=15,
        )
        assert_slack_exactly_once(run.engine, slack, CHANNELS)
        assert len(accepted_roots(slack)) == 2, "the drift post was found, not posted again"
        [drift_row] = [o for o in outbox(run.engine) if o.kind == "alert.fired" and o.alert_id != cost.id]
        assert drift_row.attempts == 2, "the failed attempt was recorded once the lock was gone, then retried"
        assert slack.calls_to("conversations.history"), "the retry looked for the post it could not record"
        assert not slack.calls_to("chat.postEphemeral"), "nobody was told to try again"
    finally:
        run.close()
