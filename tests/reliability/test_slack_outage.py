"""Slack misbehaving for a while (SPEC §6): 429s with ``Retry-After``, then 500s, then timeouts
(answers that come after the client gave up -- Slack stored the message anyway). When it
clears, every alert has exactly one root message, every state change exactly one thread reply,
and a button clicked during the outage is neither lost nor applied twice."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.harness import (
    COST,
    COST_OK,
    DRIFT,
    DRIFT_OK,
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

ML, LLM = "#ml-alerts", "#llm-alerts"


def all_sent(run: Running) -> bool:
    return all(o.status == "sent" for o in outbox(run.engine))


def test_429s_then_500s_then_timeouts_deliver_everything_once_and_keep_a_click(
    tmp_path: Path, slack: ScriptedSlack
) -> None:
    run = start_bot(f"sqlite:///{tmp_path}/bot.db", reliability_config(tmp_path / "config"), slack, None)
    try:
        why = explainer(run.engine, slack)
        run.push(COST)
        cost = wait_until(
            alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.slack_ts),
            "cost alert posted",
            explain=why,
        )

        # The outage: every kind of call the notifier makes fails for a while, in this order.
        slack.script("chat.postMessage", [429] * 5 + [500] * 3 + ["timeout"] * 2, retry_after=1)
        slack.script("chat.update", [429] * 2 + [500] * 2 + ["timeout"])
        slack.script("conversations.history", [500])
        slack.script("conversations.replies", [500])

        # During it: a new alert in a channel this process never posted to, and a click.
        run.push(DRIFT)
        answer = run.click("alert_acknowledge", cost)
        assert answer.status_code == 200, answer.text
        acked = wait_until(
            alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.state == "acknowledged"),
            "the click to acknowledge the alert in the database",
            explain=why,
            timeout=5,
        )
        assert acked.acknowledged_by == USER

        wait_until(
            lambda: slack.script_left("chat.postMessage") == 0 and slack.script_left("chat.update") == 0,
            "the outage to play out",
            explain=why,
        )
        wait_until(lambda: all_sent(run), "every notification delivered after the outage", explain=why)
        drift = alert(run.engine, "significant_data_drift", "fraud-detector-v2")
        assert drift is not None and drift.slack_ts, why()
        assert f"Acknowledged by <@{USER}>" in rendered(root_message(slack, acked)), "the click's update landed"
        assert_slack_exactly_once(run.engine, slack, [ML, LLM])

        # After recovery: both conditions clear; both alerts auto-resolve, on the same messages.
        run.push([COST_OK, DRIFT_OK])
        wait_until(
            lambda: (
                all(
                    a.state == "resolved"
                    for a in [
                        alert(run.engine, "llm_cost_runaway", "support-bot"),
                        alert(run.engine, "significant_data_drift", "fraud-detector-v2"),
                    ]
                    if a
                )
                and all_sent(run)
            ),
            "both alerts auto-resolved and delivered",
            explain=why,
        )
        assert_slack_exactly_once(run.engine, slack, [ML, LLM])
        assert len(accepted_roots(slack)) == 2
        for row in (cost, drift):
            assert "auto-resolved" in rendered(root_message(slack, row)).lower(), rendered(root_message(slack, row))
        final = alert(run.engine, "llm_cost_runaway", "support-bot")
        assert final is not None and final.acknowledged_by == USER, "the acknowledgement is kept in the history"
        assert run.healthz()["scheduler"] is True
    finally:
        run.close()


def test_a_first_root_post_that_times_out_is_found_in_the_channel_not_posted_again(
    tmp_path: Path, slack: ScriptedSlack
) -> None:
    """The very first post to a ``#name`` channel times out, so the process has never seen the
    channel's ID in an answer; the retry must still find the stored message by its metadata."""
    run = start_bot(f"sqlite:///{tmp_path}/bot.db", reliability_config(tmp_path / "config"), slack, None)
    try:
        why = explainer(run.engine, slack)
        slack.script("chat.postMessage", ["timeout"])
        run.push(DRIFT)
        wait_until(lambda: slack.script_left("chat.postMessage") == 0, "the post that times out", explain=why)
        wait_until(lambda: outbox(run.engine) and all_sent(run), "the retry to complete", explain=why)
        assert_slack_exactly_once(run.engine, slack, [ML])
        assert len(accepted_roots(slack)) == 1
        assert slack.calls_to("conversations.history"), "the retry looked in the channel before posting"
        [row] = outbox(run.engine)
        assert row.attempts == 2
    finally:
        run.close()
