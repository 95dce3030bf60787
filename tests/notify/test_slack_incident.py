"""The incident's root message in Slack (SPEC §1), end to end through the real service, outbox and
notifier against the Slack emulator, on SQLite and PostgreSQL: alerts of one incident share one
root, later alerts join it, buttons follow the incident and a section per alert follows its alert,
every change is said once in the thread, and a burst of changes is one ``chat.update``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.alerts import store
from bot.alerts.lifecycle import Alert, AlertState
from bot.changes.events import Change, ChangeKind
from bot.changes.log import ChangeLog
from bot.config.loader import Config, load_config
from bot.incidents.incident import Incident, IncidentState
from bot.notify.slack_incident import (
    COMPACT_ALERTS,
    DETAILED_ALERTS,
    header,
    model_list_replies,
    models_fit,
    render,
)
from bot.notify.slack_shipped import shipped_line
from bot.severity import Severity
from bot.storage.database import session as open_session
from tests.emulators.block_kit_limits import check_message
from tests.emulators.slack_api import SlackEmulator
from tests.notify.slack_harness import ACCURACY_KEY, CHANNEL, COST_KEY, DRIFT_KEY, INCIDENT_BUTTONS, Harness, mrkdwn

GROUP_WAIT = timedelta(seconds=10)
THREE = {"current_accuracy": 0.5, "daily_cost_usd": 450, "drifted_feature_count": 9, "total_features": 10}
"""Trips accuracy_degradation (P1), llm_cost_runaway (P1) and significant_data_drift (P2) at once."""
LATENCY_KEY = "latency_spike:support-bot"
FIRED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(engine: Engine) -> Engine:
    """Recording the root is SQL (first writer wins): run it on both backends."""
    return engine


@pytest.fixture
def bot(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(group_wait=GROUP_WAIT)


def roots(slack: SlackEmulator) -> list[Any]:
    return [c for c in slack.calls_to("chat.postMessage") if not c.params.get("thread_ts")]


def replies(slack: SlackEmulator) -> list[Any]:
    return [c for c in slack.calls_to("chat.postMessage") if c.params.get("thread_ts")]


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(action id, value) of the root's action buttons (not its link buttons)."""
    elements = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    return [(e["action_id"], e["value"]) for e in elements if "url" not in e]


def link_buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(text, url) of the root's link buttons."""
    elements = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    return [(e["text"]["text"], e["url"]) for e in elements if "url" in e]


def menus(message: dict[str, Any]) -> dict[str, list[str]]:
    """Alert id -> what its section's menu offers (``acknowledge``, ``resolve``, ``runbook``)."""
    shown: dict[str, list[str]] = {}
    for block in message["blocks"]:
        accessory = block.get("accessory") or {}
        if accessory.get("type") == "overflow":
            for option in accessory["options"]:
                verb, alert_id = option["value"].split(":")
                shown.setdefault(alert_id, []).append(verb)
        elif accessory.get("type") == "button":
            shown.setdefault(accessory["value"], []).append(accessory["action_id"])
    return shown


def places(bot: Harness) -> set[tuple[str, str]]:
    """Where the three alerts of :data:`THREE` recorded their root message."""
    return {bot.root(key) for key in (ACCURACY_KEY, COST_KEY, DRIFT_KEY)}


def fire_three(bot: Harness) -> None:
    bot.metrics("support-bot", **THREE)
    assert bot.deliver() == 0, "fired alerts wait group_wait before Slack hears of them"
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 3


def head(message: dict[str, Any]) -> str:
    return str(message["blocks"][0]["text"]["text"])


def test_alerts_that_fire_together_are_one_root_with_incident_buttons_and_a_menu_each(
    bot: Harness, slack: SlackEmulator
) -> None:
    fire_three(bot)
    [post] = roots(slack)
    [message] = slack.messages(CHANNEL)
    assert head(message) == "🟠 P1 · support-bot · 3 alerts: all firing"
    incident = str(bot.incident_id())
    assert buttons(message) == [(action, incident) for action in INCIDENT_BUTTONS], "buttons name the incident"
    assert link_buttons(message) == [  # the shipped model's dashboard:, then its links: with {model} filled
        ("Dashboard", "https://grafana.internal/d/support-bot"),
        ("Conversation logs", "https://logs.internal/search?service=support-bot&level=error"),
    ]
    ids = [bot.alert_id(key) for key in (ACCURACY_KEY, COST_KEY, DRIFT_KEY)]
    assert menus(message) == {str(i): ["acknowledge", "resolve", "runbook"] for i in ids}
    text = mrkdwn(message)
    assert text.index("Model accuracy dropped") < text.index("Significant data drift")  # P1s before the P2
    assert "LLM cost approaching budget" in text
    assert places(bot) == {(slack.channel_id(CHANNEL), post.response["ts"])} == {bot.incident_root()}
    assert post.params["metadata"]["event_payload"]["alert_ids"] == sorted(ids)
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


