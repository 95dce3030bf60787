"""Incident rooms from Slack: ``/incident``, the **Declare incident** button and shortcut, the
room card's **Take commander** and **Post update**, through real signed requests against the
running app with the Slack Web API emulator on the other side (harness: ``tests/slack/harness.py``).
What Slack then shows (the room, the card) is the notifier's, tested in ``tests/notify/test_slack_rooms.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.demo.click_payloads import message_shortcut
from bot.incident_response import IncidentResponse
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident
from bot.slack import messages
from bot.slack.incident_commands import IncidentRequest, parse_incident_args
from bot.slack.payloads import mentioned_user, parse_shortcut
from bot.slack.replies import Reply
from bot.storage.database import session as open_session
from tests.slack.harness import ANA, BEN, EVE, SlackEnv, shipped_config, slack_env

ROOM_ID = "C0INCROOM1"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SlackEnv]:
    with slack_env(tmp_path) as running:
        yield running


def current(env: SlackEnv) -> Incident:
    return env.incident()


def with_room(env: SlackEnv) -> None:
    """The incident declared and its room made (the notifier's part, done here by hand)."""
    IncidentResponse(env.service).declare(env.incident_id, actor=ANA)
    with open_session(env.engine) as s, s.begin():
        incident_store.record_room(s, env.incident_id, room_id=ROOM_ID, name="inc-room")


def in_room(env: SlackEnv, text: str, *, user: str = ANA, channel: str = ROOM_ID) -> str:
    """Run ``/incident <text>`` in the room; the answer that came back through the response_url."""
    before = len(env.slack.calls_to("response_url"))
    form = {
        "team_id": env.slack.team_id,
        "channel_id": channel,
        "channel_name": "inc-room",
        "user_id": user,
        "command": "/incident",
        "text": text,
        "response_url": env.slack.response_url(),
        "trigger_id": "1337.42.commandtrigger",
    }
    answer = env.post(urlencode(form).encode(), "application/x-www-form-urlencoded")
    assert answer.status_code == 200, answer.text
    if answer.content and answer.json().get("text"):
        return str(answer.json()["text"])
    call = env.slack.wait_for("response_url", count=before + 1)
    return str(call.params.get("text"))


def shortcut(env: SlackEnv, *, ts: str, text: str, user: str = ANA) -> None:
    payload = message_shortcut(
        "declare_incident",
        user=user,
        team=env.slack.team_id,
        channel=env.channel,
        message={"ts": ts, "text": text},
        response_url=env.slack.response_url(),
        trigger_id="1337.7.shortcut",
    )
    answer = env.post(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")
    assert answer.status_code == 200, answer.text


# --------------------------------------------------------------------------- pure


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("declare", IncidentRequest("declare")),
        ("declare support-bot", IncidentRequest("declare", model="support-bot")),
        ("declare support-bot answers are wrong", IncidentRequest("declare", "support-bot", "answers are wrong")),
        ("declare checkout is down", IncidentRequest("declare", text="checkout is down")),
        ("update rolled back v42", IncidentRequest("update", text="rolled back v42")),
        ("commander <@U0BEN0002|ben>", IncidentRequest("commander", text="U0BEN0002")),
        ("timeline", IncidentRequest("timeline")),
        ("RESOLVE", IncidentRequest("resolve")),
    ],
)
def test_the_incident_grammar(text: str, expected: IncidentRequest) -> None:
    assert parse_incident_args(shipped_config(), text) == expected


@pytest.mark.parametrize("text", ["", "update", "commander ben", "resolve now", "delete"])
def test_anything_else_is_a_usage_reply(text: str) -> None:
    assert isinstance(parse_incident_args(shipped_config(), text), Reply)


def test_a_mention_is_read_from_slacks_escaped_form() -> None:
    assert mentioned_user("<@U0ANA0001|ana>") == "U0ANA0001" == mentioned_user("<@U0ANA0001>")
    assert mentioned_user("@ana") is None and mentioned_user("<!channel>") is None


def test_a_shortcut_payload_is_read() -> None:
    body = {"callback_id": "declare_incident", "user": {"id": ANA}, "channel": {"id": "C1"}, "message": {"ts": "1.2"}}
    read = parse_shortcut(body)
    assert (read.user, read.channel, read.message_ts, read.text) == (ANA, "C1", "1.2", "")


# --------------------------------------------------------------------------- declaring


def test_the_declare_button_declares_and_a_second_click_is_told_where_the_room_is(env: SlackEnv) -> None:
    value = str(env.incident_id)
    assert env.click("incident_declare", value=value).status_code == 200
    env.wait_until(lambda: len(env.ephemerals(ANA)) == 1)
    assert current(env).declared_by == ANA
    assert "declared: its room `#inc-2026-01-05-support-bot-llm_cost_runaway`" in env.ephemerals(ANA)[0]
    env.click("incident_declare", user=BEN, value=value)
    env.wait_until(lambda: len(env.ephemerals(BEN)) == 1)
    assert f"Already declared by <@{ANA}> at 09:00 UTC" in env.ephemerals(BEN)[0]


