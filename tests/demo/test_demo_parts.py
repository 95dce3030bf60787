"""The demo's parts without a browser: its compressed configuration, the scripted feed, the
sandbox's page routes (signed clicks, commands and App Home opens to a stand-in bot that checks
signatures) and the PagerDuty lane the page shows."""

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
from bot.demo.pagerduty_events import PagerDutyEmulator
from bot.demo.sandbox_ui import DEMO_USER, SlackSandbox
from bot.notify.pagerduty import ACKNOWLEDGE, RESOLVE, TRIGGER, build_event

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
                kind = self.headers.get("Content-Type", "")
                form = dict(parse_qsl(body.decode())) if kind.startswith("application/x-www-form") else {}
                owner.requests.append({"valid": valid, "form": form, "body": body, "type": kind})
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


def test_an_alert_menu_choice_is_an_overflow_block_actions_payload(sandbox: SlackSandbox, stand_in: StandInBot) -> None:
    options = [
        {"text": {"type": "plain_text", "text": t}, "value": v}
        for t, v in (("Ack", "acknowledge:7"), ("Res", "resolve:7"))
    ]
    menu = {"type": "overflow", "action_id": "alert_menu", "options": options}
    posted = WebClient(token=TOKEN, base_url=sandbox.base_url).chat_postMessage(
        channel="#ml-alerts",
        text="incident",
        blocks=[{"type": "section", "block_id": "alert_7", "text": {"type": "mrkdwn", "text": "x"}, "accessory": menu}],
    )
    channel, ts = str(posted["channel"]), str(posted["ts"])
    click = {"channel": channel, "ts": ts, "action_id": "alert_menu", "value": "resolve:7"}
    assert httpx.post(sandbox.url + "/sandbox/click", json=click).json() == {"ok": True}
    (received,) = stand_in.requests
    (action,) = json.loads(received["form"]["payload"])["actions"]
    assert (action["type"], action["action_id"], action["block_id"]) == ("overflow", "alert_menu", "alert_7")
    assert action["selected_option"]["value"] == "resolve:7" and "value" not in action
    unknown = {**click, "value": "delete:7"}
    assert httpx.post(sandbox.url + "/sandbox/click", json=unknown).status_code == 404


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


def test_opening_the_home_tab_sends_a_signed_app_home_opened_and_shows_the_published_view(
    sandbox: SlackSandbox, stand_in: StandInBot
) -> None:
    assert httpx.post(sandbox.url + "/sandbox/home", json={}).json() == {"ok": True}
    (received,) = stand_in.requests
    assert received["valid"] and received["type"] == "application/json"
    envelope = json.loads(received["body"])
    assert (envelope["type"], envelope["team_id"]) == ("event_callback", sandbox.team_id)
    assert envelope["event_id"].startswith("Ev")
    event = envelope["event"]
    assert (event["type"], event["user"], event["tab"]) == ("app_home_opened", DEMO_USER, "home")
    assert "view" not in event  # nothing published yet
    assert sandbox.state()["home"] is None
    # the bot publishes the tab; the page's data shows it, and the next open carries it as Slack does
    view = {"type": "home", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "Active alerts (0)"}}]}
    WebClient(token=TOKEN, base_url=sandbox.base_url).views_publish(user_id=DEMO_USER, view=view)
    shown = httpx.get(sandbox.url + "/sandbox/state").json()["home"]
    assert shown["type"] == "home" and shown["blocks"] == view["blocks"]
    httpx.post(sandbox.url + "/sandbox/home", json={})
    assert json.loads(stand_in.requests[-1]["body"])["event"]["view"]["id"] == shown["id"]
    stand_in.answer = (500, b"")
    assert httpx.post(sandbox.url + "/sandbox/home", json={}).status_code == 502


# ------------------------------------------------------------------------------------ PagerDuty lane


def test_the_pagerduty_lane_shows_trigger_acknowledge_and_resolve_as_they_arrive(stand_in: StandInBot) -> None:
    """The bot's own event bodies, over HTTP to the lane; the page's data endpoint lists each one."""
    alert = {"key": "latency_spike:support-bot", "rule": "latency_spike", "model": "support-bot", "severity": "P1",
             "title": "P99 latency >5s for support-bot", "fired_at": "2026-01-05T09:03:00+00:00"}  # fmt: skip
    key = "demo" * 8
    with (
        PagerDutyEmulator() as lane,
        SlackSandbox(TOKEN, signing_secret=SECRET, events_url=stand_in.url, pagerduty=lane) as sandbox,
    ):
        assert httpx.get(sandbox.url + "/sandbox/state").json()["pagerduty"] == []
        for action in (TRIGGER, ACKNOWLEDGE, RESOLVE):
            assert httpx.post(lane.url, json=build_event(action, alert, key)).status_code == 202
        assert httpx.post(lane.url, json={"routing_key": key, "event_action": "trigger"}).status_code == 400
        rows = httpx.get(sandbox.url + "/sandbox/state").json()["pagerduty"]
    dedup = "latency_spike:support-bot:20260105T090300Z"
    assert [(r["action"], r["dedup_key"], r["status"]) for r in rows] == [
        ("trigger", dedup, 202), ("acknowledge", dedup, 202), ("resolve", dedup, 202), ("trigger", "", 400),
    ]  # fmt: skip
    # acknowledge and resolve carry no payload: they show what their trigger said
    assert {(r["summary"], r["severity"]) for r in rows[:3]} == {("[P1] P99 latency >5s for support-bot", "error")}
    assert rows[0]["at"] <= rows[1]["at"] <= rows[2]["at"]
    assert (lane.all_incidents[0].status, lane.all_incidents[0].events) == ("resolved", [TRIGGER, ACKNOWLEDGE, RESOLVE])
