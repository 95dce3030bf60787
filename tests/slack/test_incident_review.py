"""Resolution notes and timeline marks through the running Slack app: real, signed requests
(uvicorn on 127.0.0.1) against the Slack Web API emulator and a SQLite file holding one firing
P1 incident (``llm_cost_runaway`` on support-bot)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk import WebClient

from bot.incidents import response
from bot.incidents import store as incident_store
from bot.incidents.incident import IncidentEventKind, IncidentState
from bot.severity import Severity
from bot.storage.database import session as open_session
from tests.emulators.slack_api import SlackEmulator
from tests.slack.harness import ANA, BEN, EVE, TOKEN, SlackEnv, slack_env

ROOM = "#inc-2026-01-05-support-bot-llm-cost-runaway"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SlackEnv]:
    with slack_env(tmp_path) as running:
        yield running


def require_notes(env: SlackEnv, *severities: Severity) -> None:
    config = env.config.config
    settings = config.settings.model_copy(update={"resolution_note_required": list(severities)})
    env.config.config = replace(config, settings=settings)


def submit(env: SlackEnv, view: dict[str, Any], *, user: str = ANA, cause: str = "", fix: str = "") -> Any:
    """The modal's submission as Slack posts it: form field ``payload`` holding the JSON."""
    values = {
        "cause": {"cause_input": {"type": "plain_text_input", "value": cause or None}},
        "fix": {"fix_input": {"type": "plain_text_input", "value": fix or None}},
    }
    payload = {
        "type": "view_submission",
        "team": {"id": SlackEmulator.team_id, "domain": "emulated"},
        "user": {"id": user, "username": user.lower(), "team_id": SlackEmulator.team_id},
        "api_app_id": "A0INCIDENT",
        "token": "legacy-verification-token",
        "trigger_id": "1337.9.submit",
        "view": {**view, "state": {"values": values}},
    }
    return env.post(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")


def opened_view(env: SlackEnv, count: int = 1) -> dict[str, Any]:
    call = env.slack.wait_for("views.open", count=count)
    view = call.params["view"]
    return json.loads(view) if isinstance(view, str) else dict(view)


# --------------------------------------------------------------------------- resolution notes


def test_resolve_of_a_severity_needing_a_note_opens_the_modal_and_its_submission_resolves_with_the_note(
    env: SlackEnv,
) -> None:
    require_notes(env, Severity.P0, Severity.P1)
    env.click("incident_resolve", value=str(env.incident_id))
    view = opened_view(env)
    assert view["callback_id"] == "resolution_note"
    assert env.incident().state is IncidentState.FIRING  # nothing resolved by the click itself

    empty = submit(env, view)
    assert empty.status_code == 200 and empty.json()["response_action"] == "errors"
    assert submit(env, view, cause="prompt v42 looped", fix="rolled back to v41").status_code == 200
    env.wait_until(lambda: env.incident().state is IncidentState.RESOLVED)

    incident = env.incident()
    assert incident.resolved_by == ANA
    assert incident.resolution_note is not None
    assert (incident.resolution_note["cause"], incident.resolution_note["fix"]) == (
        "prompt v42 looped",
        "rolled back to v41",
    )
    env.wait_until(lambda: any("Resolution note saved" in t for t in env.ephemerals(ANA)))


def test_a_second_submission_is_refused_and_keeps_the_first_note(env: SlackEnv) -> None:
    require_notes(env, Severity.P1)
    env.click("incident_resolve", value=str(env.incident_id))
    view = opened_view(env)
    submit(env, view, cause="first", fix="first")
    env.wait_until(lambda: env.incident().state is IncidentState.RESOLVED)

    submit(env, view, user=BEN, cause="second", fix="second")
    refusal = f":no_entry_sign: <@{ANA}> already wrote this incident's resolution note."
    env.wait_until(lambda: refusal in env.ephemerals(BEN))

    note = env.incident().resolution_note
    assert note is not None and note["cause"] == "first" and note["by"] == ANA
    with open_session(env.engine) as s:
        notes = [e for e in incident_store.history(s, env.incident_id) if e.kind is IncidentEventKind.RESOLUTION_NOTE]
    assert len(notes) == 1


def test_without_a_required_note_resolve_resolves_at_once_and_add_resolution_note_saves_one_later(
    env: SlackEnv,
) -> None:
    env.click("incident_resolve", value=str(env.incident_id))
    env.wait_until(lambda: env.incident().state is IncidentState.RESOLVED)
    assert env.slack.calls_to("views.open") == []

    env.click("incident_add_note", value=str(env.incident_id))
    view = opened_view(env)
    assert view["submit"]["text"] == "Save note"
    submit(env, view, fix="raised the budget alert to 90%")
    env.wait_until(lambda: env.incident().resolution_note is not None)
    assert env.incident().resolution_note == {
        "cause": "",
        "fix": "raised the budget alert to 90%",
        "by": ANA,
        "at": env.clock.now().isoformat(),
    }


def test_resolve_of_a_declared_incident_offers_the_note_and_an_empty_one_still_resolves(env: SlackEnv) -> None:
    declare_room(env)
    env.click("incident_resolve", value=str(env.incident_id))
    view = opened_view(env)
    assert [block.get("optional") for block in view["blocks"][1:]] == [True, True], "offered, not required"
    assert env.incident().state is IncidentState.FIRING

    assert submit(env, view).status_code == 200
    env.wait_until(lambda: env.incident().state is IncidentState.RESOLVED)
    assert env.incident().resolution_note is None


def test_who_may_resolve_is_who_may_write_the_note(env: SlackEnv) -> None:
    env.click("incident_resolve", value=str(env.incident_id))
    env.wait_until(lambda: env.incident().state is IncidentState.RESOLVED)
    env.click("incident_add_note", value=str(env.incident_id))
    view = opened_view(env)
    env.config.allow("channel_members")
    with open_session(env.engine) as s, s.begin():
        incident_store.record_slack_message(s, env.incident_id, channel=env.channel, ts="1767603600.000100")
    env.slack.set_members(env.channel, [ANA])

    submit(env, view, user=EVE, cause="not mine to say")
    env.wait_until(lambda: any("not allowed to write the resolution note" in t for t in env.ephemerals(EVE)))
    assert env.incident().resolution_note is None
    submit(env, view, user=ANA, cause="prompt v42")
    env.wait_until(lambda: env.incident().resolution_note is not None)


# --------------------------------------------------------------------------- timeline marks


def declare_room(env: SlackEnv) -> str:
    room_id = env.slack.channel_id(ROOM)
    with open_session(env.engine) as s, s.begin():
        incident = incident_store.get(s, env.incident_id)
        assert incident is not None
        incident_store.save(s, response.declare(incident, actor=ANA, room=ROOM.lstrip("#"), now=env.clock.now()))
        incident_store.record_room(s, env.incident_id, room_id=room_id, name=ROOM.lstrip("#"))
    return room_id


def say(env: SlackEnv, channel: str, text: str, thread_ts: str | None = None) -> str:
    answer = WebClient(token=TOKEN, base_url=env.slack.base_url).chat_postMessage(
        channel=channel, text=text, thread_ts=thread_ts
    )
    return str(answer["ts"])


def react(env: SlackEnv, channel: str, ts: str, *, reaction: str = "stopwatch", user: str = BEN) -> Any:
    body = {
        "token": "legacy-verification-token",
        "team_id": SlackEmulator.team_id,
        "api_app_id": "A0INCIDENT",
        "type": "event_callback",
        "event_id": f"Ev{time.monotonic_ns()}",
        "event_time": int(time.time()),
        "event": {
            "type": "reaction_added",
            "user": user,
            "reaction": reaction,
            "item_user": ANA,
            "item": {"type": "message", "channel": channel, "ts": ts},
            "event_ts": f"{time.time():.6f}",
        },
    }
    return env.post(json.dumps(body).encode(), "application/json")


def shortcut(env: SlackEnv, channel: str, ts: str, text: str, *, user: str = BEN) -> Any:
    payload = {
        "type": "message_action",
        "callback_id": "add_to_timeline",
        "trigger_id": "1337.7.shortcut",
        "team": {"id": SlackEmulator.team_id, "domain": "emulated"},
        "user": {"id": user, "username": user.lower(), "team_id": SlackEmulator.team_id},
        "channel": {"id": channel, "name": channel.lower()},
        "message": {"type": "message", "user": ANA, "ts": ts, "text": text},
        "message_ts": ts,
        "response_url": env.slack.response_url(channel=channel),
        "token": "legacy-verification-token",
        "api_app_id": "A0INCIDENT",
    }
    return env.post(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")


def notes(env: SlackEnv) -> list[tuple[str, str, dict[str, object]]]:
    with open_session(env.engine) as s:
        history = incident_store.history(s, env.incident_id)
    return [(e.actor, e.detail, dict(e.data)) for e in history if e.kind is IncidentEventKind.NOTED]


def test_a_stopwatch_on_a_room_message_records_it_once_with_its_text_and_author(env: SlackEnv) -> None:
    room = declare_room(env)
    ts = say(env, room, "rolled the prompt back to v41")

    assert react(env, room, ts).status_code == 200
    env.wait_until(lambda: len(notes(env)) == 1)
    assert notes(env) == [(BEN, "rolled the prompt back to v41", {"ts": ts, "author": ANA, "channel": room})]

    react(env, room, ts, user=ANA)  # a second ⏱ on the same message
    shortcut(env, room, ts, "rolled the prompt back to v41")  # and the shortcut on it
    env.wait_until(lambda: any("already on the timeline" in t for t in env.ephemerals(BEN)))
    assert len(notes(env)) == 1


def test_a_stopwatch_on_a_thread_reply_reads_it_from_the_thread(env: SlackEnv) -> None:
    room = declare_room(env)
    parent = say(env, room, "what changed?")
    reply = say(env, room, "prompt v42 shipped at 08:56", thread_ts=parent)

    react(env, room, reply)
    env.wait_until(lambda: len(notes(env)) == 1)
    assert notes(env)[0][1] == "prompt v42 shipped at 08:56"


def test_the_shortcut_records_the_message_and_tells_the_person(env: SlackEnv) -> None:
    room = declare_room(env)
    ts = say(env, room, "error rate back under 1%")

    assert shortcut(env, room, ts, "error rate back under 1%").status_code == 200
    env.wait_until(lambda: any("Added to the timeline" in t for t in env.ephemerals(BEN)))
    assert [n[1] for n in notes(env)] == ["error rate back under 1%"]


def test_outside_a_room_the_shortcut_says_so_privately_and_the_reaction_is_ignored(env: SlackEnv) -> None:
    ts = say(env, env.channel, "a message in the alerts channel")

    react(env, env.channel, ts)
    shortcut(env, env.channel, ts, "a message in the alerts channel")
    env.wait_until(lambda: any("works in an incident's room only" in t for t in env.ephemerals(BEN)))
    react(env, env.channel, ts, reaction="thumbsup")
    assert notes(env) == []
    assert env.slack.calls_to("conversations.history") == []  # the reaction was not even read
