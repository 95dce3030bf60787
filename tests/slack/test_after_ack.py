"""The after-ack worker: work runs off the serving loop, in order of arrival, bounded, and a
shutdown lets queued work finish before it stops (bot/slack/after_ack.py)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from bot.alerts.lifecycle import AlertState
from bot.slack.after_ack import AfterAck
from tests.slack.harness import ANA, BEN, SlackEnv, slack_env


@pytest.fixture
def worker() -> Iterator[AfterAck]:
    after_ack = AfterAck(token="xoxb-test", base_url="http://127.0.0.1:9/api/", max_pending=1)
    yield after_ack
    after_ack.close(timeout=2)


def recording(done: list[str], name: str, gate: threading.Event | None = None) -> Callable[[], Awaitable[None]]:
    async def job() -> None:
        if gate is not None:
            await asyncio.to_thread(gate.wait, 5)
        done.append(f"{name}@{threading.current_thread().name}")

    return job


def test_jobs_run_on_the_worker_thread_and_a_full_queue_makes_the_ack_wait_its_turn(worker: AfterAck) -> None:
    done: list[str] = []
    gate = threading.Event()

    async def serving_loop() -> list[float]:
        await worker.submit(recording(done, "first", gate))  # takes the only slot until the gate opens
        started = time.monotonic()
        waiting = [asyncio.create_task(worker.submit(recording(done, name))) for name in ("second", "third")]
        await asyncio.sleep(0.1)
        assert not any(task.done() for task in waiting), "a full queue must hold the next submit back"
        gate.set()
        await asyncio.gather(*waiting)
        return [time.monotonic() - started]

    waited = asyncio.run(serving_loop())
    deadline = time.monotonic() + 5
    while len(done) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert done == ["first@slack-after-ack", "second@slack-after-ack", "third@slack-after-ack"]
    assert waited[0] >= 0.1


def test_a_read_runs_on_the_after_ack_loop_and_a_write_on_a_database_thread(worker: AfterAck) -> None:
    """Reads skip the hand-off to a thread and back (they never wait on a lock); writes may wait, so
    they keep a thread of their own."""
    ran_on: list[str] = []
    finished = threading.Event()

    async def job() -> None:
        ran_on.append(await worker.read(lambda: threading.current_thread().name))
        ran_on.append(await worker.db(lambda: threading.current_thread().name))
        finished.set()

    asyncio.run(worker.submit(job))
    assert finished.wait(5)
    assert ran_on[0] == "slack-after-ack"
    assert ran_on[1].startswith("slack-after-db")


def test_a_failing_job_is_logged_and_the_worker_goes_on(worker: AfterAck, caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    async def boom() -> None:
        raise RuntimeError("boom")

    async def serving_loop() -> None:
        await worker.submit(boom)
        await worker.submit(recording(done, "after"))

    with caplog.at_level(logging.ERROR, logger="bot.slack.after_ack"):
        asyncio.run(serving_loop())
        worker.close(timeout=2)
    assert done == ["after@slack-after-ack"]
    assert "after-ack work failed" in caplog.text


def test_close_lets_queued_work_finish_then_cancels_what_is_left(caplog: pytest.LogCaptureFixture) -> None:
    after_ack = AfterAck(token="xoxb-test", base_url="http://127.0.0.1:9/api/")
    finished: list[str] = []

    async def short() -> None:
        await asyncio.sleep(0.1)
        finished.append("short")

    async def endless() -> None:
        await asyncio.sleep(60)
        finished.append("endless")

    async def serving_loop() -> None:
        await after_ack.submit(short)
        await after_ack.submit(endless)

    asyncio.run(serving_loop())
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="bot.slack.after_ack"):
        after_ack.close(timeout=0.5)
    assert finished == ["short"]
    assert time.monotonic() - started < 5
    assert "1 after-ack job(s) cancelled at shutdown" in caplog.text


# --------------------------------------------------------------------------- through the app


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SlackEnv]:
    with slack_env(tmp_path) as running:
        yield running


def test_a_repeat_click_is_refused_after_one_read_and_no_write(env: SlackEnv) -> None:
    env.click("alert_acknowledge", user=ANA)
    env.wait_until(lambda: env.alert().state is AlertState.ACKNOWLEDGED)
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(env.engine, "before_cursor_execute", record)
    try:
        assert env.click("alert_acknowledge", user=BEN).status_code == 200
        env.slack.wait_for("chat.postEphemeral")
        time.sleep(0.05)
    finally:
        event.remove(env.engine, "before_cursor_execute", record)
    assert len(statements) == 1, statements
    assert statements[0].upper().startswith("SELECT") and "WHERE ALERTS.ID = ?" in statements[0].upper(), statements
