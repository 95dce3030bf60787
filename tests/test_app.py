"""The composition root's process models: the all-in-one ``serve``, ``serve --web-only`` (HTTP, no
jobs, no delivery) and the worker's background work (every job, and the delivery lanes)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from sqlmodel import select
from starlette.testclient import TestClient

from bot.app import Bot, WebOnly, build_bot
from bot.jobs import Work, background_work
from bot.pending_actions import PendingAction, PendingActions
from bot.settings import Settings
from bot.storage.database import session
from bot.storage.tables import EvaluatorRow

REPO = Path(__file__).resolve().parent.parent


def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path}/bot.db",
        bot_config_dir=REPO,
        evaluation_interval="1s",
        slack_bot_token=None,
        slack_signing_secret=None,
        slack_app_token=None,
        pagerduty_routing_key=None,
        prometheus_url=None,
        smtp_url=None,
    )


@pytest.fixture
def bots() -> Iterator[list[Bot]]:
    """The bots a test built, whose database connections close when it ends."""
    made: list[Bot] = []
    yield made
    for bot in made:
        bot.engine.dispose()


def built(bots: list[Bot], tmp_path: Path, web_only: WebOnly | None = None, only: Work | None = None) -> Bot:
    bot = build_bot(settings(tmp_path), config_dir=REPO, web_only=web_only, only=only)
    bots.append(bot)
    return bot


def test_web_only_answers_http_with_no_scheduler_and_no_delivery_lane(tmp_path: Path, bots: list[Bot]) -> None:
    bot = built(bots, tmp_path, WebOnly())
    with TestClient(bot.app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}, "no scheduler to report: the worker has it"
        assert client.get("/metrics").status_code == 200
        assert not bot.scheduler.running
        assert not bot.lanes.running


def test_the_all_in_one_process_runs_the_scheduler_and_the_lanes_while_it_serves(
    tmp_path: Path, bots: list[Bot]
) -> None:
    bot = built(bots, tmp_path)
    with TestClient(bot.app) as client:
        assert client.get("/healthz").json() == {"status": "ok", "scheduler": True}
        assert bot.lanes.running
    assert not bot.scheduler.running and not bot.lanes.running, "both stop with the app"


def evaluators(bot: Bot) -> list[str]:
    with session(bot.engine) as s:
        return list(s.exec(select(EvaluatorRow.name)).all())


def test_the_process_running_the_jobs_joins_the_evaluators_while_it_runs_and_leaves_as_it_stops(
    tmp_path: Path, bots: list[Bot]
) -> None:
    """Its models go to the other evaluators at once, not after its row lapses (issue 16, point 5)."""
    web = built(bots, tmp_path, WebOnly())
    bot = built(bots, tmp_path)
    beaten = threading.Event()
    bot.scheduler.add_listener(
        lambda event: beaten.set() if event.job_id == "evaluator-heartbeat" else None, EVENT_JOB_EXECUTED
    )
    with TestClient(web.app), background_work(bot.lanes, bot.scheduler):
        assert beaten.wait(timeout=20)
        assert evaluators(bot) == [bot.service.members.name], "a web-only process never evaluates"
    assert evaluators(bot) == []


def test_the_worker_runs_every_scheduled_job_and_delivers(tmp_path: Path, bots: list[Bot]) -> None:
    bot = built(bots, tmp_path)
    expected = {job.id for job in bot.scheduler.get_jobs()}
    jobs = {"evaluation", "evaluator-heartbeat", "escalation", "slo-evaluation", "ack-reminder", "sample-retention"}
    assert jobs <= expected
    ran: set[str] = set()
    failed: list[str] = []
    all_ran = threading.Event()

    def seen(event: JobExecutionEvent) -> None:
        if event.exception is not None:
            failed.append(event.job_id)
        ran.add(event.job_id)
        if ran >= expected:
            all_ran.set()

    bot.scheduler.add_listener(seen, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    with background_work(bot.lanes, bot.scheduler):
        assert bot.lanes.running
        assert all_ran.wait(timeout=20), f"jobs that never ran: {sorted(expected - ran)}"
    assert not failed
    assert not bot.scheduler.running and not bot.lanes.running


def test_the_two_halves_of_the_work_share_out_every_job_and_only_the_delivery_half_runs_lanes(
    tmp_path: Path, bots: list[Bot]
) -> None:
    """``worker --only evaluation`` beside ``worker --only delivery``: every job of the whole
    worker runs in exactly one of them (the memory trim in both), and only evaluating processes
    join the evaluators, so no share of the models goes to a process that never evaluates."""
    whole = {job.id for job in built(bots, tmp_path).scheduler.get_jobs()}
    evaluation, delivery = built(bots, tmp_path, only=Work.EVALUATION), built(bots, tmp_path, only=Work.DELIVERY)
    evaluating = {job.id for job in evaluation.scheduler.get_jobs()}
    delivering = {job.id for job in delivery.scheduler.get_jobs()}

    assert evaluating == {"evaluation", "evaluator-heartbeat", "slo-evaluation", "memory-trim"}
    assert evaluating | delivering == whole and evaluating & delivering == {"memory-trim"}
    beaten = threading.Event()
    evaluation.scheduler.add_listener(
        lambda event: beaten.set() if event.job_id == "evaluator-heartbeat" else None, EVENT_JOB_EXECUTED
    )
    with (
        background_work(evaluation.lanes, evaluation.scheduler, only=Work.EVALUATION),
        background_work(delivery.lanes, delivery.scheduler, only=Work.DELIVERY),
    ):
        assert beaten.wait(timeout=20)
        assert delivery.lanes.running and not evaluation.lanes.running
        assert evaluators(evaluation) == [evaluation.service.members.name], "the delivery half never evaluates"
    assert not evaluation.scheduler.running and not delivery.scheduler.running and not delivery.lanes.running


def test_each_web_process_keeps_its_own_journal_and_applies_it(
    tmp_path: Path, bots: list[Bot], caplog: pytest.LogCaptureFixture
) -> None:
    """A click kept while the database was away, found at start by web process 1 (it kept it
    before a restart), is worked through by that process: no scheduler runs there to do it."""
    caplog.set_level(logging.INFO, logger="bot.pending_actions")
    journal = tmp_path / "bot.db.pending-actions.jsonl.web-1"
    PendingActions(journal).keep(PendingAction("incident", 999, "acknowledge", "U_ANA", datetime.now(UTC)))
    other = built(bots, tmp_path, WebOnly(0))
    assert len(other.service.pending) == 0, "web process 0 does not read web process 1's journal"
    bot = built(bots, tmp_path, WebOnly(1))
    assert len(bot.service.pending) == 1

    with TestClient(bot.app):
        deadline = time.monotonic() + 10
        while bot.service.pending and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(bot.service.pending) == 0
    assert not journal.exists()
    assert "kept acknowledge of incident 999 by U_ANA no longer applies" in caplog.text


def test_the_worker_can_answer_its_health_and_metrics_while_it_runs_the_jobs(tmp_path: Path, bots: list[Bot]) -> None:
    bot = built(bots, tmp_path)
    with TestClient(bot.worker_app) as client:
        assert client.get("/healthz").json() == {"status": "ok", "scheduler": True}
        assert "incident_bot_notifications_total" in client.get("/metrics").text
        assert client.post("/api/v1/metrics", json={}).status_code == 404, "no ingest: that is the web's"
        assert bot.lanes.running
    assert not bot.scheduler.running and not bot.lanes.running


def test_a_worker_never_builds_the_web_app_nor_loads_slacks_asynchronous_stack(tmp_path: Path) -> None:
    """The web app is built when first asked for: a worker never asks, so Bolt's asynchronous stack
    (aiohttp and the rest, 15 MB) stays out of its memory. A fresh interpreter, since this one
    has long imported it."""
    script = f"""
import sys
from bot.app import build_bot
from bot.settings import Settings
settings = Settings(
    database_url="sqlite:///{tmp_path}/worker.db", slack_bot_token="xoxb-test", slack_signing_secret="secret",
    slack_app_token=None, pagerduty_routing_key=None, prometheus_url=None, smtp_url=None,
)
bot = build_bot(settings, config_dir={str(REPO)!r})
heavy = ("aiohttp", "bot.slack", "slack_bolt")
print(",".join(name for name in heavy if name in sys.modules) or "none")
bot.app
print(",".join(name for name in heavy if name in sys.modules) or "none")
bot.engine.dispose()
"""
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["none", "aiohttp,bot.slack,slack_bolt"]
