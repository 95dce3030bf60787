"""The demo's parts without a browser: its compressed configuration, the scripted feed, and the
sandbox's page routes (signed clicks and commands to a stand-in bot that checks signatures)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.config.loader import load_config
from bot.demo.config import write_demo_config
from bot.demo.feed import FRAUD_DETECTOR, HEALTHY, RECOVERY_AT, SCRIPT, SUPPORT_BOT, notes_between, values_at
from bot.demo.sandbox_ui import DEMO_USER, SlackSandbox

REPO = Path(__file__).resolve().parents[2]
SECRET = "demo-signing-secret"
TOKEN = "xoxb-demo"


# ------------------------------------------------------------------------------------- configuration


def test_demo_config_is_the_shipped_one_on_a_compressed_clock(tmp_path: Path) -> None:
    shipped = load_config(REPO)
    demo = load_config(write_demo_config(REPO, tmp_path / "config"))
    steps = demo.escalation["default"]
    assert [s.after for s in steps] == [timedelta(seconds=20), timedelta(seconds=40), timedelta(seconds=60)]
    assert [s.severity for s in steps] == [s.severity for s in shipped.escalation["default"]]
    assert demo.settings.evaluation_interval == timedelta(seconds=1)
    assert demo.settings.group_wait == timedelta(seconds=2)
    rule = demo.rule("latency_spike")
    assert rule is not None and rule.for_ == timedelta(seconds=5)
    assert [r.name for r in demo.rules] == [r.name for r in shipped.rules]
    assert set(demo.models) == set(shipped.models) and set(demo.runbooks) == set(shipped.runbooks)
    assert demo.access.allow == "anyone"


def test_speed_compresses_the_demo_config_further(tmp_path: Path) -> None:
    demo = load_config(write_demo_config(REPO, tmp_path / "config", speed=4))
    assert [s.after for s in demo.escalation["default"]] == [timedelta(seconds=n) for n in (5, 10, 15)]


# ---------------------------------------------------------------------------------------------- feed


def test_the_feed_script_fires_and_recovers() -> None:
    assert values_at(0).keys() == {SUPPORT_BOT, FRAUD_DETECTOR}
    calm, spike, runaway = values_at(1)[SUPPORT_BOT][0], values_at(6)[SUPPORT_BOT][0], values_at(25)[SUPPORT_BOT][0]
    assert calm["p99_latency_ms"] < 5000 < spike["p99_latency_ms"]
    assert calm["daily_cost_usd"] < 400 < runaway["daily_cost_usd"]  # 80 % of the $500 budget
    metrics, labels = values_at(40)[FRAUD_DETECTOR]
    assert metrics["drifted_feature_count"] >= metrics["total_features"] * 0.25
    assert metrics["current_accuracy"] < 0.95 * 0.95 and "merchant_category" in labels["top_drifted_features"]
    after = values_at(RECOVERY_AT + 1)
    assert after[SUPPORT_BOT][0]["p99_latency_ms"] < 5000 and after[SUPPORT_BOT][0]["daily_cost_usd"] < 400
    assert after[FRAUD_DETECTOR][0]["drifted_feature_count"] == HEALTHY[FRAUD_DETECTOR]["drifted_feature_count"]
    assert notes_between(-1, 1)[0].startswith("Both models are healthy")
    assert len([n for s in SCRIPT for n in [s.note] if n]) == len(notes_between(-1, 1e9))


# ------------------------------------------------------------------------------ sandbox page routes


class StandInBot:
    """A /slack/events that checks Slack's signature and records what it received."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: tuple[int, bytes] = (200, b"")
        verifier = SignatureVerifier(SECRET)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                valid = verifier.is_valid_request(body, dict(self.headers.items()))
                owner.requests.append({"valid": valid, "form": dict(parse_qsl(body.decode()))})
                status, data = owner.answer if valid else (401, b"")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def stand_in() -> Iterator[StandInBot]:
    bot = StandInBot()
    yield bot
    bot.server.shutdown()
    bot.server.server_close()


@pytest.fixture
def sandbox(stand_in: StandInBot) -> Iterator[SlackSandbox]:
    with SlackSandbox(TOKEN, signing_secret=SECRET, events_url=stand_in.url) as running:
        yield running


def _alert(sandbox: SlackSandbox) -> tuple[str, str]:
    button = {"type": "button", "action_id": "alert_acknowledge", "value": "7", "style": "primary",
              "text": {"type": "plain_text", "text": "Acknowledge"}}  # fmt: skip
    posted = WebClient(token=TOKEN, base_url=sandbox.base_url).chat_postMessage(
        channel="#ml-alerts",
        text="alert",
        blocks=[{"type": "actions", "block_id": "alert_actions", "elements": [button]}],
        metadata={"event_type": "incident_bot_alert", "event_payload": {"alert_id": 7}},
    )
    return str(posted["channel"]), str(posted["ts"])


