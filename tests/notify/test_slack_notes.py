"""Resolution notes on the message side, against the Slack emulator: the resolve reply of an incident
nobody wrote a note for offers **Add resolution note**; the next incident of the same rule and model
says ``Seen before:`` with who resolved the earlier ones, how long it took and what they wrote."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.notify.slack_notes import ADD_NOTE_ACTION
from tests.emulators.slack_api import SlackEmulator
from tests.notify.slack_harness import CHANNEL, Harness, action_ids, mrkdwn

ANA = "U0ANA0001"


def thread_replies(bot: Harness, slack: SlackEmulator) -> list[dict[str, Any]]:
    return slack.thread(CHANNEL, bot.root()[1])[1:]


def test_an_auto_resolved_incident_s_reply_offers_add_resolution_note(bot: Harness, slack: SlackEmulator) -> None:
    bot.metrics(daily_cost_usd=450)
    bot.deliver()
    bot.clock.advance(timedelta(minutes=5))
    bot.metrics(daily_cost_usd=100)
    bot.deliver()

    (reply,) = thread_replies(bot, slack)
    assert "Auto-resolved" in str(reply["text"])
    assert action_ids(reply) == [ADD_NOTE_ACTION]


def test_a_resolve_with_a_note_offers_no_button_and_the_next_incident_remembers_it(
    bot: Harness, slack: SlackEmulator
) -> None:
    bot.metrics(daily_cost_usd=450)
    bot.deliver()
    first = bot.incident_id()
    bot.clock.advance(timedelta(minutes=42))
    bot.service.resolve_incident(first, actor=ANA, cause="prompt v42 looped", fix="rolled back")
    bot.deliver()
    assert all(action_ids(r) == [] for r in thread_replies(bot, slack))

    bot.clock.advance(timedelta(hours=2))  # past the rule's cooldown
    bot.metrics(daily_cost_usd=460)
    bot.deliver()

    assert bot.incident_id() != first
    root = next(m for m in slack.messages(CHANNEL) if m["ts"] == bot.root()[1])
    assert f"🔁 Seen before: 5 Jan 09:00 (resolved by <@{ANA}> in 42 min: prompt v42 looped / rolled back)" in mrkdwn(
        root
    )