def test_a_later_alert_of_the_incident_joins_its_root(bot: Harness, slack: SlackEmulator) -> None:
    fire_three(bot)
    [message] = slack.messages(CHANNEL)
    bot.clock.advance(timedelta(minutes=20))  # long after group_interval: the incident is still open
    fire_latency(bot)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 1
    assert len(roots(slack)) == 1, "no new post: the incident's root is updated"
    [update] = slack.calls_to("chat.update")
    assert update.params["ts"] == message["ts"]
    [current] = slack.messages(CHANNEL)
    assert head(current) == "🟠 P1 · support-bot · 4 alerts: all firing"
    assert menus(current)[str(bot.alert_id(LATENCY_KEY))] == ["acknowledge", "resolve", "runbook"]
    assert bot.root(LATENCY_KEY) == bot.root(COST_KEY)
    [reply] = replies(slack)
    assert reply.params["thread_ts"] == message["ts"]
    assert reply.params["text"] == "➕ Also firing: 🟠 *P1 · P99 latency &gt;5s for support-bot*"
    assert not reply.params.get("reply_broadcast"), "no louder than the incident: the thread is enough"


def test_after_the_incident_resolved_a_new_alert_opens_a_new_root(bot: Harness, slack: SlackEmulator) -> None:
    bot.metrics(daily_cost_usd=450)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 1
    bot.metrics(daily_cost_usd=120)  # auto-resolves: the incident is over
    assert bot.deliver() == 1
    bot.metrics(current_accuracy=0.5)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 1
    assert len(roots(slack)) == 2
    assert bot.root(COST_KEY) != bot.root(ACCURACY_KEY)
    assert head(bot.root_message(ACCURACY_KEY)) == "🟠 P1 · Model accuracy dropped >5% for support-bot"


def test_a_refire_inside_an_open_incident_updates_its_section_and_adds_no_root(
    bot: Harness, slack: SlackEmulator
) -> None:
    bot.metrics(daily_cost_usd=450, current_accuracy=0.5)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 2
    first_cost = bot.alert_id(COST_KEY)
    bot.metrics(daily_cost_usd=120, current_accuracy=0.5)  # cost clears; accuracy keeps the incident open
    assert bot.deliver() == 1
    bot.clock.advance(timedelta(minutes=61))  # past the rule's 60m cooldown
    bot.metrics(daily_cost_usd=460, current_accuracy=0.5)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 1
    again = bot.alert_id(COST_KEY)
    assert again != first_cost and bot.incident_id() == bot.incident_id(ACCURACY_KEY)
    assert len(roots(slack)) == 1
    [current] = slack.messages(CHANNEL)
    assert head(current) == "🟠 P1 · support-bot · 2 alerts: all firing", "the newest alert per rule:model"
    assert set(menus(current)) == {str(again), str(bot.alert_id(ACCURACY_KEY))}
    assert "$460.00" in mrkdwn(current) and "$450.00" not in mrkdwn(current)
    assert replies(slack)[-1].params["text"] == "🔁 Fired again: 🟠 *P1 · LLM cost approaching budget for support-bot*"


