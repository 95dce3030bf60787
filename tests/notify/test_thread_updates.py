"""settings.thread_updates: how much an incident's thread says (the root is edited whatever it is)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from bot.config.loader import Config
from bot.notify.thread_updates import broadcasts, says_in_thread
from tests.emulators.slack_api import SlackEmulator
from tests.notify.slack_harness import CHANNEL, Harness, mrkdwn

MENTIONING_STEP = {"step": 1, "mention": "@ml-oncall"}


@pytest.mark.parametrize(
    ("setting", "kind", "said"),
    [
        ("all", "incident.escalated", True),
        ("all", "alert.fired", True),
        ("state_changes", "incident.acknowledged", True),
        ("state_changes", "alert.auto_resolved", True),
        ("state_changes", "incident.update", True),
        ("state_changes", "slack.thread_note", True),
        ("state_changes", "alert.fired", False),
        ("state_changes", "incident.escalated", False),
        ("state_changes", "alert.page_result", False),
        ("none", "incident.resolved", False),
        ("none", "incident.update", False),
        ("none", "incident.reminded", True),
    ],
)
def test_what_each_setting_says(setting: str, kind: str, said: bool) -> None:
    assert says_in_thread(setting, kind, {}) is said  # type: ignore[arg-type]


def test_an_escalation_step_that_mentions_people_is_said_whatever_the_setting() -> None:
    assert says_in_thread("none", "incident.escalated", {"escalation": MENTIONING_STEP})
    assert not says_in_thread("none", "incident.escalated", {"escalation": {"step": 1, "mention": None}})


def test_only_all_broadcasts_to_the_channel() -> None:
    assert broadcasts("all")
    assert not broadcasts("state_changes") and not broadcasts("none")


def _with(config: Config, **settings: object) -> Config:
    return replace(config, settings=config.settings.model_copy(update=settings))


def test_with_none_the_root_still_changes_but_the_thread_stays_empty(
    make_harness: Callable[..., Harness], config: Config, slack: SlackEmulator
) -> None:
    bot = make_harness(base=_with(config, thread_updates="none"))
    bot.metrics(daily_cost_usd=450)
    bot.deliver()
    bot.service.acknowledge_incident(bot.incident_id(), actor="U1")
    assert bot.deliver() == 1

    message = bot.root_message()
    assert "Acknowledged by <@U1>" in mrkdwn(message), "the root shows the state"
    assert slack.thread(CHANNEL, message["ts"])[1:] == []


def test_with_state_changes_a_joining_alert_is_not_said_nor_broadcast_but_an_acknowledgement_is(
    make_harness: Callable[..., Harness], config: Config, slack: SlackEmulator
) -> None:
    bot = make_harness(base=_with(config, thread_updates="state_changes"))
    bot.metrics(drifted_feature_count=9, total_features=10)  # P2
    bot.deliver()
    bot.clock.advance(timedelta(minutes=1))
    bot.metrics(daily_cost_usd=450)  # P1 joins: louder, broadcast under "all"
    bot.deliver()
    bot.service.acknowledge_incident(bot.incident_id(), actor="U1")
    bot.deliver()

    [message] = slack.messages(CHANNEL)
    assert "2 alerts" in mrkdwn(message), "the joining alert is on the root"
    replies = slack.thread(CHANNEL, message["ts"])[1:]
    assert [r["text"] for r in replies] == ["✅ Acknowledged by <@U1> at 09:01 UTC — the whole incident"]
    assert not any(call.params.get("reply_broadcast") for call in slack.calls_to("chat.postMessage"))
