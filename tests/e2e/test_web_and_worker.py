"""The split process model as a user runs it: ``incident-bot serve --web-only --workers 2`` answers
HTTP, ``incident-bot worker`` evaluates and delivers (or ``worker --only evaluation`` and ``worker
--only delivery`` share that), on one database (a SQLite file on one machine, then PostgreSQL),
against the Slack and PagerDuty emulators.

A metric pushed to a web process fires an alert that only the worker can evaluate and post; a
signed Acknowledge click is acted on by the web process that takes it, and the worker delivers
what the click changed. Every notification reaches Slack exactly once (each post names its outbox
row), whichever of the three processes wrote it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.storage.database import session
from bot.storage.tables import OutboxRow
from tests.e2e.test_escalation_crash import REPO, Served, fast_config, outbox_id, posts, serve_env, wait_until
from tests.e2e.test_slack_flow import CHANNEL, USER, Running, buttons, click_body, is_update, rendered
from tests.emulators.pagerduty_events import PagerDutyEmulator
from tests.emulators.slack_api import SlackEmulator
from tests.slack.harness import SECRET, sign

WAIT = 30.0


class Worker:
    """One ``python -m bot worker`` process, up once it logs that its scheduler and lanes run."""

    def __init__(self, env: dict[str, str], log: Path, options: tuple[str, ...] = ()) -> None:
        self.log = log
        self._out = log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "worker", *options],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        wait_until(
            lambda: "worker running" in self.output() or self.proc.poll() is not None,
            "the worker to start",
            explain=self.output,
        )
        assert self.proc.poll() is None, f"the worker ended at start:\n{self.output()}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(timeout=20)
        self._out.close()
        return code


def test_web_only_processes_take_the_click_and_the_worker_delivers_exactly_once(
    tmp_path: Path, engine: Engine, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    config = fast_config(tmp_path / "config", steps=[(3600, "P1")])
    env = serve_env(engine.url.render_as_string(hide_password=False), config, slack, pagerduty)
    env["SLACK_SIGNING_SECRET"] = SECRET
    worker = Worker(env, tmp_path / "worker.log")
    web = Served(env, tmp_path / "web.log", name="serve --web-only", options=["--web-only", "--workers", "2"])
    try:
        with httpx.Client(timeout=10) as http:
            _run_the_flow(web, [worker], engine, slack, http)
    finally:
        web.stop()
        assert worker.stop() == 0, worker.output()
    assert "Traceback" not in web.output() + worker.output(), web.output() + worker.output()
    assert "worker running" not in web.output()


def test_the_flow_holds_with_evaluation_and_delivery_in_workers_of_their_own(
    tmp_path: Path, engine: Engine, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    """The pass's alert is written by the evaluation worker and posted by the delivery worker;
    the click's update too is the delivery worker's."""
    config = fast_config(tmp_path / "config", steps=[(3600, "P1")])
    env = serve_env(engine.url.render_as_string(hide_password=False), config, slack, pagerduty)
    env["SLACK_SIGNING_SECRET"] = SECRET
    evaluation = Worker(env, tmp_path / "evaluation.log", ("--only", "evaluation"))
    delivery = Worker(env, tmp_path / "delivery.log", ("--only", "delivery"))
    web = Served(env, tmp_path / "web.log", name="serve --web-only", options=["--web-only"])
    try:
        with httpx.Client(timeout=10) as http:
            _run_the_flow(web, [evaluation, delivery], engine, slack, http)
    finally:
        web.stop()
        assert evaluation.stop() == 0, evaluation.output()
        assert delivery.stop() == 0, delivery.output()
    logs = web.output() + evaluation.output() + delivery.output()
    assert "Traceback" not in logs, logs
    assert "worker running: evaluation only" in evaluation.output()
    assert "worker running: delivery only" in delivery.output()
    fired = re.compile(r"alert \d+ fired: ")
    assert fired.search(evaluation.output()) and not fired.search(delivery.output()), "the pass ran in one half"


def _run_the_flow(web: Served, workers: list[Worker], engine: Engine, slack: SlackEmulator, http: httpx.Client) -> None:
    def explain() -> str:
        shown = "".join(f"\n--- {worker.log.name} ---\n{worker.output()[-3000:]}" for worker in workers)
        return f"--- web ---\n{web.output()[-3000:]}{shown}"

    assert http.get(f"{web.base}/healthz").json() == {"status": "ok"}, "web-only: no scheduler of its own"
    run = Running(base=web.base, http=http, slack=slack, channel=slack.channel_id(CHANNEL))

    # 1. pushed to a web process; evaluated and posted by the worker
    web.push({"model": "support-bot", "metrics": {"daily_cost_usd": 455.2}})
    posted = slack.wait_for(lambda c: run.is_root_post(c) and c.ok and len(buttons(c.params)) == 5, timeout=WAIT)
    ts = str(posted.response["ts"])
    incident = buttons(posted.params.get("blocks"))["incident_acknowledge"]

    # 2. the click is acknowledged and acted on by a web process; the worker updates the message
    body = click_body(run, "incident_acknowledge", value=incident, ts=ts)
    answer = http.post(
        f"{web.base}/slack/events",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)},
    )
    assert answer.status_code == 200, answer.text
    acked = slack.wait_for(lambda c: is_update(c, ts, f"Acknowledged by <@{USER}>"), timeout=WAIT)
    assert "incident_acknowledge" not in buttons(acked.params.get("blocks"))
    slack.wait_for(
        lambda c: (
            c.method == "chat.postMessage"
            and c.ok
            and c.params.get("thread_ts") == ts
            and f"<@{USER}>" in rendered(c.params)
        ),
        timeout=WAIT,
    )

    # 3. everything written was delivered, each row once
    def settled() -> list[OutboxRow] | None:
        with session(engine) as s:
            rows = list(s.exec(select(OutboxRow)).all())
        return rows if rows and all(row.status != "pending" for row in rows) else None

    rows = wait_until(settled, "the outbox to drain", timeout=WAIT, explain=explain)
    assert Counter(row.status for row in rows) == {"sent": len(rows)}, Counter(row.status for row in rows)
    delivered = [outbox_id(call) for call in posts(slack)]
    assert all(ident is not None for ident in delivered)
    assert len(delivered) == len(set(delivered)), f"a post was made twice: {Counter(delivered).most_common(3)}"
    assert [m["ts"] for m in slack.messages(CHANNEL)] == [ts], "one root message for the incident"
