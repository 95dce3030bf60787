"""The whole product end to end, over real sockets: the bot built by ``build_bot`` and served by
uvicorn (ingest API, Slack routes, scheduler, outbox, Slack notifier) against the Slack Web API
emulator. Metrics pushed over HTTP fire an alert, the alert is posted to Slack with buttons, a
signed button click acknowledges it, and a recovered metric auto-resolves it -- with exactly one
root message for the alert through the whole flow."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn

from bot.app import build_bot
from bot.settings import Settings
from tests.emulators.slack_api import Call, SlackEmulator
from tests.slack.harness import SECRET, TOKEN, sign
from tests.support.served import serving

REPO = Path(__file__).resolve().parents[2]
INGEST_TOKEN = "e2e-ingest-t0ken"
CHANNEL = "#llm-alerts"
USER = "U123"
WAIT = 20.0


@dataclass
class Running:
    base: str
    http: httpx.Client
    slack: SlackEmulator
    channel: str

    def push(self, daily_cost_usd: float) -> None:
        answer = self.http.post(
            f"{self.base}/api/v1/metrics",
            headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            json={"model": "support-bot", "metrics": {"daily_cost_usd": daily_cost_usd}},
        )
        assert answer.status_code == 202, answer.text

    def root_posts(self) -> list[Call]:
        """Root (non-thread) ``chat.postMessage`` calls to the alert channel."""
        return [c for c in self.slack.calls if self.is_root_post(c)]

    def is_root_post(self, call: Call) -> bool:
        return (
            call.method == "chat.postMessage"
            and self.slack.channel_id(str(call.params.get("channel"))) == self.channel
            and not call.params.get("thread_ts")
        )


def buttons(blocks: Any) -> dict[str, str]:
    """``action_id -> value`` of every action button anywhere in ``blocks`` (link buttons, such as
    the model's dashboard, open a URL and are left out)."""
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "button" and "action_id" in node and "url" not in node:
                found[node["action_id"]] = str(node.get("value"))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(blocks)
    return found


def rendered(params: dict[str, Any]) -> str:
    """Everything a person would read in a message: its text and its blocks."""
    return f"{params.get('text', '')}\n{json.dumps(params.get('blocks') or [], ensure_ascii=False)}"


def is_update(call: Call, ts: str, showing: str) -> bool:
    """A successful ``chat.update`` of message ``ts`` whose text or blocks contain ``showing`` (any case)."""
    return (
        call.method == "chat.update"
        and call.ok
        and call.params.get("ts") == ts
        and showing.lower() in rendered(call.params).lower()
    )


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    with SlackEmulator(token=TOKEN) as slack:
        settings = Settings(
            slack_bot_token=TOKEN,  # type: ignore[arg-type]
            slack_signing_secret=SECRET,  # type: ignore[arg-type]
            slack_api_url=slack.base_url,
            ingest_token=INGEST_TOKEN,  # type: ignore[arg-type]
            evaluation_interval="1s",
            database_url=f"sqlite:///{tmp_path}/bot.db",
            bot_config_dir=REPO,
        )
        bot = build_bot(settings, config_dir=REPO)
        config = uvicorn.Config(bot.app, log_level="warning", lifespan="on", access_log=False)
        try:
            with serving(config, name="uvicorn-e2e") as port, httpx.Client(timeout=10) as http:
                base = f"http://127.0.0.1:{port}"
                assert http.get(f"{base}/healthz").json() == {"status": "ok", "scheduler": True}
                yield Running(base=base, http=http, slack=slack, channel=slack.channel_id(CHANNEL))
        finally:
            bot.engine.dispose()


def click_body(run: Running, action_id: str, *, value: str, ts: str) -> bytes:
    """A button click on the posted message, form-encoded as Slack sends it."""
    payload = {
        "type": "block_actions",
        "user": {"id": USER, "username": "u123", "team_id": SlackEmulator.team_id},
        "api_app_id": "A0INCIDENT",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": ts, "channel_id": run.channel, "is_ephemeral": False},
        "trigger_id": "1337.1.e2eclick",
        "team": {"id": SlackEmulator.team_id, "domain": "emulated"},
        "channel": {"id": run.channel, "name": CHANNEL.lstrip("#")},
        "message": {"type": "message", "ts": ts, "text": "alert"},
        "response_url": run.slack.response_url(channel=run.channel, ts=ts),
        "actions": [
            {
                "action_id": action_id,
                "block_id": "alert_actions",
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_metric_fires_alert_to_slack_click_acknowledges_and_recovery_auto_resolves(running: Running) -> None:
    run, slack = running, running.slack

    # 1. A cost spike pushed over HTTP fires llm_cost_runaway on the next evaluation tick.
    run.push(455.2)
    posted = slack.wait_for(
        lambda c: run.is_root_post(c) and c.ok and len(buttons(c.params)) == 5,
        timeout=WAIT,
    )
    ts = str(posted.response["ts"])
    shown = buttons(posted.params.get("blocks"))
    assert set(shown) == {
        "incident_acknowledge",
        "incident_resolve",
        "incident_runbook",
        "incident_silence",
        "incident_declare",
    }, shown
    incident_id = shown["incident_acknowledge"]
    assert incident_id.isdigit() and set(shown.values()) == {incident_id}, "every button names the incident"

    # 2. A signed click on Acknowledge is answered at once, then the message and its thread change.
    body = click_body(run, "incident_acknowledge", value=incident_id, ts=ts)
    started = time.monotonic()
    answer = run.http.post(
        f"{run.base}/slack/events",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)},
    )
    took = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    assert took < 1.0, f"the click took {took:.2f}s to be acknowledged"

    acked = slack.wait_for(lambda c: is_update(c, ts, f"<@{USER}>"), timeout=WAIT)
    assert f"Acknowledged by <@{USER}>" in rendered(acked.params)
    assert "incident_acknowledge" not in buttons(acked.params.get("blocks"))
    message = next(m for m in slack.messages(CHANNEL) if m["ts"] == ts)
    assert f"Acknowledged by <@{USER}>" in rendered(message)

    reply = slack.wait_for(
        lambda c: c.method == "chat.postMessage" and c.ok and c.params.get("thread_ts") == ts, timeout=WAIT
    )
    assert f"<@{USER}>" in rendered(reply.params), rendered(reply.params)
    assert len(slack.thread(CHANNEL, ts)) >= 2

    # 3. The metric recovers: the next tick auto-resolves the alert and the message says so.
    run.push(10)
    resolved = slack.wait_for(lambda c: is_update(c, ts, "auto-resolved"), timeout=WAIT)
    left = buttons(resolved.params.get("blocks"))
    assert "incident_acknowledge" not in left and "incident_resolve" not in left, left

    # Many evaluation ticks have passed (firing, acknowledged, resolved): one root message only.
    assert len(run.root_posts()) == 1, [rendered(c.params)[:200] for c in run.root_posts()]
    assert [m["ts"] for m in slack.messages(CHANNEL)] == [ts]


def command_body(run: Running, text: str, *, channel: str) -> bytes:
    """``/incident <text>`` run in ``channel``, form-encoded as Slack sends it."""
    form = {
        "team_id": SlackEmulator.team_id,
        "channel_id": channel,
        "user_id": USER,
        "command": "/incident",
        "text": text,
        "response_url": run.slack.response_url(),
        "trigger_id": "1337.9.e2ecommand",
    }
    return urlencode(form).encode()


def signed_post(run: Running, body: bytes) -> None:
    answer = run.http.post(
        f"{run.base}/slack/events",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)},
    )
    assert answer.status_code == 200, answer.text


