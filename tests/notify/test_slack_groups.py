"""Alert groups in Slack (SPEC §2 "Grouping"), end to end through the real service, outbox and
notifier against the Slack emulator, on SQLite and PostgreSQL: alerts of one model that fire
together become one message listing them, later alerts of the model join it for a while, and
every click updates the whole group at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.alerts import store
from bot.alerts.lifecycle import Alert, AlertState
from bot.config.loader import Config, load_config
from bot.notify.slack_groups import MAX_GROUP, group_header, group_message
from bot.severity import Severity
from bot.storage.database import session as open_session
from tests.emulators.block_kit_limits import check_message
from tests.emulators.slack_api import SlackEmulator
from tests.notify.slack_harness import ACCURACY_KEY, CHANNEL, COST_KEY, DRIFT_KEY, Harness, mrkdwn

GROUP_WAIT = timedelta(seconds=10)
THREE = {"current_accuracy": 0.5, "daily_cost_usd": 450, "drifted_feature_count": 9, "total_features": 10}
"""Trips accuracy_degradation (P1), llm_cost_runaway (P1) and significant_data_drift (P2) at once."""
LATENCY_KEY = "latency_spike:support-bot"


@pytest.fixture
def db(engine: Engine) -> Engine:
    """Grouping is SQL (first writer wins, alerts by message): run it on both backends."""
    return engine


@pytest.fixture
def bot(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(group_wait=GROUP_WAIT)


def roots(slack: SlackEmulator) -> list[Any]:
    return [c for c in slack.calls_to("chat.postMessage") if not c.params.get("thread_ts")]


def replies(slack: SlackEmulator) -> list[Any]:
    return [c for c in slack.calls_to("chat.postMessage") if c.params.get("thread_ts")]


def actions(message: dict[str, Any]) -> dict[str, list[str]]:
    """Alert id -> the action ids of its buttons, as shown in the message."""
    shown: dict[str, list[str]] = {}
    for block in message["blocks"]:
        if block["type"] == "actions":
            for element in block["elements"]:
                shown.setdefault(element["value"], []).append(element["action_id"])
    return shown


def places(bot: Harness) -> set[tuple[str, str]]:
    """Where the three alerts of :data:`THREE` recorded their root message."""
    return {bot.root(key) for key in (ACCURACY_KEY, COST_KEY, DRIFT_KEY)}


def fire_three(bot: Harness) -> None:
    bot.metrics("support-bot", **THREE)
    assert bot.deliver() == 0, "fired alerts wait group_wait before Slack hears of them"
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 3


def test_alerts_that_fire_together_are_one_message_with_buttons_for_each(bot: Harness, slack: SlackEmulator) -> None:
    fire_three(bot)
    [post] = roots(slack)
    [message] = slack.messages(CHANNEL)
    assert message["blocks"][0]["text"]["text"] == "🟠 3 alerts firing for support-bot"
    ids = [bot.alert_id(key) for key in (ACCURACY_KEY, COST_KEY, DRIFT_KEY)]
    assert actions(message) == {
        str(i): ["alert_acknowledge", "alert_resolve", "alert_runbook", "alert_silence"] for i in ids
    }, "three sets of buttons, each carrying its own alert's id"
    text = mrkdwn(message)
    assert text.index("Model accuracy dropped") < text.index("Significant data drift")  # P1s before the P2
    assert "LLM cost approaching budget" in text
    assert places(bot) == {(slack.channel_id(CHANNEL), post.response["ts"])}
    assert sorted(post.params["metadata"]["event_payload"]["alert_ids"]) == sorted(ids)
    assert check_message({"text": post.params["text"], "blocks": post.params["blocks"]}) is None
    block_ids = [b["block_id"] for b in post.params["blocks"] if "block_id" in b]
    assert len(block_ids) == len(set(block_ids)), "Slack refuses a message whose block ids repeat"
    assert slack.calls_to("chat.update") == [] and replies(slack) == []
    assert all(row.status == "sent" for row in bot.rows())


def fire_latency(bot: Harness) -> None:
    """latency_spike must hold for 2m: it fires two minutes after its first sample."""
    bot.metrics(p99_latency_ms=6000)
    bot.clock.advance(timedelta(minutes=2))
    bot.metrics(p99_latency_ms=6100)


def test_an_alert_firing_within_group_interval_joins_the_message(bot: Harness, slack: SlackEmulator) -> None:
    fire_three(bot)
    [message] = slack.messages(CHANNEL)
    bot.clock.advance(timedelta(seconds=20))
    fire_latency(bot)
    assert bot.deliver() == 0
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 1
    assert len(roots(slack)) == 1, "no new post: the group message is updated"
    [update] = slack.calls_to("chat.update")
    assert update.params["ts"] == message["ts"]
    [current] = slack.messages(CHANNEL)
    assert current["blocks"][0]["text"]["text"] == "🟠 4 alerts firing for support-bot"
    latency = bot.alert_id(LATENCY_KEY)
    assert actions(current)[str(latency)] == ["alert_acknowledge", "alert_resolve", "alert_runbook", "alert_silence"]
    assert bot.root(LATENCY_KEY) == bot.root(COST_KEY)
    [reply] = replies(slack)
    assert reply.params["thread_ts"] == message["ts"]
    assert reply.params["text"] == "➕ Also firing: 🟠 *P1 · P99 latency &gt;5s for support-bot*"
    assert not reply.params.get("reply_broadcast"), "no louder than the group: the thread is enough"


def test_after_group_interval_a_new_alert_gets_a_message_of_its_own(bot: Harness, slack: SlackEmulator) -> None:
    bot.metrics(daily_cost_usd=450)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 1
    bot.clock.advance(timedelta(minutes=5))
    bot.metrics(current_accuracy=0.5)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 1
    assert len(roots(slack)) == 2 and slack.calls_to("chat.update") == []
    assert bot.root(COST_KEY) != bot.root(ACCURACY_KEY)
    newest = bot.root_message(ACCURACY_KEY)
    assert newest["blocks"][0]["text"]["text"] == "🟠 P1 · Model accuracy dropped >5% for support-bot"


def test_alerts_of_another_model_in_the_same_channel_get_their_own_message(
    make_harness: Callable[..., Harness], config: Config, slack: SlackEmulator
) -> None:
    shared = replace(config, models={n: m.model_copy(update={"channel": CHANNEL}) for n, m in config.models.items()})
    bot = make_harness(group_wait=GROUP_WAIT, base=shared)
    bot.metrics(daily_cost_usd=450)
    bot.metrics(model="fraud-detector-v2", current_accuracy=0.5)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 2
    first, second = roots(slack)
    assert first.response["channel"] == second.response["channel"] == slack.channel_id(CHANNEL)
    assert bot.root(COST_KEY) != bot.root("accuracy_degradation:fraud-detector-v2")
    assert [m["blocks"][0]["text"]["text"] for m in slack.messages(CHANNEL)] == [
        "🟠 P1 · LLM cost approaching budget for support-bot",
        "🟠 P1 · Model accuracy dropped >5% for fraud-detector-v2",
    ]


def test_acknowledging_one_alert_updates_the_group_at_once(bot: Harness, slack: SlackEmulator) -> None:
    fire_three(bot)
    [message] = slack.messages(CHANNEL)
    bot.clock.advance(timedelta(minutes=2))
    cost, accuracy, drift = (bot.alert_id(key) for key in (COST_KEY, ACCURACY_KEY, DRIFT_KEY))
    bot.service.acknowledge(cost, actor="U1")
    assert bot.deliver() == 1, "a click is not held for group_wait"
    [update] = slack.calls_to("chat.update")
    assert update.params["ts"] == message["ts"]
    [current] = slack.messages(CHANNEL)
    assert current["blocks"][0]["text"]["text"] == "🟠 3 alerts for support-bot · 2 firing, 1 acknowledged"
    assert actions(current) == {
        str(cost): ["alert_resolve", "alert_runbook", "alert_silence"],
        str(accuracy): ["alert_acknowledge", "alert_resolve", "alert_runbook", "alert_silence"],
        str(drift): ["alert_acknowledge", "alert_resolve", "alert_runbook", "alert_silence"],
    }
    assert mrkdwn(current).count("Acknowledged by <@U1> at 09:02 UTC") == 1
    assert mrkdwn(current).count("Firing: not acknowledged yet") == 2
    [reply] = replies(slack)
    assert reply.params["thread_ts"] == message["ts"]
    assert reply.params["text"] == (
        "✅ Acknowledged by <@U1> at 09:02 UTC — 🟠 *P1 · LLM cost approaching budget for support-bot*"
    )


def test_an_auto_resolve_in_a_group_names_the_alert_and_keeps_the_others(bot: Harness, slack: SlackEmulator) -> None:
    fire_three(bot)
    bot.clock.advance(timedelta(minutes=23))
    bot.metrics(daily_cost_usd=120, current_accuracy=0.5, drifted_feature_count=9, total_features=10)
    assert bot.deliver() == 1
    [current] = slack.messages(CHANNEL)
    assert current["blocks"][0]["text"]["text"] == "🟠 3 alerts for support-bot · 2 firing, 1 resolved"
    assert actions(current)[str(bot.alert_id(COST_KEY))] == ["alert_runbook"]
    [reply] = replies(slack)
    assert reply.params["text"].startswith(
        "🟢 Auto-resolved: condition cleared after 23 min 10 s"
        " · fired at: daily_budget_usd 500, daily_cost_usd 450 · recovered: daily_cost_usd 120 — "
    )
    assert "fired at: 450 · recovered: 120" in str(current["blocks"])
    assert "LLM cost approaching budget" in reply.params["text"]


def test_a_more_severe_alert_joining_a_group_is_broadcast_to_the_channel(
    make_harness: Callable[..., Harness], slack: SlackEmulator
) -> None:
    bot = make_harness(group_wait=GROUP_WAIT)
    bot.metrics(drifted_feature_count=9, total_features=10)  # P2
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 1
    bot.metrics(daily_cost_usd=450)  # P1
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 1
    assert len(roots(slack)) == 1
    [reply] = replies(slack)
    assert reply.params.get("reply_broadcast") in (True, "true", "1", 1)
    [current] = slack.messages(CHANNEL)
    assert current["blocks"][0]["text"]["text"] == "🟠 2 alerts firing for support-bot"


def test_a_group_too_big_for_one_message_splits(
    make_harness: Callable[..., Harness], slack: SlackEmulator, tmp_path: Path
) -> None:
    rules = [
        f"""  - name: r{i}
    models: ["support-bot"]
    condition: p99_latency_ms > {i}
    severity: P{i % 4}
    title: "Rule {i} tripped for {{model}}"
    description: "{"A long description. " * 60}"