def test_incidents_of_two_models_in_one_channel_get_a_root_each(
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
    assert [head(m) for m in slack.messages(CHANNEL)] == [
        "🟠 P1 · LLM cost approaching budget for support-bot",
        "🟠 P1 · Model accuracy dropped >5% for fraud-detector-v2",
    ]


def test_acknowledging_one_alert_from_its_menu_updates_the_root_at_once(bot: Harness, slack: SlackEmulator) -> None:
    fire_three(bot)
    [message] = slack.messages(CHANNEL)
    bot.clock.advance(timedelta(minutes=2))
    cost, accuracy, drift = (bot.alert_id(key) for key in (COST_KEY, ACCURACY_KEY, DRIFT_KEY))
    bot.service.acknowledge(cost, actor="U1")
    assert bot.deliver() == 1, "a click is not held for group_wait"
    [update] = slack.calls_to("chat.update")
    assert update.params["ts"] == message["ts"]
    [current] = slack.messages(CHANNEL)
    assert head(current) == "🟠 P1 · support-bot · 3 alerts: 2 firing, 1 acknowledged"
    assert menus(current) == {
        str(cost): ["resolve", "runbook"],
        str(accuracy): ["acknowledge", "resolve", "runbook"],
        str(drift): ["acknowledge", "resolve", "runbook"],
    }
    assert [a for a, _ in buttons(current)] == INCIDENT_BUTTONS, "the incident itself is still firing"
    assert mrkdwn(current).count("Acknowledged by <@U1> at 09:02 UTC") == 1
    assert mrkdwn(current).count("Firing: not acknowledged yet") == 2
    [reply] = replies(slack)
    assert reply.params["thread_ts"] == message["ts"]
    assert reply.params["text"] == (
        "✅ Acknowledged by <@U1> at 09:02 UTC — 🟠 *P1 · LLM cost approaching budget for support-bot*"
    )


def test_acknowledging_and_resolving_the_whole_incident_say_it_once(bot: Harness, slack: SlackEmulator) -> None:
    fire_three(bot)
    bot.clock.advance(timedelta(minutes=2))
    bot.service.acknowledge_incident(bot.incident_id(), actor="U1")
    assert bot.deliver() == 1, "one notification for the incident, none per alert"
    [current] = slack.messages(CHANNEL)
    assert head(current) == "🟠 P1 · support-bot · 3 alerts: all acknowledged"
    assert [a for a, _ in buttons(current)] == [
        "incident_resolve",
        "incident_runbook",
        "incident_silence",
        "incident_declare",
    ]
    assert "✅ Acknowledged by <@U1> at 09:02 UTC" in mrkdwn(current)
    bot.clock.advance(timedelta(minutes=21))
    bot.service.resolve_incident(bot.incident_id(), actor="U2")
    assert bot.deliver() == 1
    [current] = slack.messages(CHANNEL)
    assert head(current) == "🟢 Resolved · P1 · support-bot · 3 alerts: all resolved"  # green once over
    assert [a for a, _ in buttons(current)] == ["incident_runbook"] and menus(current) == {}
    assert [r.params["text"] for r in replies(slack)] == [
        "✅ Acknowledged by <@U1> at 09:02 UTC — the whole incident",
        "🟢 Resolved by <@U2> after 23 min 10 s — the whole incident",
    ]
    assert len(slack.calls_to("chat.update")) == 2


def test_an_auto_resolve_in_an_incident_names_the_alert_and_keeps_the_others(
    bot: Harness, slack: SlackEmulator
) -> None:
    fire_three(bot)
    bot.clock.advance(timedelta(minutes=23))
    bot.metrics(daily_cost_usd=120, current_accuracy=0.5, drifted_feature_count=9, total_features=10)
    assert bot.deliver() == 1
    [current] = slack.messages(CHANNEL)
    assert head(current) == "🟠 P1 · support-bot · 3 alerts: 2 firing, 1 resolved"
    assert str(bot.alert_id(COST_KEY)) not in menus(current)
    [reply] = replies(slack)
    assert reply.params["text"].startswith(
        "🟢 Auto-resolved: condition cleared after 23 min 10 s · fired at: daily_budget_usd 500, daily_cost_usd 450"
        " · recovered: daily_cost_usd 120 — "
    )
    assert "LLM cost approaching budget" in reply.params["text"]


def test_a_more_severe_alert_joining_is_broadcast_to_the_channel(bot: Harness, slack: SlackEmulator) -> None:
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
    assert head(current) == "🟠 P1 · support-bot · 2 alerts: all firing", "the incident took the worse severity"


def test_a_burst_of_changes_is_one_chat_update(bot: Harness, slack: SlackEmulator) -> None:
    """Coalescing: four rows (three single acks and the resolve of one) re-render the root from the
    database; the first shows the final state, so the others send no ``chat.update``."""
    fire_three(bot)
    cost, accuracy, drift = (bot.alert_id(key) for key in (COST_KEY, ACCURACY_KEY, DRIFT_KEY))
    for alert_id in (cost, accuracy, drift):
        bot.service.acknowledge(alert_id, actor="U1")
    bot.service.resolve(cost, actor="U1")
    assert bot.deliver() == 4
    assert len(slack.calls_to("chat.update")) == 1
    assert len(replies(slack)) == 4, "every change is still said in the thread"
    [current] = slack.messages(CHANNEL)
    assert head(current) == "🟠 P1 · support-bot · 3 alerts: 2 acknowledged, 1 resolved"


def test_an_escalation_updates_the_root_and_says_where_it_climbed(
    make_harness: Callable[..., Harness], slack: SlackEmulator
) -> None:
    bot = make_harness(group_wait=GROUP_WAIT)
    bot.metrics(drifted_feature_count=9, total_features=10)  # P2: climbs to P1 at 60 min
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 1
    bot.clock.advance(timedelta(minutes=61))
    bot.metrics(drifted_feature_count=9, total_features=10)
    while bot.service.escalate_due():
        pass
    bot.deliver()
    [current] = slack.messages(CHANNEL)
    assert head(current).startswith("🟠 P1 · "), "the header takes the incident's new severity"
    assert "escalated to P1 (step 3/3)" in mrkdwn(current)
    texts = [r.params["text"] for r in replies(slack)]
    assert texts[-1] == "⏫ Escalated to P1 — step 3/3, unacknowledged for 1 h; no page"
    assert all(t.startswith("⏫") for t in texts) and len(texts) == 3


def test_an_incident_too_big_for_detail_lists_its_alerts_a_line_each(
    make_harness: Callable[..., Harness], slack: SlackEmulator, tmp_path: Path
) -> None:
    count = DETAILED_ALERTS + 5
    rules = [
        f"""  - name: r{i}
    models: ["support-bot"]
    condition: p99_latency_ms > {i}
    severity: P{i % 4}
    title: "Rule {i} tripped for {{model}}"
    description: "{"A long description. " * 60}"
"""
        for i in range(count)
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
    assert bot.deliver() == count
    [post] = roots(slack)
    assert len(menus(slack.messages(CHANNEL)[0])) == count, "every alert has its section and menu"
    assert check_message({"text": post.params["text"], "blocks": post.params["blocks"]}) is None
    assert len(post.params["blocks"]) <= 50
    assert post.params["blocks"][0]["text"]["text"] == f"🔴 P0 · support-bot · {count} alerts: all firing"


def _alert(i: int, *, model: str = "support-bot", rule: str | None = None, **changes: Any) -> Alert:
    return Alert(
        id=i,
        rule=rule or f"rule_{i}",
        model=model,
        severity=Severity.P1,
        state=AlertState.FIRING,
        started_at=FIRED,
        fired_at=FIRED,
        incident_id=1,
        **changes,
    )


def _incident(**changes: Any) -> Incident:
    base = Incident(
        id=1,
        group_key="#llm-alerts|model=support-bot",
        channel=CHANNEL,
        severity=Severity.P1,
        state=IncidentState.FIRING,
        opened_at=FIRED,
        labels={"model": "support-bot"},
    )
    return replace(base, **changes)


def test_a_huge_incident_stays_within_block_kit_limits_and_escapes_what_it_shows() -> None:
    alerts = [
        _alert(
            i, title="x" * 400, description="<!channel> " + "y" * 5000, values={f"m_{n}": n * 1.5 for n in range(40)}
        )
        for i in range(COMPACT_ALERTS + 3)
    ]
    for few in (alerts[:DETAILED_ALERTS], alerts):
        text, blocks = render(_incident(), few, now=FIRED)
        assert check_message({"text": text, "blocks": blocks}) is None
        assert len(blocks) <= 50
        assert "<!channel>" not in str(blocks) and "<!channel>" not in text
    assert "…and 3 more alerts" in str(blocks[-2])


def test_a_storm_names_its_models_and_the_rest_go_to_the_thread() -> None:
    storm = _incident(storm_rule="latency_spike", group_key="#ml|storm:latency_spike", labels={"rule": "latency_spike"})
    few = [_alert(i, model=f"model-{i}", rule="latency_spike") for i in range(5)]
    few[0] = replace(few[0], state=AlertState.RESOLVED, resolved_at=FIRED)
    text, blocks = render(storm, few, now=FIRED)
    assert header(storm, few) == "🟠 P1 · Storm: latency_spike on 5 models · 5 alerts: 4 firing, 1 resolved"
    assert "*5 models:* 🟢 `model-0`, 🔥 `model-1`" in str(blocks) and models_fit(few)
    many = [_alert(i, model=f"a-rather-long-model-name-{i:04d}", rule="latency_spike") for i in range(300)]
    text, blocks = render(storm, many, now=FIRED)
    assert check_message({"text": text, "blocks": blocks}) is None
    assert "more (full list in the thread)" in str(blocks) and not models_fit(many)
    listed = model_list_replies(many)
    assert all(len(r) <= 3000 for r in listed) and sum(r.count("`a-rather") for r in listed) == 300 // 2 * 2


def test_a_storm_incident_is_one_root_that_follows_its_models(
    make_harness: Callable[..., Harness], slack: SlackEmulator, tmp_path: Path
) -> None:
    names = [f"model-{i}" for i in range(5)]
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "storm.yaml").write_text(
        "settings:\n  storm_threshold: 2\nmetrics:\n  - name: p99_latency_ms\nrules:\n"
        '  - name: slow\n    models: ["*"]\n    condition: p99_latency_ms > 5000\n    severity: P2\n'
        '    title: "Slow {model}"\n    channel: "#llm-alerts"\nmodels:\n' + "".join(f"  - name: {n}\n" for n in names)
    )
    bot = make_harness(group_wait=GROUP_WAIT, base=load_config(tmp_path))
    bot.service.ingest([(n, "p99_latency_ms", bot.clock.now(), 6000.0) for n in names])
    bot.service.evaluate_once()
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 5
    [post] = roots(slack)
    assert post.params["blocks"][0]["text"]["text"] == "🟡 P2 · Storm: slow on 5 models · 5 alerts: all firing"
    bot.service.ingest([("model-0", "p99_latency_ms", bot.clock.now(), 100.0)])
    bot.service.ingest([(n, "p99_latency_ms", bot.clock.now(), 6000.0) for n in names[1:]])
    bot.service.evaluate_once()
    assert bot.deliver() == 1
    [current] = slack.messages(CHANNEL)
    assert "5 alerts: 4 firing, 1 resolved" in head(current)
    assert "🟢 `model-0`" in mrkdwn(current)


def test_a_storm_too_big_to_name_in_its_root_lists_every_model_in_its_thread(
    make_harness: Callable[..., Harness], slack: SlackEmulator, tmp_path: Path
) -> None:
    names = [f"a-model-with-a-rather-long-name-for-the-fleet-{i:03d}" for i in range(80)]
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "storm.yaml").write_text(
        "settings:\n  storm_threshold: 2\nmetrics:\n  - name: p99_latency_ms\nrules:\n"
        '  - name: slow\n    models: ["*"]\n    condition: p99_latency_ms > 5000\n    severity: P2\n'
        '    title: "Slow {model}"\n    channel: "#llm-alerts"\nmodels:\n' + "".join(f"  - name: {n}\n" for n in names)
    )
    bot = make_harness(group_wait=GROUP_WAIT, base=load_config(tmp_path))
    bot.service.ingest([(n, "p99_latency_ms", bot.clock.now(), 6000.0) for n in names])
    bot.service.evaluate_once()
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 80
    [post] = roots(slack)
    assert check_message({"text": post.params["text"], "blocks": post.params["blocks"]}) is None
    assert "more (full list in the thread)" in str(post.params["blocks"])
    listed = "\n".join(r.params["text"] for r in replies(slack))
    assert all(f"`{n}`" in listed for n in names), "every model is named in the thread"
    assert slack.calls_to("chat.update") == [], "the other 79 rows found their alert in the root"


