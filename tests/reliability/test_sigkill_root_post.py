"""SIGKILL while an alert's root message is in flight (SPEC §6): Slack stored the post, the
process died before the answer. The next process must find that message by its metadata --
although it has never posted to the channel and so does not know its ID -- instead of posting a
second one, and every later change must land on it.

(``tests/e2e/test_escalation_crash.py`` covers a kill between escalation steps and during a
thread reply; this is the root post, which is searched in the channel history, not a thread.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import update
from sqlmodel import col

from bot.storage.database import make_engine, session
from bot.storage.tables import OutboxRow
from tests.e2e.test_escalation_crash import Served, outbox_id, serve_env
from tests.reliability.harness import (
    COST,
    COST_OK,
    USER,
    ScriptedPagerDuty,
    ScriptedSlack,
    accepted_replies,
    accepted_roots,
    alert,
    alert_when,
    assert_slack_exactly_once,
    click_body,
    explain,
    outbox,
    pagerduty_summary,
    reliability_config,
    rendered,
    root_message,
    wait_until,
)
from tests.slack.harness import SECRET, sign

LLM = "#llm-alerts"


def test_sigkill_while_the_root_post_is_in_flight_leaves_one_root_message(
    tmp_path: Path, slack: ScriptedSlack, pagerduty: ScriptedPagerDuty
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    env = {
        **serve_env(url, reliability_config(tmp_path / "config"), slack, pagerduty),
        "SLACK_SIGNING_SECRET": SECRET,
        "OUTBOX_BACKOFF_BASE": "0.2",
        "OUTBOX_BACKOFF_CAP": "1",
    }
    engine = make_engine(url)
    processes: list[Served] = []

    def why() -> str:
        log = processes[-1].output()[-5000:] if processes else ""
        return explain(engine, slack, pagerduty) + "\n--- log (tail) ---\n" + log

    try:
        slack.delay_next("chat.postMessage", 120)  # stored at once, answered never (within the test)
        first = Served(env, tmp_path / "serve.log", name="serve #1")
        processes.append(first)
        first.push(COST)
        in_flight = wait_until(lambda: accepted_roots(slack), "the root post to reach Slack", explain=why, timeout=20)[
            0
        ]
        wait_until(  # the page has a lane of its own: it does not wait for the hanging post
            lambda: [o for o in outbox(engine) if o.channel == "pagerduty" and o.status == "sent"],
            "the page to go out while the Slack post hangs",
            explain=why,
        )
        first.kill()

        [row] = [o for o in outbox(engine) if o.id == outbox_id(in_flight)]
        assert (row.kind, row.status, row.attempts) == ("alert.fired", "pending", 1), why()
        assert row.claimed_until is not None, "the dead process's claim is still on the row"
        fired = alert(engine, "llm_cost_runaway", "support-bot")
        assert fired is not None and fired.slack_ts is None, "the post's answer never reached the database"
        assert len(slack.messages(LLM)) == 1, "Slack has the message: only the answer was lost"

        # The claim of a dead process (the post's row) lapses after the outbox's claim lease (10 s;
        # test_sigkill_claims.py waits for it); age it instead, so the test stays short. Nothing else
        # about the rows changes.
        with session(engine) as s, s.begin():
            expired = datetime(2000, 1, 1, tzinfo=UTC)
            s.execute(update(OutboxRow).where(col(OutboxRow.status) == "pending").values(claimed_until=expired))

        second = Served(env, tmp_path / "serve.log", name="serve #2")
        processes.append(second)
        recorded = wait_until(
            alert_when(engine, "llm_cost_runaway", "support-bot", lambda a: a.slack_ts),
            "the restarted process to record the message it finds",
            explain=why,
        )
        assert recorded.slack_ts == in_flight.response["ts"], "the message found is the one posted before the kill"
        assert "found an earlier Slack post" in second.output()
        wait_until(lambda: all(o.status == "sent" for o in outbox(engine)), "every delivery", explain=why)
        [again] = [o for o in outbox(engine) if o.id == row.id]
        assert (again.status, again.attempts) == ("sent", 2)

        # Later changes land on that message: a click, then the recovery.
        body = click_body(
            "alert_acknowledge", recorded.id or 0, channel=recorded.slack_channel or "", ts=recorded.slack_ts or ""
        )
        answer = httpx.post(
            f"{second.base}/slack/events",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        wait_until(
            lambda: f"Acknowledged by <@{USER}>" in rendered(root_message(slack, recorded)),
            "the acknowledgement on the message",
            explain=why,
        )
        second.push(COST_OK)
        wait_until(
            lambda: (
                "auto-resolved" in rendered(root_message(slack, recorded)).lower()
                and all(o.status == "sent" for o in outbox(engine))
            ),
            "the auto-resolve on the message",
            explain=why,
        )

        assert len(accepted_roots(slack)) == 1 and len(slack.messages(LLM)) == 1, why()
        assert {c.params["thread_ts"] for c in accepted_replies(slack)} == {recorded.slack_ts}
        assert_slack_exactly_once(engine, slack, [LLM])
        summary = pagerduty_summary(pagerduty)
        [key] = {k for _action, k in summary}
        assert +summary == {("trigger", key): 1, ("acknowledge", key): 1, ("resolve", key): 1}, why()
        assert [i.status for i in pagerduty.all_incidents] == ["resolved"]
    finally:
        for served in processes:
            served.stop()
        engine.dispose()