"""
        for i in range(MAX_GROUP + 2)
    ]
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "many.yaml").write_text(
        "metrics:\n  - name: p99_latency_ms\nrules:\n"
        + "".join(rules)
        + 'models:\n  - name: support-bot\n    channel: "#llm-alerts"\n'
    )
    bot = make_harness(group_wait=GROUP_WAIT, base=load_config(tmp_path))
    bot.metrics(p99_latency_ms=100)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == MAX_GROUP + 2
    first, second = roots(slack)
    shown = [set(actions(slack.thread(CHANNEL, p.response["ts"])[0])) for p in (first, second)]
    assert [len(s) for s in shown] == [MAX_GROUP, 2]
    assert len(shown[0] | shown[1]) == MAX_GROUP + 2, "every alert in exactly one message"
    for post in (first, second):
        assert check_message({"text": post.params["text"], "blocks": post.params["blocks"]}) is None
        assert len(post.params["blocks"]) <= 50
    assert first.params["blocks"][0]["text"]["text"] == f"🔴 {MAX_GROUP} alerts firing for support-bot"


def test_a_full_group_within_block_kit_limits_even_with_many_values() -> None:
    fired = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    alerts = [
        Alert(
            id=i,
            rule=f"rule_{i}",
            model="support-bot",
            severity=Severity.P1,
            state=AlertState.FIRING,
            started_at=fired,
            fired_at=fired,
            title="x" * 400,
            description="<!channel> " + "y" * 5000,
            values={f"metric_{n}": n * 1.5 for n in range(40)},
        )
        for i in range(MAX_GROUP + 3)
    ]
    text, blocks = group_message(alerts, now=fired, runbook=lambda _a: True)
    assert check_message({"text": text, "blocks": blocks}) is None
    assert len(blocks) <= 50
    assert "…and 3 more in this group" in str(blocks[-1])
    assert "<!channel>" not in str(blocks)


def test_a_post_whose_answer_was_lost_is_found_again_by_the_next_alert_of_the_group(
    make_harness: Callable[..., Harness], slack: SlackEmulator
) -> None:
    bot = make_harness(group_wait=GROUP_WAIT, timeout=0.3, channel_ids={CHANNEL: slack.channel_id(CHANNEL)})
    slack.delay_next("chat.postMessage", 1.5)
    bot.metrics("support-bot", **THREE)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 2, "the first post timed out (Slack stored it); the others found it"
    [stored] = slack.messages(CHANNEL)
    assert len(slack.calls_to("conversations.history")) == 1
    bot.clock.advance(timedelta(seconds=5))
    assert bot.deliver() == 1
    assert len(slack.calls_to("chat.postMessage")) == 1 and slack.messages(CHANNEL)[0]["ts"] == stored["ts"]
    assert places(bot) == {(slack.channel_id(CHANNEL), stored["ts"])}
    assert all(row.status == "sent" for row in bot.rows())


def test_a_crash_after_joining_a_group_finishes_the_update_and_reply_on_retry(
    bot: Harness, slack: SlackEmulator
) -> None:
    fire_three(bot)
    bot.clock.advance(timedelta(seconds=20))
    fire_latency(bot)
    bot.clock.advance(GROUP_WAIT)
    slack.error_next("chat.update", "internal_error")  # recorded in the group, then the update failed
    assert bot.deliver() == 0
    bot.clock.advance(timedelta(seconds=5))
    assert bot.deliver() == 1
    [current] = slack.messages(CHANNEL)
    assert current["blocks"][0]["text"]["text"] == "🟠 4 alerts firing for support-bot"
    assert [r.params["text"] for r in replies(slack)] == [
        "➕ Also firing: 🟠 *P1 · P99 latency &gt;5s for support-bot*"
    ]


def test_metadata_of_a_single_alert_post_is_unchanged(bot: Harness, slack: SlackEmulator) -> None:
    bot.metrics(daily_cost_usd=450)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 1
    [post] = roots(slack)
    [row] = bot.rows()
    assert post.params["metadata"]["event_payload"] == {"alert_id": bot.alert_id(COST_KEY), "outbox_id": row.id}
    with open_session(bot.engine) as s:
        assert store.alerts_in_message(s, *bot.root(COST_KEY))[0].id == bot.alert_id(COST_KEY)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((AlertState.FIRING, AlertState.FIRING), "🔴 2 alerts firing for support-bot"),
        ((AlertState.RESOLVED, AlertState.ACKNOWLEDGED), "🟡 2 alerts for support-bot · 1 acknowledged, 1 resolved"),
        ((AlertState.RESOLVED, AlertState.RESOLVED), "🟢 2 alerts for support-bot · all resolved"),
    ],
    ids=["all-firing", "the-p0-resolved", "all-resolved"],
)
def test_group_header_counts_states_and_takes_the_most_severe_open_alerts_colour(
    states: tuple[AlertState, AlertState], expected: str
) -> None:
    fired = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    p0, p2 = (
        Alert(id=n, rule=f"r{n}", model="support-bot", severity=sev, state=state, started_at=fired, fired_at=fired)
        for n, sev, state in ((1, Severity.P0, states[0]), (2, Severity.P2, states[1]))
    )
    assert group_header([p2, p0]) == expected


def test_a_resolved_alert_in_a_group_is_listed_in_green() -> None:
    fired = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    p0, p2 = (
        Alert(id=n, rule=f"r{n}", model="support-bot", severity=sev, state=state, started_at=fired, fired_at=fired)
        for n, sev, state in ((1, Severity.P0, AlertState.RESOLVED), (2, Severity.P2, AlertState.FIRING))
    )
    text, blocks = group_message([p0, p2], now=fired, runbook=lambda _a: True)
    body = mrkdwn({"blocks": blocks})
    assert "🟢 *P0 · r1 · support-bot*" in body and "🟡 *P2 · r2 · support-bot*" in body
    assert "🔴" not in text + body  # the resolved P0 no longer colours anything
