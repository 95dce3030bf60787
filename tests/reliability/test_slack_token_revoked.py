"""A revoked or rotated Slack token for a while (issue 12 point 4): every Web API call answers
``invalid_auth``. Nothing fails for good: delivery pauses and retries with backoff, and when the
token works again every alert has exactly one root message, every change one thread reply, and
the acknowledged alert's message has no Acknowledge button left."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.harness import (
    COST,
    DRIFT,
    USER,
    ScriptedSlack,
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

ML, LLM = "#ml-alerts", "#llm-alerts"
REFUSALS = 3
"""``invalid_auth`` answers per Web API method the notifier uses: with the harness's 0.2–1 s
backoff, a few seconds of a refused token."""


def test_invalid_auth_for_a_while_pauses_delivery_and_loses_nothing(tmp_path: Path, slack: ScriptedSlack) -> None:
    run = start_bot(f"sqlite:///{tmp_path}/bot.db", reliability_config(tmp_path / "config"), slack, None)
    try:
        why = explainer(run.engine, slack)
        run.push(COST)
        cost = wait_until(
            alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.slack_ts),
            "cost alert posted",
            explain=why,
        )
        for method in ("chat.postMessage", "chat.update", "conversations.history", "conversations.replies"):
            slack.error_next(method, "invalid_auth", times=REFUSALS)

        run.push(DRIFT)  # a new alert while the token is refused
        answer = run.click("alert_acknowledge", cost)
        assert answer.status_code == 200, answer.text
        wait_until(
            alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.state == "acknowledged"),
            "the click applied in the database",
            explain=why,
        )
        wait_until(
            lambda: len([c for c in slack.calls if c.response == {"ok": False, "error": "invalid_auth"}]) >= 2,
            "Slack refusing the token",
            explain=why,
        )
        assert all(row.status != "failed" for row in outbox(run.engine)), "paused, not failed"
        wait_until(
            lambda: bool(outbox(run.engine)) and all(o.status == "sent" for o in outbox(run.engine)),
            "every notification delivered once the token works",
            explain=why,
            timeout=60,
        )
        drift = alert(run.engine, "significant_data_drift", "fraud-detector-v2")
        assert drift is not None and drift.slack_ts, why()
        acked = rendered(root_message(slack, cost))
        assert f"Acknowledged by <@{USER}>" in acked and "alert_acknowledge" not in acked
        assert_slack_exactly_once(run.engine, slack, [ML, LLM])
        assert "delivery_paused" not in run.healthz() and "notifications_failed" not in run.healthz()
    finally:
        run.close()
