"""PostgreSQL going away under the running bot (SPEC §6): its connections are cut and new ones
are refused for a while, during which metrics keep being pushed and buttons clicked.

The bot must not crash; the ingest API may answer 503 (the client retries) but every sample it
answered 202 is stored; a click made during the outage is applied once the database is back;
and every notification and page goes out exactly once.

Two outages: ``pg_ctlcluster … restart`` of the real server (marked ``pg_restart``: it breaks
every other PostgreSQL user for a few seconds, so it runs only with ``RUN_PG_RESTART=1``, which
``.ci/run`` sets), and the same seen from one database only (its connections terminated, new
ones refused), which disturbs nobody else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.storage.database import session
from bot.storage.tables import MetricSampleRow
from tests.reliability.harness import (
    COST,
    COST_OK,
    DRIFT,
    USER,
    Running,
    ScriptedPagerDuty,
    ScriptedSlack,
    alert,
    alert_when,
    assert_slack_exactly_once,
    explainer,
    outbox,
    pagerduty_summary,
    reliability_config,
    rendered,
    root_message,
    start_bot,
    wait_until,
)

CHANNELS = ["#ml-alerts", "#llm-alerts"]
PROBE = "reliability_probe"


class Pusher(threading.Thread):
    """A metric source pushing a distinct sample every 50 ms until stopped, through the outage;
    remembers which samples the bot answered 202 for and every status it saw."""

    def __init__(self, run: Running) -> None:
        super().__init__(daemon=True)
        self.base, self.http = run.base, httpx.Client(timeout=40)
        self.stop = threading.Event()
        self.accepted: set[datetime] = set()
        self.statuses: list[int] = []
        self.start_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)

    def run(self) -> None:
        try:
            for n in range(1, 10_000):
                if self.stop.is_set():
                    return
                at = self.start_at - timedelta(milliseconds=n)  # distinct, in the past, never reused
                sample = {"model": "support-bot", "metrics": {PROBE: float(n)}, "timestamp": at.isoformat()}
                answer = self.http.post(
                    f"{self.base}/api/v1/metrics", headers={"Authorization": "Bearer reliability-t0ken"}, json=sample
                )
                self.statuses.append(answer.status_code)
                if answer.status_code == 202:
                    self.accepted.add(at)
                time.sleep(0.05)
        finally:
            self.http.close()


def reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=1) as connection:
            connection.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def run_through_outage(
    run: Running, slack: ScriptedSlack, pagerduty: ScriptedPagerDuty, outage: Callable[[], AbstractContextManager[None]]
) -> None:
    why = explainer(run.engine, slack, pagerduty)
    run.push([COST, DRIFT])
    cost = wait_until(
        alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.slack_ts),
        "the cost alert in Slack",
        explain=why,
    )
    drift = wait_until(
        alert_when(run.engine, "significant_data_drift", "fraud-detector-v2", lambda a: a.slack_ts),
        "the drift alert in Slack",
        explain=why,
    )
    wait_until(lambda: all(o.status == "sent" for o in outbox(run.engine)), "the first deliveries", explain=why)
    pusher = Pusher(run)
    pusher.start()
    time.sleep(0.3)
    with outage():
        assert run.click("alert_acknowledge", cost).status_code == 200  # acked at once; applied when it can be
        health = run.healthz()  # the database is named unreachable while it is (a restart may be over already)
        assert health["scheduler"] and health["status"] in ("ok", "degraded"), health
        assert health["status"] == "ok" or health["database"].startswith("unreachable"), health
    assert run.click("alert_resolve", drift).status_code == 200
    # A push begun during the outage may still be failing its way out on a loaded machine: stop
    # pushing once one has been stored again, not after a fixed time.
    wait_until(lambda: pusher.statuses[-1:] == [202], "ingest to store samples again", explain=why)
    pusher.stop.set()
    pusher.join(timeout=40)
    assert set(pusher.statuses) <= {202, 503}, f"ingest answered {sorted(set(pusher.statuses))}"
    assert 503 in pusher.statuses, "the pushes met the outage"
    assert pusher.statuses[-1] == 202 and pusher.accepted, pusher.statuses

    acked = wait_until(
        alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.state == "acknowledged"),
        "the click made during the outage to be applied",
        explain=why,
    )
    assert acked.acknowledged_by == USER
    wait_until(
        lambda: f"Acknowledged by <@{USER}>" in rendered(root_message(slack, acked)),
        "the acknowledgement on the alert's message",
        explain=why,
    )
    run.push(COST_OK)  # the cost alert auto-resolves after the outage

    def resolved() -> bool:
        states = [alert(run.engine, "llm_cost_runaway", "support-bot"), alert(run.engine, rule, model)]
        return all(a and a.state == "resolved" for a in states) and all(o.status == "sent" for o in outbox(run.engine))

    rule, model = "significant_data_drift", "fraud-detector-v2"
    wait_until(resolved, "both resolutions delivered", explain=why)
    assert (alert(run.engine, rule, model) or drift).resolved_by == USER
    assert "auto-resolved" in rendered(root_message(slack, acked)).lower()

    with session(run.engine) as s:
        stored = {ensure(r.at) for r in s.exec(select(MetricSampleRow).where(MetricSampleRow.name == PROBE)).all()}
    assert pusher.accepted <= stored, f"{len(pusher.accepted - stored)} samples answered 202 were not stored"
    assert_slack_exactly_once(run.engine, slack, CHANNELS)
    assert not slack.calls_to("chat.postEphemeral"), "nobody was told to try again"
    summary = pagerduty_summary(pagerduty)
    [key] = {k for _action, k in summary}
    assert +summary == {("trigger", key): 1, ("acknowledge", key): 1, ("resolve", key): 1}, why()
    assert [i.status for i in pagerduty.all_incidents] == ["resolved"]
    assert run.thread.is_alive() and run.healthz() == {"status": "ok", "scheduler": True}


def ensure(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


# ------------------------------------------------------------------------------------ the tests


def test_postgres_connections_cut_and_refused_under_the_bot(
    tmp_path: Path, pg_engine: Engine, _postgres_server: Engine, slack: ScriptedSlack, pagerduty: ScriptedPagerDuty
) -> None:
    name = pg_engine.url.database
    url = database_url(pg_engine)

    @contextmanager
    def cut() -> Iterator[None]:
        with _postgres_server.connect() as admin:
            admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            admin.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )
        try:
            yield
            time.sleep(3)
        finally:
            with _postgres_server.connect() as admin:
                admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))

    run = start_bot(url, reliability_config(tmp_path / "config"), slack, pagerduty)
    try:
        run_through_outage(run, slack, pagerduty, cut)
    finally:
        run.close()


def pg_cluster() -> tuple[str, str]:
    """The local cluster ``(version, name)`` for ``pg_ctlcluster``, or skip (fail in CI) saying why."""
    url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    reason = None
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        reason = "pg_ctlcluster is not installed"
    elif os.geteuid() != 0:
        reason = "restarting PostgreSQL with pg_ctlcluster needs root"
    elif not any(host in url for host in ("@127.0.0.1", "@localhost", "//127.0.0.1", "//localhost")):
        reason = f"TEST_DATABASE_URL ({url}) is not the local cluster"
    if reason is not None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return sorted(os.listdir("/etc/postgresql"))[0], "main"


@pytest.mark.pg_restart
def test_postgres_restarted_under_the_bot(
    tmp_path: Path, pg_engine: Engine, _postgres_server: Engine, slack: ScriptedSlack, pagerduty: ScriptedPagerDuty
) -> None:
    version, cluster = pg_cluster()
    url = database_url(pg_engine)
    plain_url = url.replace("postgresql+psycopg://", "postgresql://")

    @contextmanager
    def restart() -> Iterator[None]:
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart"]
        restarting = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 10
            while reachable(plain_url) and restarting.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)  # click while it is down, if we can catch it down
            yield
        finally:
            output, _ = restarting.communicate(timeout=60)
            assert restarting.returncode == 0, output
            _postgres_server.dispose()  # the suite's admin connection died with the server
            wait_until(lambda: reachable(plain_url), "PostgreSQL to accept connections again", explain=lambda: output)

    run = start_bot(url, reliability_config(tmp_path / "config"), slack, pagerduty)
    try:
        run_through_outage(run, slack, pagerduty, restart)
    finally:
        run.close()
