"""SlackNotifier against the Slack emulator over real HTTP, with a SQLite file database and the
real outbox: alerts are created by ingesting metrics, as in production (see slack_harness.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from bot.alerts import store
from bot.errors import DeliveryError
from bot.notify.notifier import ThreadNote
from bot.notify.outbox import FAILED, SENT
from bot.notify.slack import ChannelPacer, api_error
from bot.silences.silence import Silence
from bot.storage.database import session as open_session
from bot.storage.tables import AlertRow
from tests.emulators.slack_api import SlackEmulator
from tests.notify.slack_harness import CHANNEL, INCIDENT_BUTTONS, FakeTime, Harness, action_ids, mrkdwn


def test_fired_posts_one_root_message_with_buttons_and_metadata(bot: Harness, slack: SlackEmulator) -> None:
    bot.metrics(daily_cost_usd=450)
    assert bot.deliver() == 1
    [message] = slack.messages(CHANNEL)
    assert action_ids(message) == INCIDENT_BUTTONS
    assert message["blocks"][0]["text"]["text"] == "🟠 P1 · LLM cost approaching budget for support-bot"
    [row] = bot.rows()
    alert_id = bot.alert_id()
    incident_id = bot.incident_id()
    elements = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert {e["value"] for e in elements if "url" not in e} == {str(incident_id)}
    assert next(e["url"] for e in elements if "url" in e) == "https://grafana.internal/d/support-bot"
    assert message["metadata"] == {
        "event_type": "incident_bot_incident",
        "event_payload": {"incident_id": incident_id, "outbox_id": row.id, "alert_ids": [alert_id]},
    }
    assert bot.root() == (slack.channel_id(CHANNEL), message["ts"]) == bot.incident_root()
    assert row.status == SENT
    assert slack.calls_to("chat.update") == [] and slack.calls_to("conversations.history") == []


def test_acknowledge_updates_the_root_and_replies_in_its_thread(bot: Harness, slack: SlackEmulator) -> None:
    bot.metrics(daily_cost_usd=450)
    bot.deliver()
    bot.clock.advance(timedelta(minutes=2))
    bot.service.acknowledge(bot.alert_id(), actor="U1")
    assert bot.deliver() == 1
    [update] = slack.calls_to("chat.update")
    assert update.params["channel"] == slack.channel_id(CHANNEL)
    message = bot.root_message()
    assert "Acknowledged by <@U1> at 09:02 UTC" in mrkdwn(message)
    assert action_ids(message) == ["incident_resolve", "incident_runbook", "incident_silence", "incident_declare"]
    _root, reply = slack.thread(CHANNEL, message["ts"])
    assert reply["text"] == "✅ Acknowledged by <@U1> at 09:02 UTC"
    assert len(slack.messages(CHANNEL)) == 1


def test_each_change_and_each_post_is_one_log_line(
    bot: Harness, slack: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """What ``serve`` logs at INFO while an alert fires and is acknowledged: the change, then its post."""
    caplog.set_level(logging.INFO)
    bot.metrics(daily_cost_usd=450)
    bot.deliver()
    bot.service.acknowledge(bot.alert_id(), actor="U1")
    bot.deliver()
    bot.metrics(daily_cost_usd=450)  # evaluated again, nothing changes: nothing to say
    bot.deliver()
    alert_id, (channel, ts), incident = bot.alert_id(), bot.root(), bot.incident_id()
    lines = [(r.name, r.getMessage()) for r in caplog.records if r.levelno == logging.INFO and r.name.startswith("bot")]
    group = "#llm-alerts|model=support-bot"
    assert lines == [
        ("bot.service", f"incident {incident} opened: {group} (P1)"),
        ("bot.service", f"alert {alert_id} fired: llm_cost_runaway:support-bot (P1) by rule:llm_cost_runaway"),
        ("bot.notify.slack", f"posted incident {incident} (alerts [{alert_id}]) to Slack {channel} as {ts}"),
        ("bot.service", f"alert {alert_id} acknowledged: llm_cost_runaway:support-bot (P1) by U1"),
        ("bot.service", f"incident {incident} acknowledged: {group} (P1)"),
        ("bot.notify.slack", f"posted acknowledged reply for alert {alert_id} to Slack {channel} in thread {ts}"),
    ]


def test_auto_resolve_shows_resolved(bot: Harness, slack: SlackEmulator) -> None:
    bot.metrics(daily_cost_usd=450)
    bot.deliver()
    bot.clock.advance(timedelta(minutes=23))
    bot.metrics(daily_cost_usd=120)
    assert bot.deliver() == 1
    message = bot.root_message()
    assert "Auto-resolved: condition cleared after 23 min" in mrkdwn(message)
    assert action_ids(message) == ["incident_runbook"]
    assert slack.thread(CHANNEL, message["ts"])[1]["text"] == (
        "🟢 Auto-resolved: condition cleared after 23 min"
        " · fired at: daily_budget_usd 500, daily_cost_usd 450 · recovered: daily_cost_usd 120"
    )


def test_the_message_ends_consistent_with_the_database_whatever_the_click_order(
    bot: Harness, slack: SlackEmulator
) -> None:
    """Two changes delivered together: the first update already renders the final state from the
    database, so the second row sends no update (coalesced), only its thread reply."""
    bot.metrics(daily_cost_usd=450)
    bot.deliver()
    bot.service.acknowledge(bot.alert_id(), actor="U1")
    bot.clock.advance(timedelta(minutes=5))
    bot.service.resolve(bot.alert_id(), actor="U2")
    assert bot.deliver() == 2
    [update] = slack.calls_to("chat.update")
    assert "Resolved by <@U2> after 5 min" in str(update.params["blocks"])
    message = bot.root_message()
    assert action_ids(message) == ["incident_runbook"]
    replies = [m["text"] for m in slack.thread(CHANNEL, message["ts"])[1:]]
    assert replies == ["✅ Acknowledged by <@U1> at 09:00 UTC", "🟢 Resolved by <@U2> after 5 min"]


def test_429_reschedules_by_retry_after_then_posts_once(bot: Harness, slack: SlackEmulator) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=2)
    bot.metrics(daily_cost_usd=450)
    assert bot.deliver() == 0
    [row] = bot.rows()
    assert row.attempts == 1 and "rate limited" in (row.last_error or "")
    assert row.not_before.replace(tzinfo=None) == (bot.clock.now() + timedelta(seconds=2)).replace(tzinfo=None)
    bot.clock.advance(timedelta(seconds=1))
    assert bot.deliver() == 0
    assert len(slack.calls_to("chat.postMessage")) == 1
    bot.clock.advance(timedelta(seconds=1))
    assert bot.deliver() == 1
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert len(slack.messages(CHANNEL)) == 1


def test_5xx_is_retried_and_posts_once(bot: Harness, slack: SlackEmulator) -> None:
    slack.fail_next("chat.postMessage", status=500)
    bot.metrics(daily_cost_usd=450)
    assert bot.deliver() == 0
    bot.clock.advance(timedelta(seconds=5))
    assert bot.deliver() == 1
    assert len(slack.messages(CHANNEL)) == 1
    assert [r.status for r in bot.rows()] == [SENT]


@pytest.mark.parametrize("how", ["learned-from-an-earlier-post", "configured"])
def test_timeout_after_slack_stored_the_post_is_found_again_not_reposted(
    make_harness: Callable[..., Harness], slack: SlackEmulator, how: str
) -> None:
    if how == "configured":
        bot = make_harness(timeout=0.3, channel_ids={CHANNEL: slack.channel_id(CHANNEL)})
    else:
        bot = make_harness(timeout=0.3)
        bot.metrics(current_accuracy=0.5)  # another incident in the same channel teaches the notifier its ID
        assert bot.deliver() == 1
        bot.metrics(current_accuracy=0.99)  # it ends, so the next alert opens an incident (a root) of its own
        assert bot.deliver() == 1
    before, posts = len(slack.messages(CHANNEL)), len(slack.calls_to("chat.postMessage"))
    slack.delay_next("chat.postMessage", 1.5)
    bot.metrics(daily_cost_usd=450)
    assert bot.deliver() == 0  # timed out, but the emulator stored the message
    assert len(slack.messages(CHANNEL)) == before + 1
    bot.clock.advance(timedelta(seconds=5))
    assert bot.deliver() == 1
    assert len(slack.calls_to("conversations.history")) == 1
    assert len(slack.messages(CHANNEL)) == before + 1
    assert len(slack.calls_to("chat.postMessage")) == posts + 1
    assert bot.root() == (slack.channel_id(CHANNEL), slack.messages(CHANNEL)[-1]["ts"])


def test_crash_between_post_and_record_does_not_post_twice(
    bot: Harness, slack: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.record_slack_message
    failures = iter([RuntimeError("database went away")])

    def flaky(*args: Any, **kwargs: Any) -> bool:
        error = next(failures, None)
        if error is not None:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "record_slack_message", flaky)
    bot.metrics(daily_cost_usd=450)
    assert bot.deliver() == 0
    bot.clock.advance(timedelta(seconds=5))
    assert bot.deliver() == 1
    assert len(slack.messages(CHANNEL)) == 1
    assert bot.root()[1] == slack.messages(CHANNEL)[0]["ts"]


def test_a_lost_thread_reply_is_not_posted_twice(make_harness: Callable[..., Harness], slack: SlackEmulator) -> None:
    bot = make_harness(timeout=0.3)
    bot.metrics(daily_cost_usd=450)
    bot.deliver()
    bot.service.acknowledge(bot.alert_id(), actor="U1")
    slack.delay_next("chat.postMessage", 1.5)
    assert bot.deliver() == 0
    bot.clock.advance(timedelta(seconds=5))
    assert bot.deliver() == 1
    assert len(slack.calls_to("conversations.replies")) == 1
    assert len(slack.thread(CHANNEL, bot.root()[1])) == 2  # root + one reply


def test_a_refused_post_fails_for_good_and_a_later_ack_posts_the_root(bot: Harness, slack: SlackEmulator) -> None:
    slack.error_next("chat.postMessage", "msg_too_long")
    bot.metrics(daily_cost_usd=450)
    assert bot.deliver() == 0
    [row] = bot.rows()
    assert row.status == FAILED and "msg_too_long" in (row.last_error or "")
    bot.clock.advance(timedelta(minutes=10))
    assert bot.deliver() == 0
    assert len(slack.calls_to("chat.postMessage")) == 1
    bot.service.acknowledge(bot.alert_id(), actor="U1")
    assert bot.deliver() == 1
    message = bot.root_message()
    assert "Acknowledged by <@U1>" in mrkdwn(message) and action_ids(message) == [
        "incident_resolve",
        "incident_runbook",
        "incident_silence",
        "incident_declare",
    ]
    assert slack.calls_to("chat.update") == []
    assert len(slack.thread(CHANNEL, message["ts"])) == 2


def test_posts_to_one_channel_are_a_second_apart(bot: Harness, slack: SlackEmulator, fake_time: FakeTime) -> None:
    bot.metrics(daily_cost_usd=450)
    assert bot.deliver() == 1
    bot.service.acknowledge(bot.alert_id(), actor="U1")
    assert bot.deliver() == 1
    first, second = slack.calls_to("chat.postMessage")
    assert not first.params.get("thread_ts") and second.params.get("thread_ts") == bot.root()[1]
    assert second.at - first.at >= 1.0
    assert fake_time.sleeps == [1.0]


def test_pacer_spaces_one_channel_and_leaves_others_alone(fake_time: FakeTime) -> None:
    pacer = ChannelPacer(monotonic=fake_time.monotonic, sleep=fake_time.sleep)
    assert [pacer.wait("#a"), pacer.wait("#b"), pacer.wait("#a"), pacer.wait("#a")] == [0, 0, 1.0, 1.0]
    pacer.alias("#a", "C0A0000000")
    assert pacer.wait("C0A0000000") == 1.0


def test_bad_token_pauses_delivery_without_logging_it(
    make_harness: Callable[..., Harness], slack: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = make_harness(token="xoxb-secret-wrong")
    bot.metrics(daily_cost_usd=450)
    assert bot.deliver() == 0
    [row] = bot.rows()
    assert row.status == "pending" and "invalid_auth" in (row.last_error or "")
    assert "xoxb-secret-wrong" not in caplog.text and "xoxb-secret-wrong" not in (row.last_error or "")


def test_unreachable_slack_is_retried(make_harness: Callable[..., Harness]) -> None:
    bot = make_harness(base_url="http://127.0.0.1:9/api/", timeout=1.0)
    bot.metrics(daily_cost_usd=450)
    assert bot.deliver() == 0
    [row] = bot.rows()
    assert row.status == "pending" and row.attempts == 1 and "no answer" in (row.last_error or "")


@dataclass
class _Response:
    status_code: int
    data: dict[str, Any]
    headers: dict[str, Any] = field(default_factory=dict)


def _error(status: int, error: str, headers: dict[str, Any] | None = None) -> DeliveryError:
    response = _Response(status, {"ok": False, "error": error}, headers or {})
    return api_error("chat.postMessage", SlackApiError("x", response))  # type: ignore[no-untyped-call]


def test_error_classification() -> None:
    limited = _error(429, "ratelimited", {"retry-after": "7"})
    assert limited.retryable and limited.retry_after == 7.0
    assert _error(503, "service_unavailable").retryable
    assert _error(200, "ratelimited").retryable
    assert _error(200, "internal_error").retryable
    for error in ("channel_not_found", "not_in_channel", "invalid_blocks", "msg_too_long"):
        refused = _error(200, error)
        assert not refused.retryable and not refused.pauses and error in str(refused) and refused.code == error
    for error in ("invalid_auth", "token_revoked", "account_inactive"):
        token = _error(200, error)
        assert token.retryable and token.pauses and token.code == error
    assert "invite the bot" in str(_error(200, "not_in_channel"))


def test_an_alert_posted_before_incidents_keeps_its_own_message(bot: Harness, slack: SlackEmulator) -> None:
    """An alert that joined no incident (posted by an older version) is updated in the per-alert
    layout, whose buttons still work, and its change is said in its thread."""
    bot.metrics(daily_cost_usd=450)
    bot.deliver()
    with open_session(bot.engine) as s, s.begin():
        row = s.get(AlertRow, bot.alert_id())
        assert row is not None
        row.incident_id = None
        s.add(row)
    bot.service.acknowledge(bot.alert_id(), actor="U1")
    assert bot.deliver() == 1
    message = bot.root_message()
    assert action_ids(message) == ["alert_resolve", "alert_runbook", "alert_silence"]
    assert slack.thread(CHANNEL, message["ts"])[1]["text"] == "✅ Acknowledged by <@U1> at 09:00 UTC"


def test_a_silence_note_goes_out_through_the_outbox_once_in_the_incidents_thread(
    make_harness: Callable[..., Harness], slack: SlackEmulator
) -> None:
    """The "Silence 1h" note is queued with the silence and posted like every other reply: retried,
    and not posted twice when the first answer was lost."""
    bot = make_harness(timeout=0.3)
    bot.metrics(daily_cost_usd=450)
    bot.deliver()
    channel, ts = bot.root()
    wanted = Silence(
        rule=None,
        model="support-bot",
        starts_at=bot.clock.now(),
        ends_at=bot.clock.now() + timedelta(hours=1),
        created_by="U1",
    )
    note = ThreadNote(channel, ts, "🔕 Silenced for 1 h by <@U1>", incident_id=bot.incident_id())
    bot.service.silence(wanted, note=note)
    slack.delay_next("chat.postMessage", 1.5)
    assert bot.deliver() == 0  # the answer is lost
    bot.clock.advance(timedelta(seconds=5))
    assert bot.deliver() == 1
    _root, reply = slack.thread(CHANNEL, ts)
    assert reply["text"] == "🔕 Silenced for 1 h by <@U1>"
