"""settings.ack_reminder: "Still on it?" for an acknowledged incident gone quiet, and the release
of one nobody answers for, with the climb resuming where it stopped (issue: quieter threads)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from bot.config.loader import Config
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident, IncidentEventKind, IncidentState
from bot.storage.database import session as open_session
from tests.emulators.slack_api import SlackEmulator
from tests.notify.slack_harness import CHANNEL, Harness

REMINDER = timedelta(minutes=30)


@pytest.fixture
def bot(make_harness: Callable[..., Harness], config: Config) -> Harness:
    return make_harness(base=replace(config, settings=config.settings.model_copy(update={"ack_reminder": REMINDER})))


def incident(bot: Harness) -> Incident:
    with open_session(bot.engine) as s:
        found = incident_store.get(s, bot.incident_id())
    assert found is not None
    return found


def acknowledged_at_0905(bot: Harness) -> int:
    bot.metrics(daily_cost_usd=450)  # 09:00, P1 on the shipped 15/30/60 min policy
    bot.clock.advance(timedelta(minutes=5))
    bot.service.acknowledge_incident(bot.incident_id(), actor="U1")
    bot.deliver()
    return bot.incident_id()


def thread_texts(bot: Harness, slack: SlackEmulator) -> list[str]:
    [root] = slack.messages(CHANNEL)
    return [m["text"] for m in slack.thread(CHANNEL, root["ts"])[1:]]


def test_a_quiet_acknowledged_incident_is_asked_still_on_it_with_two_buttons(
    bot: Harness, slack: SlackEmulator
) -> None:
    incident_id = acknowledged_at_0905(bot)
    bot.clock.advance(REMINDER - timedelta(seconds=1))
    assert bot.service.remind_acknowledged() == 0, "not quiet long enough yet"
    bot.clock.advance(timedelta(seconds=1))
    assert bot.service.remind_acknowledged() == 1
    assert bot.service.remind_acknowledged() == 0, "asked once"
    bot.deliver()

    [ask] = [c for c in slack.calls_to("chat.postMessage") if "Still on it" in c.params["text"]]
    assert ask.params["text"].startswith("⏰ Still on it, <@U1>? Nothing has happened on this incident for 30 min.")
    buttons = [e for b in ask.params["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("incident_still_on_it", str(incident_id)),
        ("incident_release", str(incident_id)),
    ]
    assert incident(bot).state is IncidentState.ACKNOWLEDGED


def test_still_on_it_starts_the_quiet_time_again(bot: Harness, slack: SlackEmulator) -> None:
    incident_id = acknowledged_at_0905(bot)
    bot.clock.advance(REMINDER)
    bot.service.remind_acknowledged()
    bot.clock.advance(timedelta(minutes=1))
    bot.service.apply("incident", incident_id, "still_on_it", actor="U1")
    bot.clock.advance(REMINDER - timedelta(seconds=1))
    assert bot.service.remind_acknowledged() == 0, "the answer was activity: no release, no second question yet"
    bot.deliver()

    assert "👍 <@U1> is still on it" in thread_texts(bot, slack)
    assert incident(bot).state is IncidentState.ACKNOWLEDGED


def test_no_answer_releases_it_and_the_climb_resumes_where_it_stopped(bot: Harness, slack: SlackEmulator) -> None:
    acknowledged_at_0905(bot)  # 10 of the first step's 15 minutes were left
    bot.clock.advance(REMINDER)
    bot.service.remind_acknowledged()  # 09:35
    bot.clock.advance(REMINDER)
    assert bot.service.remind_acknowledged() == 1  # 10:05: released
    bot.deliver()

    released = incident(bot)
    assert released.state is IncidentState.FIRING and released.acknowledged_by is None
    assert released.next_escalation_at == bot.clock.now() + timedelta(minutes=10)
    assert thread_texts(bot, slack)[-1] == (
        "🔓 Released (no answer to Still on it? in 30 min): unacknowledged again, its escalation resumes"
        " (next step at 10:15 UTC)"
    )
    bot.clock.advance(timedelta(minutes=10) - timedelta(seconds=1))
    assert bot.service.escalate_due() == 0
    bot.clock.advance(timedelta(seconds=1))
    assert bot.service.escalate_due() == 1, "the first step, 10 minutes after the release"
    with open_session(bot.engine) as s:
        kinds = [e.kind for e in incident_store.history(s, released.id or 0)]
    assert kinds[-3:] == [IncidentEventKind.REMINDED, IncidentEventKind.RELEASED, IncidentEventKind.ESCALATED]


def test_the_release_button_lets_it_go_at_once_and_someone_can_take_it_again(bot: Harness) -> None:
    incident_id = acknowledged_at_0905(bot)
    bot.service.apply("incident", incident_id, "release", actor="U1")
    assert incident(bot).state is IncidentState.FIRING
    bot.service.apply("incident", incident_id, "acknowledge", actor="U2")
    assert incident(bot).acknowledged_by == "U2"


def test_without_the_setting_nobody_is_reminded(make_harness: Callable[..., Harness]) -> None:
    bot = make_harness()
    acknowledged_at_0905(bot)
    bot.clock.advance(timedelta(days=1))
    assert bot.service.remind_acknowledged() == 0