def test_a_post_whose_answer_was_lost_is_found_again_not_reposted(
    make_harness: Callable[..., Harness], slack: SlackEmulator
) -> None:
    bot = make_harness(group_wait=GROUP_WAIT, timeout=0.3, channel_ids={CHANNEL: slack.channel_id(CHANNEL)})
    slack.delay_next("chat.postMessage", 1.5)
    bot.metrics("support-bot", **THREE)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 0, "the root post timed out (Slack stored it); the incident's other rows wait behind it"
    [stored] = slack.messages(CHANNEL)
    bot.clock.advance(timedelta(seconds=5))
    assert bot.deliver() == 3
    assert len(slack.calls_to("conversations.history")) == 1
    assert len(slack.calls_to("chat.postMessage")) == 1 and slack.messages(CHANNEL)[0]["ts"] == stored["ts"]
    assert places(bot) == {(slack.channel_id(CHANNEL), stored["ts"])} == {bot.incident_root()}
    assert all(row.status == "sent" for row in bot.rows())


def test_a_crash_after_joining_finishes_the_update_and_reply_on_retry(bot: Harness, slack: SlackEmulator) -> None:
    fire_three(bot)
    bot.clock.advance(timedelta(seconds=20))
    fire_latency(bot)
    bot.clock.advance(GROUP_WAIT)
    slack.error_next("chat.update", "internal_error")  # recorded in the root, then the update failed
    assert bot.deliver() == 0
    bot.clock.advance(timedelta(seconds=5))
    assert bot.deliver() == 1
    [current] = slack.messages(CHANNEL)
    assert head(current) == "🟠 P1 · support-bot · 4 alerts: all firing"
    assert [r.params["text"] for r in replies(slack)] == [
        "➕ Also firing: 🟠 *P1 · P99 latency &gt;5s for support-bot*"
    ]


