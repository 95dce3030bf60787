"""The weekly alert review through the outbox and SlackNotifier, against the Slack emulator over
real HTTP: :func:`post_weekly_review` enqueues a ``review.weekly`` row; the notifier posts its
title and text (a code block, sections of at most 3,000 characters) to the row's channel, with
metadata naming the row, and a retry whose first post's answer was lost finds it in history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.config.loader import Config
from bot.errors import DeliveryError
from bot.notify.notifier import Notification
from bot.notify.outbox import SENT
from bot.notify.slack import REVIEW, REVIEW_EVENT, review_blocks
from bot.review import weekly
from bot.review.weekly import post_weekly_review
from tests.emulators.slack_api import SlackEmulator
from tests.notify.slack_harness import Harness

REVIEW_CHANNEL = "#ml-alerts"  # the shipped settings.default_channel


def enqueue_review(bot: Harness, config: Config) -> None:
    """A week with one fired alert, reviewed on Monday 09:00 (the harness clock's start)."""
    bot.metrics(daily_cost_usd=450)
    assert bot.deliver() == 1  # the alert's own post, in #llm-alerts
    assert post_weekly_review(bot.engine, config, bot.clock.now(), channels=["slack"])


def test_the_kind_is_the_reviews() -> None:
    assert weekly.KIND == REVIEW


def test_weekly_review_row_is_posted_as_a_code_block_with_metadata(
    bot: Harness, slack: SlackEmulator, config: Config
) -> None:
    enqueue_review(bot, config)
    assert bot.deliver() == 1
    review_row = bot.rows()[-1]
    assert review_row.kind == REVIEW and review_row.status == SENT and review_row.alert_id is None
    [message] = slack.messages(REVIEW_CHANNEL)
    assert message["text"] == "Weekly alert review (2026-W02)"
    header, *sections = message["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": message["text"], "emoji": True}}
    [section] = sections
    body = section["text"]["text"]
    assert body.startswith("```\nAlert review — last 7 days") and body.endswith("\n```")
    assert "llm_cost_runaway" in body
    assert message["metadata"] == {
        "event_type": REVIEW_EVENT,
        "event_payload": {"outbox_id": review_row.id, "week": "2026-W02"},
    }
    assert slack.calls_to("conversations.history") == []  # a first attempt does not search


def test_a_retry_after_a_lost_answer_finds_the_post_instead_of_posting_twice(
    make_harness: Callable[..., Harness], slack: SlackEmulator, config: Config
) -> None:
    bot = make_harness(timeout=0.3)
    enqueue_review(bot, config)
    slack.delay_next("chat.postMessage", 1.5)
    assert bot.deliver() == 0  # timed out, but the emulator stored the message
    assert len(slack.messages(REVIEW_CHANNEL)) == 1
    bot.clock.advance(timedelta(seconds=5))
    assert bot.deliver() == 1
    assert len(slack.calls_to("conversations.history")) == 1
    assert len(slack.messages(REVIEW_CHANNEL)) == 1
    assert bot.rows()[-1].status == SENT


def test_a_review_without_text_fails_for_good(bot: Harness) -> None:
    note = Notification(id=1, channel="slack", kind=REVIEW, alert_id=None, payload={"channel": REVIEW_CHANNEL})
    with pytest.raises(DeliveryError) as refused:
        bot.notifier.send(note)
    assert not refused.value.retryable


def test_review_blocks_keep_sections_under_slacks_limits() -> None:
    body = "Alert review\n" + "\n".join(f"rule_{i:04d} │ <3> │ 1 │ 4m & more" for i in range(800))
    blocks = review_blocks("Weekly alert review (2026-W02)", body)
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert len(sections) > 1 and len(blocks) <= 50
    assert all(len(s) <= 3000 and s.startswith("```\n") and s.endswith("\n```") for s in sections)
    assert "<3>" not in "".join(sections) and "&lt;3&gt; │ 1 │ 4m &amp; more" in sections[0]
    huge = review_blocks("t", "\n".join("y" * 2900 for _ in range(80)))
    assert len(huge) == 47 and huge[-1]["type"] == "context"
