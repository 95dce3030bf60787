"""Incident rooms end to end below the Slack app: IncidentResponse declares (the room's outbox rows
in the same transaction), the real outbox delivers them through the SlackNotifier to the Slack
emulator over HTTP (see slack_harness.py), and what Slack ends up holding is checked: one
channel with the right name, topic, purpose and members, the card posted and pinned, the root
linking the room; and the failures on the way (``name_taken``, a crash after the channel was
made, ``already_in_channel``) never make a second room."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.config.loader import Config
from bot.errors import ActionRefused, DeliveryError
from bot.incident_response import IncidentResponse
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident
from bot.notify.outbox import FAILED, SENT
from bot.notify.slack_rooms import CARD_EVENT, marker
from bot.storage.database import session as open_session
from tests.emulators.slack_api import SlackEmulator
from tests.notify.slack_harness import CHANNEL, Harness, action_ids, mrkdwn

ANA, BEN, CAT, DAN = "U0ANA0001", "U0BEN0002", "U0CAT0003", "U0DAN0004"
ROOM = "inc-2026-01-05-support-bot-llm_cost_runaway"


@pytest.fixture
def db(engine: Engine) -> Engine:
    """SQLite and PostgreSQL: declaring races on the incident's version, as two replicas would."""
    return engine


@pytest.fixture
def oncall_config(config: Config) -> Config:
    model = config.models["support-bot"].model_copy(update={"oncall": "@llm-oncall"})
    return replace(config, models={**config.models, "support-bot": model})


@pytest.fixture
def bot(make_harness: Callable[..., Harness], oncall_config: Config, slack: SlackEmulator) -> Harness:
    slack.set_usergroup("S0LLMONCALL", [CAT, DAN], handle="llm-oncall")
    return make_harness(base=oncall_config)


@pytest.fixture
def rooms(bot: Harness) -> IncidentResponse:
    return IncidentResponse(bot.service)


def fire(bot: Harness) -> int:
    bot.metrics(daily_cost_usd=450)
    bot.deliver()
    return bot.incident_id()


def incident(bot: Harness, incident_id: int) -> Incident:
    with open_session(bot.engine) as s:
        found = incident_store.get(s, incident_id)
    assert found is not None
    return found


def card_of(slack: SlackEmulator, room_id: str) -> dict[str, Any]:
    [card] = [m for m in slack.messages(room_id) if (m.get("metadata") or {}).get("event_type") == CARD_EVENT]
    return card


def test_declare_makes_the_room_invites_sets_the_topic_and_pins_the_card(
    bot: Harness, rooms: IncidentResponse, slack: SlackEmulator
) -> None:
    incident_id = fire(bot)
    bot.service.acknowledge_incident(incident_id, actor=BEN)
    bot.deliver()
    declared = rooms.declare(incident_id, actor=ANA)
    assert declared.room == ROOM and declared.declared_by == ANA
    bot.deliver()
    assert all(row.status == SENT for row in bot.rows()), [(r.kind, r.last_error) for r in bot.rows()]
    [made] = slack.created_channels()
    assert made["name"] == ROOM and made["is_private"] is False
    room_id = made["id"]
    assert incident(bot, incident_id).room_id == room_id
    info = slack.channel_info(room_id)
    assert info["purpose"]["value"] == marker(incident_id)
    assert info["topic"]["value"].startswith("P1 · ") and f"#{incident_id}" in info["topic"]["value"]
    assert sorted(slack.members_of(room_id)) == sorted([slack.bot_user_id, ANA, BEN, CAT, DAN])
    card = card_of(slack, room_id)
    assert slack.pinned(room_id) == [card["ts"]]
    assert action_ids(card) == ["room_take_command", "room_post_update", "incident_resolve", "incident_runbook"]
    text = mrkdwn(card)
    assert "daily_cost_usd" in text and "Error budget left" in text and "grafana.internal/d/support-bot" in text
    root = bot.root_message()
    assert f"room <#{room_id}>" in mrkdwn(root) and f"Declared by <@{ANA}>" in mrkdwn(root)
    assert "incident_declare" not in action_ids(root), "a declared incident has no Declare button"


def test_an_undeclared_root_offers_declare(bot: Harness) -> None:
    fire(bot)
    assert action_ids(bot.root_message())[-1] == "incident_declare"