def test_incident_declare_with_a_model_declares_its_open_incident(env: SlackEnv) -> None:
    answer = in_room(env, "declare support-bot")
    assert "declared" in answer and current(env).declared_by == ANA


def test_incident_declare_with_a_title_opens_a_hand_made_incident(env: SlackEnv) -> None:
    answer = in_room(env, "declare checkout <b>is</b> down")
    assert "declared" in answer
    with open_session(env.engine) as s:
        made = incident_store.get(s, env.incident_id + 1)
    assert made is not None and made.title == "checkout <b>is</b> down" and made.declared_by == ANA
    assert made.channel == ROOM_ID, "told where the command was run"


def test_the_shortcut_on_a_root_declares_its_incident_and_elsewhere_a_new_one(env: SlackEnv) -> None:
    with open_session(env.engine) as s, s.begin():
        incident_store.record_slack_message(s, env.incident_id, channel=env.channel, ts="1767603600.000100")
    shortcut(env, ts="1767603600.000100", text="alert")
    env.wait_until(lambda: current(env).declared_by == ANA)
    shortcut(env, ts="1767603600.000200", text="Latency looks odd\nsee graph", user=BEN)
    env.wait_until(lambda: len(env.ephemerals(BEN)) == 1)
    with open_session(env.engine) as s:
        made = incident_store.get(s, env.incident_id + 1)
    assert made is not None and made.title == "Latency looks odd" and made.declared_by == BEN


# --------------------------------------------------------------------------- in the room


def test_update_commander_timeline_and_resolve_in_the_room(env: SlackEnv) -> None:
    with_room(env)
    assert in_room(env, "update rolled back prompt v42") == messages.UPDATE_POSTED
    assert in_room(env, f"commander <@{BEN}|ben>") == messages.commander_taken(BEN)
    assert current(env).commander == BEN
    timeline = in_room(env, "timeline")
    assert "declared" in timeline and "update · <@U0ANA0001>: rolled back prompt v42" in timeline
    assert f"commander · <@{ANA}>: commander is now <@{BEN}>" in timeline
    assert timeline.index("· fired ·") < timeline.index("· opened ·"), "the alert that fired opened it"
    assert in_room(env, "resolve") == messages.RESOLVED_FROM_ROOM
    assert current(env).state.value == "resolved"
    assert "resolved" in in_room(env, "resolve").lower()


def test_incident_resolve_of_a_severity_needing_a_note_opens_the_note_form_instead(env: SlackEnv) -> None:
    with_room(env)
    config = env.config.config
    env.config.config = replace(
        config, settings=config.settings.model_copy(update={"resolution_note_required": [current(env).severity]})
    )

    assert in_room(env, "resolve") == messages.NOTE_FORM_OPENED
    call = env.slack.wait_for("views.open")
    assert call.params["trigger_id"] == "1337.42.commandtrigger"
    assert current(env).state.value == "firing", "the form's submission resolves, not the command"


def test_room_commands_outside_a_room_say_where_to_run_them(env: SlackEnv) -> None:
    with_room(env)
    assert in_room(env, "update hi", channel=env.channel) == messages.NOT_IN_A_ROOM
    assert in_room(env, "timeline", channel=env.channel) == messages.NOT_IN_A_ROOM


def test_the_access_policy_holds_for_room_commands(env: SlackEnv) -> None:
    with_room(env)
    with open_session(env.engine) as s, s.begin():
        incident_store.record_slack_message(s, env.incident_id, channel=env.channel, ts="1767603600.000100")
    env.config.allow("channel_members")
    env.slack.set_members(env.channel, [BEN])
    assert "not allowed to resolve" in in_room(env, "resolve", user=EVE)
    assert current(env).state.value != "resolved"


def test_take_commander_and_post_update_buttons(env: SlackEnv) -> None:
    with_room(env)
    value = str(env.incident_id)
    env.click("room_take_command", user=BEN, value=value)
    env.wait_until(lambda: current(env).commander == BEN)
    env.click("room_post_update", user=BEN, value=value)
    opened = env.slack.wait_for("views.open")
    view: dict[str, Any] = opened.params["view"]
    assert view["callback_id"] == "room_update_modal" and view["private_metadata"] == value
    submission = {
        "type": "view_submission",
        "team": {"id": env.slack.team_id},
        "user": {"id": BEN},
        "view": {
            **view,
            "id": "V1",
            "state": {"values": {"update": {"text": {"type": "plain_text_input", "value": "failover done"}}}},
        },
    }
    answer = env.post(urlencode({"payload": json.dumps(submission)}).encode(), "application/x-www-form-urlencoded")
    assert answer.status_code == 200 and not answer.content.strip(b"{}")
    with open_session(env.engine) as s:
        env.wait_until(lambda: any(e.detail == "failover done" for e in incident_store.history(s, env.incident_id)))