def test_alerts_keep_their_message_for_lookups(bot: Harness, slack: SlackEmulator) -> None:
    bot.metrics(daily_cost_usd=450)
    bot.clock.advance(GROUP_WAIT)
    assert bot.deliver() == 1
    with open_session(bot.engine) as s:
        assert [a.id for a in store.alerts_in_message(s, *bot.root(COST_KEY))] == [bot.alert_id(COST_KEY)]


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((AlertState.FIRING, AlertState.FIRING), "🔴 P0 · support-bot · 2 alerts: all firing"),
        ((AlertState.RESOLVED, AlertState.ACKNOWLEDGED), "🔴 P0 · support-bot · 2 alerts: 1 acknowledged, 1 resolved"),
        ((AlertState.RESOLVED, AlertState.RESOLVED), "🔴 P0 · support-bot · 2 alerts: all resolved"),
    ],
    ids=["all-firing", "the-p0-resolved", "all-resolved"],
)
def test_header_counts_states_under_the_incidents_worst_severity(
    states: tuple[AlertState, AlertState], expected: str
) -> None:
    p0, p2 = (
        replace(_alert(n), severity=sev, state=state)
        for n, sev, state in ((1, Severity.P0, states[0]), (2, Severity.P2, states[1]))
    )
    assert header(_incident(severity=Severity.P0), [p2, p0]) == expected


