"""``incident-bot serve`` as a real process: push metrics over HTTP, the scheduler evaluates
and the notification goes out through the outbox (to the log notifier without Slack)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot.storage.database import make_engine, session
from bot.storage.tables import AlertRow, OutboxRow
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    port = free_port()
    db = f"sqlite:///{tmp_path}/bot.db"
    env = {
        **os.environ,
        "DATABASE_URL": db,
        "INGEST_TOKEN": "t0ken",
        "EVALUATION_INTERVAL": "1s",
        "BOT_CONFIG_DIR": str(REPO),
        "SLACK_BOT_TOKEN": "",
        "LOG_LEVEL": "INFO",
    }
    env.pop("SLACK_BOT_TOKEN")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"serve did not come up: {proc.stdout.read() if proc.stdout else ''}")
    try:
        yield base, db, proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_pushed_metrics_fire_one_alert_and_it_is_delivered_then_auto_resolves(
    served: tuple[str, str, subprocess.Popen[str]],
) -> None:
    base, db, _proc = served
    health = httpx.get(f"{base}/healthz").json()
    assert health == {"status": "ok", "scheduler": True}
    auth = {"Authorization": "Bearer t0ken"}
    answer = httpx.post(
        f"{base}/api/v1/metrics", headers=auth, json={"model": "support-bot", "metrics": {"daily_cost_usd": 455.2}}
    )
    assert answer.status_code == 202, answer.text
    engine = make_engine(db)

    def rows() -> tuple[list[AlertRow], list[OutboxRow]]:
        with session(engine) as s:
            return list(s.exec(select(AlertRow)).all()), list(s.exec(select(OutboxRow)).all())

    def wait_until(check: object, what: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}: {rows()}")

    wait_until(lambda: any(o.status == "sent" for o in rows()[1]), "the fired notification to be delivered")
    time.sleep(2.5)  # more ticks with the condition still true: still one alert, one notification
    alerts, outbox = rows()
    assert [(a.rule, a.state) for a in alerts] == [("llm_cost_runaway", "firing")]
    assert [(o.kind, o.status) for o in outbox] == [("alert.fired", "sent")]

    httpx.post(f"{base}/api/v1/metrics", headers=auth, json={"model": "support-bot", "metrics": {"daily_cost_usd": 10}})
    wait_until(lambda: rows()[0][0].state == "resolved", "auto-resolve")
    wait_until(lambda: [o.status for o in rows()[1]] == ["sent", "sent"], "the resolve notification")
    assert rows()[0][0].resolved_by == "incident-bot"