def test_the_page_is_served_and_json_routes_refuse_cross_site_forms(sandbox: SlackSandbox) -> None:
    page = httpx.get(sandbox.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>incident-bot · Slack sandbox</title>" in page.text
    forged = httpx.post(sandbox.url + "/sandbox/click", content=b"channel=C1", headers={"Content-Type": "text/plain"})
    assert forged.status_code == 415
    state = httpx.get(sandbox.url + "/sandbox/state").json()
    assert [c["name"] for c in state["channels"]] == ["ml-alerts", "llm-alerts"]


def test_a_click_is_a_signed_block_actions_payload(sandbox: SlackSandbox, stand_in: StandInBot) -> None:
    channel, ts = _alert(sandbox)
    click = {"channel": channel, "ts": ts, "action_id": "alert_acknowledge", "value": "7", "block_id": "alert_actions"}
    assert httpx.post(sandbox.url + "/sandbox/click", json=click).json() == {"ok": True}
    (received,) = stand_in.requests
    assert received["valid"]
    payload = json.loads(received["form"]["payload"])
    assert payload["type"] == "block_actions" and payload["user"]["id"] == DEMO_USER
    assert payload["container"] == {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False}
    assert payload["channel"] == {"id": channel, "name": "ml-alerts"}
    (action,) = payload["actions"]
    assert (action["action_id"], action["value"], action["block_id"]) == ("alert_acknowledge", "7", "alert_actions")
    assert payload["trigger_id"] and payload["response_url"].startswith(sandbox.url + "/response/")
    assert "metadata" not in payload["message"]
    # the trigger opens a modal for the demo user; the page closes it
    WebClient(token=TOKEN, base_url=sandbox.base_url).views_open(
        trigger_id=payload["trigger_id"],
        view={"type": "modal", "title": {"type": "plain_text", "text": "Runbook"}, "blocks": []},
    )
    assert sandbox.state()["modal"]["title"]["text"] == "Runbook"
    httpx.post(sandbox.url + "/sandbox/close", json={})
    assert sandbox.state()["modal"] is None


def test_unknown_buttons_and_a_failing_bot_are_reported(sandbox: SlackSandbox, stand_in: StandInBot) -> None:
    channel, ts = _alert(sandbox)
    missing = httpx.post(sandbox.url + "/sandbox/click", json={"channel": channel, "ts": ts, "action_id": "nope"})
    assert missing.status_code == 404 and not stand_in.requests
    stand_in.answer = (500, b"")
    failed = httpx.post(
        sandbox.url + "/sandbox/click", json={"channel": channel, "ts": ts, "action_id": "alert_acknowledge"}
    )
    assert failed.status_code == 502
    httpx.post(sandbox.url + "/sandbox/command", json={"channel": channel, "text": "/alerts"})
    (ephemeral,) = sandbox.state()["channels"][0]["ephemeral"]
    assert "dispatch_failed" in ephemeral["text"]


def test_slash_commands_answer_the_demo_user_alone(sandbox: SlackSandbox, stand_in: StandInBot) -> None:
    stand_in.answer = (200, json.dumps({"response_type": "ephemeral", "text": "runbook for *support-bot*"}).encode())
    channel = sandbox.channel_id("#llm-alerts")
    assert httpx.post(
        sandbox.url + "/sandbox/command", json={"channel": channel, "text": "/runbook support-bot"}
    ).json()["ok"]
    form = stand_in.requests[-1]["form"]
    assert stand_in.requests[-1]["valid"]
    assert (form["command"], form["text"], form["user_id"], form["channel_id"]) == (
        "/runbook", "support-bot", DEMO_USER, channel,
    )  # fmt: skip
    # a later answer through the response_url, and an ephemeral for someone else (not shown)
    httpx.post(form["response_url"], json={"response_type": "ephemeral", "text": "second answer"})
    client = WebClient(token=TOKEN, base_url=sandbox.base_url)
    client.chat_postEphemeral(channel=channel, user="U0SOMEONE", text="not for the demo user")
    client.chat_postEphemeral(channel=channel, user=DEMO_USER, text="for the demo user")
    shown = next(c for c in sandbox.state()["channels"] if c["id"] == channel)
    assert [e["text"] for e in shown["ephemeral"]] == [
        "runbook for *support-bot*",
        "second answer",
        "for the demo user",
    ]
    assert shown["messages"] == []
    bad = httpx.post(sandbox.url + "/sandbox/command", json={"channel": channel, "text": "alerts"})
    assert bad.status_code == 400