def test_a_resolved_incidents_header_turns_green_and_says_resolved() -> None:
    """Once over, the root stops looking like a fire in the channel (issue 13, point 5)."""
    p1 = _alert(1)
    firing = _incident(severity=Severity.P1)
    assert header(firing, [p1]).startswith("🟠 P1 · ")
    over = replace(firing, state=IncidentState.RESOLVED, resolved_at=firing.opened_at, resolved_by="U2")
    assert header(over, [p1]).startswith("🟢 Resolved · P1 · ")


def test_the_root_says_what_shipped_before_the_incident_started_the_latest_first(
    bot: Harness, slack: SlackEmulator
) -> None:
    now = bot.clock.now()
    ChangeLog(bot.engine).record(
        [
            Change("support-bot", ChangeKind.DATASET, "d9", now - timedelta(hours=3)),  # outside change_window (2h)
            Change("support-bot", ChangeKind.MODEL_VERSION, "2.4.0", now - timedelta(minutes=90)),
            Change(
                "support-bot", ChangeKind.PROMPT, "v42", now - timedelta(minutes=4), link="https://git.internal/p/42"
            ),
            Change("fraud-detector-v2", ChangeKind.DEPLOY, "b7", now - timedelta(minutes=1)),  # another model
        ]
    )
    fire_three(bot)
    [message] = slack.messages(CHANNEL)
    assert message["blocks"][1]["elements"][0]["text"] == (
        "🚢 Shipped before it started: *<https://git.internal/p/42|prompt v42, 4 min before>* (latest)"
        " · model version 2.4.0, 1 h 30 min before"
    )


def test_a_root_with_nothing_shipped_before_it_has_no_shipped_line(bot: Harness, slack: SlackEmulator) -> None:
    fire_three(bot)
    [message] = slack.messages(CHANNEL)
    assert "Shipped before" not in json.dumps(message)


def test_the_shipped_line_names_the_model_when_the_incident_spans_several() -> None:
    opened = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    line = shipped_line(
        [
            Change("support-bot", ChangeKind.PROMPT, "v<42>", opened - timedelta(seconds=20)),
            Change("fraud-detector-v2", ChangeKind.FEATURE_PIPELINE, "r17", opened - timedelta(hours=1)),
        ],
        opened,
    )
    assert line == (
        "🚢 Shipped before it started: *prompt v&lt;42&gt; to support-bot, at the same time* (latest)"
        " · feature pipeline r17 to fraud-detector-v2, 1 h before"
    )
