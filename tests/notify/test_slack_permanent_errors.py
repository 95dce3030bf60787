"""Permanent-looking Slack errors that are not the notification's fault (issue 12 point 4): a
refused token pauses Slack delivery and retries until it works, and a channel the bot cannot post
in sends the alert to ``default_channel`` with a note, instead of failing notifications for good."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from bot.clock import SystemClock
from bot.config.loader import Config
from bot.notify.lanes import Lanes
from bot.notify.outbox import FAILED, SENT, Backoff, Outbox
from bot.notify.slack import ChannelPacer, SlackNotifier, make_client
from bot.service import AlertService, every_channel
from tests.emulators.slack_api import SlackEmulator
from tests.notify.slack_harness import CHANNEL, Harness, action_ids, mrkdwn

DEFAULT = "#ml-alerts"


@pytest.mark.parametrize("error", ["invalid_auth", "token_revoked", "account_inactive"])
def test_a_refused_token_pauses_delivery_until_it_works_and_fails_nothing(
    bot: Harness, slack: SlackEmulator, error: str
) -> None:
    """Today 20 s of invalid_auth failed notifications for good and left an acknowledged alert
    showing a live Acknowledge button."""
    slack.error_next("chat.postMessage", error, times=4)
    bot.metrics(daily_cost_usd=450)
    bot.service.acknowledge(bot.alert_id(), actor="U1")
    assert bot.deliver() == 0
    assert "slack" in bot.outbox.pauses()
    assert bot.deliver() == 0 and len(slack.calls_to("chat.postMessage")) == 1, "paused: nothing else is tried"
    for tries in range(2, 5):
        bot.clock.advance(timedelta(minutes=10))
        assert bot.deliver() == 0
        assert len(slack.calls_to("chat.postMessage")) == tries, "one try per pause, not one per row"
        assert all(row.status == "pending" for row in bot.rows())
    bot.clock.advance(timedelta(minutes=10))  # the token works again
    assert bot.deliver() == 2
    assert bot.outbox.pauses() == {}
    assert [row.status for row in bot.rows()] == [SENT, SENT]
    message = bot.root_message()
    assert "Acknowledged by <@U1>" in mrkdwn(message) and "alert_acknowledge" not in action_ids(message)


def test_a_refused_token_pauses_longer_while_it_stays_refused(bot: Harness, slack: SlackEmulator) -> None:
    slack.error_next("chat.postMessage", "invalid_auth", times=6)
    bot.metrics(daily_cost_usd=450)
    waits: list[float] = []
    for _ in range(6):
        bot.deliver()
        pause = bot.outbox.pauses()["slack"]
        waits.append((pause.until - bot.clock.now()).total_seconds())
        bot.clock.advance(timedelta(seconds=waits[-1]))
    assert waits[-1] > waits[0] and bot.outbox.pauses()["slack"].streak == 6
    assert bot.deliver() == 1


def test_a_paused_lane_sleeps_through_each_pause_and_resumes_on_its_own(db: Engine, config: Config) -> None:
    """The lane polls once a minute here, so each retry after a pause came from the pause's own deadline."""
    clock = SystemClock()
    chosen = replace(config, settings=config.settings.model_copy(update={"group_wait": timedelta(0)}))
    with SlackEmulator() as slack:
        client = make_client("xoxb-test", base_url=slack.base_url, timeout=5.0)
        pacer = ChannelPacer(0.001)  # so the gaps between tries are the pauses, not the pacing
        notifier = SlackNotifier(client, engine=db, config=lambda: chosen, clock=clock, pacer=pacer)
        outbox = Outbox(db, clock, {"slack": notifier}, backoff=Backoff(base=0.1, cap=0.4), rng=random.Random(3))
        service = AlertService(db, clock, lambda: chosen, every_channel(["slack"]))
        slack.error_next("chat.postMessage", "invalid_auth", times=3)
        lanes = Lanes(outbox, db, poll=60.0)
        lanes.start()
        try:
            service.ingest([("support-bot", "daily_cost_usd", clock.now(), 450.0)])
            service.evaluate_once()
            slack.wait_for(lambda c: c.method == "chat.postMessage" and c.ok, timeout=10.0)
        finally:
            lanes.stop()
        tries = slack.calls_to("chat.postMessage")
    assert [c.ok for c in tries] == [False, False, False, True]
    assert all(later.at - earlier.at >= 0.05 for earlier, later in itertools.pairwise(tries))
    assert outbox.pauses() == {}


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
def test_a_channel_the_bot_cannot_post_in_sends_the_alert_to_the_default_channel_with_a_note(
    bot: Harness, slack: SlackEmulator, error: str
) -> None:
    slack.error_next("chat.postMessage", error)
    bot.metrics(daily_cost_usd=450)
    assert bot.deliver() == 1
    channel, ts = bot.root()
    assert channel == slack.channel_id(DEFAULT) and slack.messages(CHANNEL) == []
    _root, note = slack.thread(DEFAULT, ts)
    assert f"could not post in {CHANNEL}: {error}" in note["text"]
    bot.clock.advance(timedelta(minutes=2))
    bot.service.acknowledge(bot.alert_id(), actor="U1")
    assert bot.deliver() == 1  # the update and the reply follow the alert into the default channel
    assert "Acknowledged by <@U1>" in mrkdwn(bot.root_message())
    assert len(slack.thread(DEFAULT, ts)) == 3
    assert all(row.status == SENT for row in bot.rows())


def test_when_the_default_channel_itself_is_gone_the_post_fails_as_before(bot: Harness, slack: SlackEmulator) -> None:
    slack.error_next("chat.postMessage", "channel_not_found", times=2)
    bot.metrics(daily_cost_usd=450)
    assert bot.deliver() == 0
    [row] = bot.rows()
    assert row.status == FAILED and "channel_not_found" in (row.last_error or "")
    assert [c.params["channel"] for c in slack.calls_to("chat.postMessage")] == [CHANNEL, DEFAULT]
