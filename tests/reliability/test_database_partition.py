"""The database behind a network that fails (SPEC §6), through a TCP proxy the test controls.

``drop``: the proxy stops forwarding without closing anything, the partition that used to hang
ingest for 60 s and ``/metrics`` for 30 s while ``/healthz`` said ok. Every database call must
end (:mod:`bot.storage.deadline`): ingest answers 503 within seconds and stores nothing,
``/healthz`` names the database unreachable, and a click made meanwhile is kept
(:mod:`bot.pending_actions`) and applied when the database is back, before the escalation step
that fell due during the outage can run, so nobody is paged about an incident someone took.

``refuse``: every connection is reset and new ones are refused; the same answers, sooner.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.incidents import store as incident_store
from bot.incidents.incident import IncidentEventKind
from bot.slack.messages import kept_for_later
from bot.storage.database import session
from tests.emulators.tcp_proxy import TcpProxy
from tests.reliability.harness import (
    COST,
    USER,
    Running,
    ScriptedPagerDuty,
    ScriptedSlack,
    alert,
    alert_when,
    explainer,
    fast_config,
    outbox,
    pagerduty_summary,
    start_bot,
    wait_until,
)

STEP_AFTER = 15.0
"""Seconds from firing to the escalation step (to P0) that falls due while the database is away."""
CALL_TIMEOUT = 3.0
"""The bot's ``DATABASE_TIMEOUT`` here: a statement waiting longer has its connection cut."""
INGEST_ANSWERS_WITHIN = 10.0
"""Ingest's 503 must come within this (a pre-ping cut at 2 s, a connect timing out at 3 s, with
room for a loaded machine); before the fix it never came while the partition lasted."""


@pytest.fixture
def proxy(pg_engine: Engine) -> Iterator[TcpProxy]:
    url = pg_engine.url
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    yield proxy
    proxy.close()


def through(proxy: TcpProxy, engine: Engine) -> str:
    """The test database's URL with the proxy in front of the server."""
    return engine.url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def start(
    tmp_path: Path, proxy: TcpProxy, pg_engine: Engine, slack: ScriptedSlack, pagerduty: ScriptedPagerDuty
) -> Running:
    config = fast_config(tmp_path / "config", steps=[(STEP_AFTER, "P0")])
    return start_bot(through(proxy, pg_engine), config, slack, pagerduty, database_timeout=CALL_TIMEOUT)


def timed_push(run: Running) -> tuple[int, float]:
    started = time.monotonic()
    status = run.push_once({"model": "support-bot", "metrics": {"daily_cost_usd": 1.0}}).status_code
    return status, time.monotonic() - started


@pytest.mark.parametrize("cut", ["drop", "refuse"])
def test_a_click_during_a_partition_is_kept_and_applied_before_escalation(
    cut: str,
    tmp_path: Path,
    pg_engine: Engine,
    proxy: TcpProxy,
    slack: ScriptedSlack,
    pagerduty: ScriptedPagerDuty,
) -> None:
    run = start(tmp_path, proxy, pg_engine, slack, pagerduty)
    why = explainer(pg_engine, slack, pagerduty)
    try:
        run.push(COST)
        cost = wait_until(
            alert_when(pg_engine, "llm_cost_runaway", "support-bot", lambda a: a.slack_ts),
            "the alert in Slack",
            explain=why,
        )
        wait_until(lambda: all(o.status == "sent" for o in outbox(pg_engine)), "the page and the post", explain=why)
        assert cost.fired_at is not None
        step_due = cost.fired_at.replace(tzinfo=UTC) + timedelta(seconds=STEP_AFTER)

        proxy.drop() if cut == "drop" else proxy.refuse()
        status, took = timed_push(run)
        assert status == 503 and took < INGEST_ANSWERS_WITHIN, (status, took)
        health = run.healthz()
        assert health["status"] == "degraded" and health["database"].startswith("unreachable"), health

        clicked_at = datetime.now(UTC)
        assert run.click("alert_acknowledge", cost).status_code == 200  # acked at once, whatever the database
        told = kept_for_later("acknowledge", f"alert {cost.id}")
        wait_until(
            lambda: any(c.params.get("text") == told for c in slack.calls_to("chat.postEphemeral")),
            "the clicker to be told the click is kept",
            explain=why,
            timeout=60,
        )
        assert run.healthz()["pending_actions"] == 1
        # the escalation step falls due while the database is away: its sweep cannot run either
        wait_until(lambda: datetime.now(UTC) > step_due + timedelta(seconds=1), "the step to fall due", explain=why)

        proxy.forward()
        acked = wait_until(
            alert_when(pg_engine, "llm_cost_runaway", "support-bot", lambda a: a.state == "acknowledged"),
            "the kept click to be applied",
            explain=why,
            timeout=60,
        )
        assert acked.acknowledged_by == USER
        assert acked.acknowledged_at is not None
        assert abs(acked.acknowledged_at.replace(tzinfo=UTC) - clicked_at) < timedelta(seconds=5)  # when clicked
        wait_until(lambda: run.healthz() == {"status": "ok", "scheduler": True}, "/healthz to be ok again", explain=why)
        wait_until(lambda: all(o.status == "sent" for o in outbox(pg_engine)), "the acknowledgement out", explain=why)

        assert acked.incident_id is not None
        with session(pg_engine) as s:
            kinds = [event.kind for event in incident_store.history(s, acked.incident_id)]
        assert IncidentEventKind.ESCALATED not in kinds, kinds
        assert IncidentEventKind.ACKNOWLEDGED in kinds, kinds
        summary = pagerduty_summary(pagerduty)
        assert {action for action, _key in summary} == {"trigger", "acknowledge"}, summary
        assert (alert(pg_engine, "llm_cost_runaway", "support-bot") or acked).severity == "P1"  # never escalated
        assert not (tmp_path / "pending-actions.jsonl").exists()
    finally:
        run.close()