def test_declare_opens_one_room_with_its_pinned_card_and_the_room_runs_the_incident(running: Running) -> None:
    """The Declare button on the root (clicked twice): one channel, the clicker invited, the card
    posted and pinned, the root linking the room; then /incident update and resolve in the room."""
    run, slack = running, running.slack
    run.push(455.2)
    posted = slack.wait_for(lambda c: run.is_root_post(c) and c.ok, timeout=WAIT)
    ts, incident_id = str(posted.response["ts"]), buttons(posted.params.get("blocks"))["incident_declare"]

    signed_post(run, click_body(run, "incident_declare", value=incident_id, ts=ts))
    signed_post(run, click_body(run, "incident_declare", value=incident_id, ts=ts))
    created = slack.wait_for(lambda c: c.method == "conversations.create" and c.ok, timeout=WAIT)
    room = str(created.response["channel"]["id"])
    assert created.params["name"].startswith("inc-") and created.params["name"].endswith("support-bot-llm_cost_runaway")
    pinned = slack.wait_for(lambda c: c.method == "pins.add" and c.ok, timeout=WAIT)
    assert pinned.params["channel"] == room and slack.pinned(room) == [pinned.params["timestamp"]]
    assert USER in slack.members_of(room)
    slack.wait_for(lambda c: is_update(c, ts, f"room <#{room}>"), timeout=WAIT)
    told = slack.wait_for(
        lambda c: c.method == "chat.postEphemeral" and "Already declared" in str(c.params), timeout=WAIT
    )
    assert f"<#{room}>" in str(told.params.get("text")) or "#inc-" in str(told.params.get("text"))
    assert len(slack.calls_to("conversations.create")) == 1

    signed_post(run, command_body(run, "update rolling back prompt v42", channel=room))
    said = "rolling back prompt v42"
    slack.wait_for(
        lambda c: (
            c.method == "chat.postMessage" and c.params.get("channel") == room and said in str(c.params.get("text"))
        ),
        timeout=WAIT,
    )
    slack.wait_for(
        lambda c: (
            c.method == "chat.postMessage" and c.params.get("thread_ts") == ts and said in str(c.params.get("text"))
        ),
        timeout=WAIT,
    )
    signed_post(run, command_body(run, "resolve", channel=room))
    slack.wait_for(lambda c: is_update(c, ts, "resolved by"), timeout=WAIT)