def test_declaring_twice_makes_one_room_and_tells_the_second_where_it_is(
    bot: Harness, rooms: IncidentResponse, slack: SlackEmulator
) -> None:
    incident_id = fire(bot)
    rooms.declare(incident_id, actor=ANA)
    with pytest.raises(ActionRefused, match=f"Already declared by <@{ANA}> at 09:00 UTC: the room is #{ROOM}"):
        rooms.declare(incident_id, actor=BEN)
    bot.deliver()
    with pytest.raises(ActionRefused, match="the room is <#C"):
        rooms.declare(incident_id, actor=BEN)
    assert len(slack.calls_to("conversations.create")) == 1


def test_a_name_someone_else_took_makes_the_room_take_2(
    bot: Harness, rooms: IncidentResponse, slack: SlackEmulator
) -> None:
    slack.channel_id(ROOM)  # a person's channel of that name already exists
    incident_id = fire(bot)
    rooms.declare(incident_id, actor=ANA)
    bot.deliver()
    found = incident(bot, incident_id)
    assert found.room == f"{ROOM}-2" and found.room_id == slack.channel_id(f"{ROOM}-2")
    assert [m["name"] for m in slack.created_channels()] == [f"{ROOM}-2"]


def test_a_crash_after_the_channel_was_made_adopts_it_on_the_retry(
    bot: Harness, rooms: IncidentResponse, slack: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies between conversations.create and recording the room (here: setPurpose
    fails, so not even the marker is there): the retry finds the channel it made, no second one."""
    incident_id = fire(bot)
    rooms.declare(incident_id, actor=ANA)
    slack.fail_next("conversations.setPurpose", status=500)
    bot.deliver()
    assert incident(bot, incident_id).room_id is None
    bot.clock.advance(timedelta(minutes=5))
    bot.deliver()
    assert [m["name"] for m in slack.created_channels()] == [ROOM]
    assert incident(bot, incident_id).room_id == slack.channel_id(ROOM)
    assert slack.channel_info(ROOM)["purpose"]["value"] == marker(incident_id)
    assert all(row.status == SENT for row in bot.rows())


def test_a_crash_after_the_marker_adopts_the_room_by_its_purpose(
    bot: Harness, rooms: IncidentResponse, slack: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident_id = fire(bot)
    rooms.declare(incident_id, actor=ANA)
    real = incident_store.record_room
    calls = {"n": 0}

    def dies_once(*args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise DeliveryError("the process died", retryable=True)
        return real(*args, **kwargs)

    monkeypatch.setattr(incident_store, "record_room", dies_once)
    bot.deliver()
    bot.clock.advance(timedelta(minutes=5))
    bot.deliver()
    assert [m["name"] for m in slack.created_channels()] == [ROOM]
    assert incident(bot, incident_id).room_id == slack.channel_id(ROOM)


def test_already_in_channel_is_success(bot: Harness, rooms: IncidentResponse, slack: SlackEmulator) -> None:
    incident_id = fire(bot)
    rooms.declare(incident_id, actor=ANA)
    slack.error_next("conversations.invite", "already_in_channel")
    bot.deliver()
    assert all(row.status == SENT for row in bot.rows())
    assert slack.calls_to("conversations.invite")[0].params["users"].split(",") == [ANA, CAT, DAN]


def test_a_card_posted_before_a_crash_is_found_not_posted_again(
    bot: Harness, rooms: IncidentResponse, slack: SlackEmulator
) -> None:
    incident_id = fire(bot)
    rooms.declare(incident_id, actor=ANA)
    slack.fail_next("pins.add", status=503)
    bot.deliver()
    bot.clock.advance(timedelta(minutes=5))
    bot.deliver()
    room_id = incident(bot, incident_id).room_id or ""
    card = card_of(slack, room_id)
    assert slack.pinned(room_id) == [card["ts"]]


def test_commander_update_and_resolve_reach_the_room_the_thread_the_card_and_the_root(
    bot: Harness, rooms: IncidentResponse, slack: SlackEmulator
) -> None:
    incident_id = fire(bot)
    rooms.declare(incident_id, actor=ANA)
    bot.deliver()
    room_id = incident(bot, incident_id).room_id or ""
    rooms.take_command(incident_id, actor=BEN)
    rooms.post_update(incident_id, actor=BEN, text="rolled back <!channel> prompt v42")
    bot.deliver()
    card = card_of(slack, room_id)
    assert f"commander <@{BEN}>" in mrkdwn(card) and f"commander <@{BEN}>" in mrkdwn(bot.root_message())
    said = [m["text"] for m in slack.messages(room_id)]
    assert f"🎖️ <@{BEN}> is the incident commander" in said
    update = f"📣 *Update* from <@{BEN}>: rolled back &lt;!channel&gt; prompt v42"
    assert update in said
    thread = [m["text"] for m in slack.thread(CHANNEL, bot.root_message()["ts"])]
    assert update in thread
    rooms.resolve(incident_id, actor=BEN)
    bot.deliver()
    assert any(t.startswith(f"🟢 Resolved by <@{BEN}>") for t in [m["text"] for m in slack.messages(room_id)])
    assert action_ids(card_of(slack, room_id)) == ["incident_runbook"]
    assert not [r for r in bot.rows() if r.status == FAILED]


def test_a_hand_made_incident_has_a_root_with_no_alerts_and_a_room(
    bot: Harness, rooms: IncidentResponse, slack: SlackEmulator
) -> None:
    declared = rooms.declare(None, actor=ANA, model="fraud-detector-v2", title="Chargebacks <up>")
    assert declared.room == "inc-2026-01-05-fraud-detector-v2" and declared.severity.value == "P2"
    bot.deliver()
    assert all(row.status == SENT for row in bot.rows()), [(r.kind, r.last_error) for r in bot.rows()]
    with open_session(bot.engine) as s:
        root = incident_store.slack_message(s, declared.id or 0)
    assert root is not None
    [message] = [m for m in slack.messages(root[0]) if m["ts"] == root[1]]
    assert message["blocks"][0]["text"]["text"] == "🟡 P2 · Chargebacks <up>", "a header is plain text"
    assert message["text"] == "🟡 P2 · Chargebacks &lt;up&gt;", "the notification text is mrkdwn: escaped"
    room_id = incident(bot, declared.id or 0).room_id or ""
    assert "declared by hand" in mrkdwn(card_of(slack, room_id))
    with pytest.raises(ActionRefused, match="Already declared"):
        rooms.declare(None, actor=BEN, model="fraud-detector-v2")


def test_a_later_alert_of_a_declared_incident_is_said_in_its_room(
    bot: Harness, rooms: IncidentResponse, slack: SlackEmulator
) -> None:
    incident_id = fire(bot)
    rooms.declare(incident_id, actor=ANA)
    bot.deliver()
    room_id = incident(bot, incident_id).room_id or ""
    bot.clock.advance(timedelta(minutes=1))
    bot.metrics(daily_cost_usd=450, current_accuracy=0.5)
    bot.deliver()
    said = [m["text"] for m in slack.messages(room_id)]
    assert any(t.startswith("➕ Also firing") and "accuracy" in t.lower() for t in said), said
    assert "accuracy" in mrkdwn(card_of(slack, room_id)).lower(), "the card lists the new alert"
    bot.clock.advance(timedelta(minutes=5))
    bot.deliver()
    assert [m["text"] for m in slack.messages(room_id)] == said, "each change is said once"


def test_two_replicas_declaring_at_once_make_one_declaration_and_one_set_of_room_rows(
    bot: Harness, slack: SlackEmulator
) -> None:
    incident_id = fire(bot)
    replicas = [IncidentResponse(bot.service), IncidentResponse(bot.service)]
    start = threading.Barrier(2)

    def declare(replica: IncidentResponse, actor: str) -> str:
        start.wait()
        try:
            return f"declared by {replica.declare(incident_id, actor=actor).declared_by}"
        except ActionRefused as refused:
            return str(refused)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(declare, replicas, [ANA, BEN]))
    winner = incident(bot, incident_id).declared_by
    assert sorted(a.startswith("declared by") for a in answers) == [False, True], answers
    assert any(a.startswith(f"Already declared by <@{winner}>") for a in answers), answers
    assert [r.kind for r in bot.rows() if r.kind.startswith("room.")] == [
        "room.create",
        "room.invite",
        "room.topic",
        "room.card",
    ]
    bot.deliver()
    assert len(slack.created_channels()) == 1
