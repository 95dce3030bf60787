"""PagerDuty down for a while (SPEC §6): 500s, then timeouts (the event applied, the answer
too late), then 429s. Triggers, acknowledgements and resolutions made meanwhile wait in the
outbox and go out once PagerDuty answers again: each exactly once, in order, on one PagerDuty
incident per incident."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.harness import (
    ACCURACY,
    ACCURACY_OK,
    COST,
    ROUTING_KEY,
    USER,
    ScriptedPagerDuty,
    ScriptedSlack,
    alert,
    alert_when,
    assert_slack_exactly_once,
    explainer,
    outbox,
    pagerduty_summary,
    reliability_config,
    start_bot,
    wait_until,
)


def test_pagerduty_500s_timeouts_and_429s_delay_every_page_and_lose_or_double_none(
    tmp_path: Path, slack: ScriptedSlack, pagerduty: ScriptedPagerDuty
) -> None:
    pagerduty.script([500] * 4 + ["timeout"] * 2 + [429] * 3)
    run = start_bot(f"sqlite:///{tmp_path}/bot.db", reliability_config(tmp_path / "config"), slack, pagerduty)
    try:
        why = explainer(run.engine, slack, pagerduty)

        run.push([COST, ACCURACY])
        cost = wait_until(
            alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.slack_ts),
            "the cost alert in Slack",
            explain=why,
        )
        # PagerDuty is still failing: the click is recorded now, its page waits behind the trigger
        assert pagerduty.script_left() > 0, "the click must land during the PagerDuty outage: " + why()
        assert run.click("alert_acknowledge", cost).status_code == 200
        wait_until(
            alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.state == "acknowledged"),
            "the acknowledgement in the database",
            explain=why,
            timeout=5,
        )
        assert run.click("alert_resolve", cost).status_code == 200
        wait_until(
            alert_when(run.engine, "llm_cost_runaway", "support-bot", lambda a: a.state == "resolved"),
            "the resolution in the database",
            explain=why,
            timeout=5,
        )
        run.push(ACCURACY_OK)  # the accuracy alert auto-resolves, maybe before its trigger got through
        wait_until(
            alert_when(run.engine, "accuracy_degradation", "fraud-detector-v2", lambda a: a.state == "resolved"),
            "the accuracy alert to auto-resolve",
            explain=why,
        )
        wait_until(lambda: pagerduty.script_left() == 0, "the outage to play out", explain=why)
        wait_until(lambda: all(o.status == "sent" for o in outbox(run.engine)), "every delivery", explain=why)

        paged = alert(run.engine, "llm_cost_runaway", "support-bot")
        accuracy = alert(run.engine, "accuracy_degradation", "fraud-detector-v2")
        assert paged is not None and accuracy is not None
        assert (paged.acknowledged_by, paged.resolved_by) == (USER, USER)
        pages = [o for o in outbox(run.engine) if o.channel == "pagerduty"]
        assert sorted((o.incident_id or 0, o.kind) for o in pages) == sorted(
            [
                (paged.incident_id or 0, "incident.opened"),
                (paged.incident_id or 0, "incident.resolved"),
                (paged.incident_id or 0, "incident.acknowledged"),
                (accuracy.incident_id or 0, "incident.opened"),
                (accuracy.incident_id or 0, "incident.auto_resolved"),
            ]
        ), why()

        # Exactly once: per dedup key one trigger, and one acknowledge / resolve where made.
        summary = pagerduty_summary(pagerduty)
        keys = {key for _action, key in summary}
        assert len(keys) == 2, why()
        [cost_key] = [k for k in keys if k.startswith(f"incident:{paged.incident_id}:")]
        [accuracy_key] = [k for k in keys if k.startswith(f"incident:{accuracy.incident_id}:")]
        assert +summary == {
            ("trigger", cost_key): 1,
            ("acknowledge", cost_key): 1,
            ("resolve", cost_key): 1,
            ("trigger", accuracy_key): 1,
            ("resolve", accuracy_key): 1,
        }, why()
        # ...and so one incident each, which went through its states in order
        incidents = pagerduty.all_incidents
        assert sorted(i.dedup_key for i in incidents) == sorted([cost_key, accuracy_key]), why()
        by_key = {i.dedup_key: i for i in incidents}
        assert by_key[cost_key].status == by_key[accuracy_key].status == "resolved"
        assert by_key[cost_key].routing_key == ROUTING_KEY
        assert dedupe(by_key[cost_key].events) == ["trigger", "acknowledge", "resolve"]
        assert dedupe(by_key[accuracy_key].events) == ["trigger", "resolve"]
        assert len(pagerduty.timed_out) == 2 and all(pagerduty.events[i]["status"] == 202 for i in pagerduty.timed_out)

        assert_slack_exactly_once(run.engine, slack, ["#ml-alerts", "#llm-alerts"])
    finally:
        run.close()


def dedupe(events: list[str]) -> list[str]:
    """Drop an event repeated right after itself (the re-send of one that timed out)."""
    return [e for i, e in enumerate(events) if i == 0 or events[i - 1] != e]
