"""Real, signed Slack requests against the running app (uvicorn on 127.0.0.1), with the Slack
Web API emulator on the other side and a SQLite file holding one firing alert (SPEC §1, §6, §8)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.alerts import store
from bot.alerts.lifecycle import AlertState
from bot.incidents import store as incident_store
from bot.storage.database import session as open_session
from tests.slack.harness import ANA, BEN, EVE, SECRET, SlackEnv, sign, slack_env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SlackEnv]:
    with slack_env(tmp_path) as running:
        yield running


# --------------------------------------------------------------------------- buttons


def test_acknowledge_answers_fast_and_acknowledges_the_alert(env: SlackEnv) -> None:
    started = time.monotonic()
    answer = env.click("alert_acknowledge", user=ANA)
    took = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    assert took < 1.0, f"the click took {took:.3f}s to acknowledge"
    env.wait_until(lambda: env.alert().state is AlertState.ACKNOWLEDGED)
    assert env.alert().acknowledged_by == ANA
    assert env.ephemerals() == []


def test_a_click_on_a_link_button_is_acknowledged_and_changes_nothing(env: SlackEnv) -> None:
    answer = env.click("open_link_0", value="")
    assert answer.status_code == 200, answer.text  # unanswered, Slack shows a warning beside the button
    assert env.alert().state is AlertState.FIRING and env.ephemerals() == []


def test_second_acknowledge_by_someone_else_is_refused_with_who_and_when(env: SlackEnv) -> None:
    env.click("alert_acknowledge", user=ANA)
    env.wait_until(lambda: env.alert().state is AlertState.ACKNOWLEDGED)
    assert env.click("alert_acknowledge", user=BEN).status_code == 200
    call = env.slack.wait_for("chat.postEphemeral")
    assert call.params["user"] == BEN
    assert call.params["channel"] == env.channel
    assert f"Already acknowledged by <@{ANA}> at 09:00 UTC." in call.params["text"]
    assert env.alert().acknowledged_by == ANA


def test_a_click_is_one_log_line_whether_it_changes_the_alert_or_not(
    env: SlackEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    env.click("alert_acknowledge", user=ANA)
    env.wait_until(lambda: env.alert().state is AlertState.ACKNOWLEDGED)
    env.click("alert_acknowledge", user=BEN)
    env.slack.wait_for("chat.postEphemeral")
    alert = env.alert()
    lines = [(r.name, r.getMessage()) for r in caplog.records if r.name in ("bot.service", "bot.slack.clicks")]
    assert lines == [
        ("bot.service", f"alert {alert.id} acknowledged: {alert.key} ({alert.severity}) by {ANA}"),
        ("bot.service", f"incident {alert.incident_id} acknowledged: #llm-alerts|model=support-bot (P1)"),
        (
            "bot.slack.clicks",
            f"{BEN}'s alert_acknowledge click (value '{alert.id}') changed nothing: "
            f":no_entry_sign: Already acknowledged by <@{ANA}> at 09:00 UTC.",
        ),
    ]


def test_resolve_then_acknowledge_is_refused_and_never_reopens(env: SlackEnv) -> None:
    env.click("alert_resolve", user=ANA)
    env.wait_until(lambda: env.alert().state is AlertState.RESOLVED)
    env.click("alert_acknowledge", user=BEN)
    call = env.slack.wait_for("chat.postEphemeral")
    assert f"Already resolved by <@{ANA}>" in call.params["text"]
    alert = env.alert()
    assert alert.state is AlertState.RESOLVED
    assert alert.resolved_by == ANA and alert.acknowledged_by is None


def test_two_simultaneous_acknowledges_one_wins_the_other_is_told(env: SlackEnv) -> None:
    bodies = [env.click_body("alert_acknowledge", user=u) for u in (ANA, BEN)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda b: env.post(*b), bodies))
    assert [a.status_code for a in answers] == [200, 200]
    call = env.slack.wait_for("chat.postEphemeral")
    winner = env.alert().acknowledged_by
    loser = BEN if winner == ANA else ANA
    assert env.alert().state is AlertState.ACKNOWLEDGED and winner in (ANA, BEN)
    assert call.params["user"] == loser
    assert f"Already acknowledged by <@{winner}>" in call.params["text"]
    time.sleep(0.1)
    assert len(env.slack.calls_to("chat.postEphemeral")) == 1


def test_runbook_button_opens_a_modal_with_the_rendered_runbook(env: SlackEnv) -> None:
    answer = env.click("alert_runbook", user=ANA)
    assert answer.status_code == 200
    call = env.slack.wait_for("views.open")
    assert call.ok, call.response
    assert call.params["trigger_id"].startswith("1337.")
    view = call.params["view"]
    assert view["type"] == "modal"
    text = json.dumps(view)
    assert "support-bot" in text
    assert "LLM cost runaway" in text  # the rule's runbook (runbooks/llm-cost.md) …
    assert "https://grafana.internal/d/support-bot" in text  # … filled from the model's settings
    assert "{dashboard}" not in text
    assert env.alert().state is AlertState.FIRING


@pytest.mark.parametrize("value", ["not-a-number", "99999", "-1"])
def test_a_button_with_a_bad_alert_id_gets_an_ephemeral_error(env: SlackEnv, value: str) -> None:
    env.click("alert_acknowledge", user=ANA, value=value)
    call = env.slack.wait_for("chat.postEphemeral")
    assert call.params["user"] == ANA
    assert "cannot read" in call.params["text"] or "does not exist" in call.params["text"]
    assert env.alert().state is AlertState.FIRING


def test_the_roots_buttons_act_on_the_whole_incident_and_refuse_a_second_click(env: SlackEnv) -> None:
    incident = str(env.incident_id)
    env.click("incident_acknowledge", user=ANA, value=incident)
    env.wait_until(lambda: env.incident().state.value == "acknowledged")
    assert env.alert().state is AlertState.ACKNOWLEDGED and env.alert().acknowledged_by == ANA
    env.click("incident_acknowledge", user=BEN, value=incident)
    call = env.slack.wait_for("chat.postEphemeral")
    assert call.params["user"] == BEN
    assert call.params["text"] == f":no_entry_sign: Already acknowledged by <@{ANA}> at 09:00 UTC."
    env.click("incident_resolve", user=BEN, value=incident)
    env.wait_until(lambda: env.incident().state.value == "resolved")
    assert env.alert().state is AlertState.RESOLVED and env.alert().resolved_by == BEN
    env.click("incident_resolve", user=ANA, value=incident)
    call = env.slack.wait_for("chat.postEphemeral", count=2)
    assert f"Already resolved by <@{BEN}>" in call.params["text"]


def test_still_on_it_and_release_answer_the_reminder_from_its_buttons(env: SlackEnv) -> None:
    incident = str(env.incident_id)
    env.click("incident_still_on_it", user=ANA, value=incident)
    call = env.slack.wait_for("chat.postEphemeral")
    assert "not acknowledged; nothing to confirm" in call.params["text"]
    env.click("incident_acknowledge", user=ANA, value=incident)
    env.wait_until(lambda: env.incident().state.value == "acknowledged")
    env.click("incident_release", user=ANA, value=incident)
    env.wait_until(lambda: env.incident().state.value == "firing")
    assert env.incident().acknowledged_by is None


def test_an_incident_button_naming_no_incident_is_refused(env: SlackEnv) -> None:
    env.click("incident_acknowledge", user=ANA, value="999999")
    call = env.slack.wait_for("chat.postEphemeral")
    assert "Incident #999999 does not exist" in call.params["text"]
    env.click("incident_resolve", user=ANA, value="<!channel>")
    call = env.slack.wait_for("chat.postEphemeral", count=2)
    assert "<!channel>" not in call.params["text"] and "&lt;!channel&gt;" in call.params["text"]
    assert env.alert().state is AlertState.FIRING


def test_the_menu_on_an_alerts_section_acts_on_that_alert_alone(env: SlackEnv) -> None:
    env.choose("resolve", user=BEN)
    env.wait_until(lambda: env.alert().state is AlertState.RESOLVED)
    assert env.alert().resolved_by == BEN
    env.choose("acknowledge", user=ANA)
    call = env.slack.wait_for("chat.postEphemeral")
    assert f"Already resolved by <@{BEN}>" in call.params["text"]
    env.choose("delete", user=ANA)
    call = env.slack.wait_for("chat.postEphemeral", count=2)
    assert "menu choice refers to an alert I cannot read" in call.params["text"]


def test_channel_members_checks_the_incidents_own_channel_not_the_payloads(env: SlackEnv) -> None:
    """A click whose payload names a channel EVE is in cannot act on an incident posted elsewhere."""
    env.config.allow("channel_members")
    elsewhere = env.slack.channel_id("#ml-alerts")
    with open_session(env.engine) as s, s.begin():
        incident_store.record_slack_message(s, env.incident_id, channel=elsewhere, ts="1767603600.000100")
    env.slack.set_members(env.channel, [EVE])
    env.slack.set_members(elsewhere, [ANA])
    env.click("incident_acknowledge", user=EVE, value=str(env.incident_id))
    call = env.slack.wait_for("chat.postEphemeral")
    assert f"not allowed to acknowledge this incident: only members of <#{elsewhere}>" in call.params["text"]
    env.choose("resolve", user=EVE)
    call = env.slack.wait_for("chat.postEphemeral", count=2)
    assert f"only members of <#{elsewhere}>" in call.params["text"]
    assert env.alert().state is AlertState.FIRING
    env.click("incident_acknowledge", user=ANA, value=str(env.incident_id))
    env.wait_until(lambda: env.alert().state is AlertState.ACKNOWLEDGED)
def posted(env: SlackEnv) -> None:
    """Record the alert's Slack message in ``env.channel``, as its delivery would."""
    with open_session(env.engine) as s, s.begin():
        store.record_slack_message(s, env.alert_id, channel=env.channel, ts="1767603600.000100")


def test_channel_members_policy_refuses_a_non_member(env: SlackEnv) -> None:
    env.config.allow("channel_members")
    env.slack.set_members(env.channel, [ANA])
    posted(env)
    env.click("alert_acknowledge", user=EVE)
    call = env.slack.wait_for("chat.postEphemeral")
    assert call.params["user"] == EVE
    assert "not allowed to acknowledge" in call.params["text"]
    assert f"only members of <#{env.channel}>" in call.params["text"]
    assert env.alert().state is AlertState.FIRING
    env.click("alert_acknowledge", user=ANA)
    env.wait_until(lambda: env.alert().state is AlertState.ACKNOWLEDGED)
    assert env.alert().acknowledged_by == ANA
    assert len(env.slack.calls_to("conversations.members")) == 1, "the membership lookup is cached"


def test_channel_members_policy_checks_the_alerts_channel_not_the_one_the_click_names(env: SlackEnv) -> None:
    """Eve is no member of the alert's channel; clicking a copy of its message in her own channel
    (the click then names that channel) acknowledged the alert."""
    env.config.allow("channel_members")
    env.slack.set_members(env.channel, [ANA])
    own = env.slack.channel_id("#eve-private")
    env.slack.set_members(own, [EVE])
    posted(env)
    env.click("alert_acknowledge", user=EVE, overrides={"channel": {"id": own, "name": "eve-private"}})
    call = env.slack.wait_for("chat.postEphemeral")
    assert call.params["user"] == EVE and f"only members of <#{env.channel}>" in call.params["text"]
    assert env.alert().state is AlertState.FIRING
    assert [c.params["channel"] for c in env.slack.calls_to("conversations.members")] == [env.channel]


def test_channel_members_policy_refuses_an_alert_with_no_slack_message_yet(env: SlackEnv) -> None:
    """Without a posted message the alert has no channel whose members could be asked: fail closed."""
    env.config.allow("channel_members")
    env.slack.set_members(env.channel, [ANA])
    env.click("alert_acknowledge", user=ANA)
    call = env.slack.wait_for("chat.postEphemeral")
    assert "cannot tell which channel" in call.params["text"]
    assert env.alert().state is AlertState.FIRING


def test_usergroup_policy_refuses_outsiders_and_fails_closed_on_an_unknown_group(env: SlackEnv) -> None:
    env.config.allow("usergroup", "S0ONCALL")
    env.slack.set_usergroup("S0ONCALL", [BEN])
    env.click("alert_resolve", user=ANA)
    call = env.slack.wait_for("chat.postEphemeral")
    assert "not allowed to resolve" in call.params["text"]
    assert "<!subteam^S0ONCALL>" in call.params["text"]
    env.config.allow("usergroup", "S0MISSING")
    env.click("alert_resolve", user=BEN)
    call = env.slack.wait_for("chat.postEphemeral", count=2)
    assert "no_such_subteam" in call.params["text"]
    assert env.alert().state is AlertState.FIRING
    env.config.allow("usergroup", "S0ONCALL")
    env.click("alert_resolve", user=BEN)
    env.wait_until(lambda: env.alert().state is AlertState.RESOLVED)


def test_a_click_from_the_app_home_is_checked_against_the_alerts_channel(env: SlackEnv) -> None:
    env.config.allow("channel_members")
    home: dict[str, Any] = {"channel": None, "container": {"type": "view", "view_id": "V1"}}
    env.click("alert_acknowledge", user=ANA, overrides=home)
    call = env.slack.wait_for("chat.postMessage")  # no channel to be ephemeral in: a DM
    assert call.params["channel"] == ANA and "cannot tell which channel" in call.params["text"]
    posted(env)
    env.slack.set_members(env.channel, [ANA])
    env.click("alert_acknowledge", user=ANA, overrides=home)
    env.wait_until(lambda: env.alert().state is AlertState.ACKNOWLEDGED)


# --------------------------------------------------------------------------- commands


def test_runbook_command_replies_with_the_models_runbook_in_the_ack(env: SlackEnv) -> None:
    answer = env.command("/runbook", "support-bot")
    assert answer.status_code == 200
    reply = answer.json()
    assert reply["response_type"] == "ephemeral"
    text = json.dumps(reply["blocks"])
    assert "ML Incident Runbook: support-bot" in text
    assert "https://llm.internal/support-bot" in text
    assert all(len(b["text"]["text"]) <= 3000 for b in reply["blocks"] if b["type"] == "section")


def test_runbook_command_without_a_model_shows_usage(env: SlackEnv) -> None:
    reply = env.command("/runbook").json()
    assert reply["text"].startswith("Usage: `/runbook <model>`")
    assert reply["response_type"] == "ephemeral"


def test_runbook_command_with_a_typo_suggests_close_matches(env: SlackEnv) -> None:
    reply = env.command("/runbook", "suport-bot").json()
    assert "Unknown model `suport-bot`" in reply["text"]
    assert "Did you mean: `support-bot`?" in reply["text"]
    assert "`fraud-detector-v2`" in reply["text"]


def test_markup_in_a_command_argument_is_escaped(env: SlackEnv) -> None:
    reply = env.command("/runbook", "<!channel>").json()
    assert "<!channel>" not in json.dumps(reply)
    assert "&lt;!channel&gt;" in reply["text"]
    slo = env.command("/slo", "status <!here|x>").json()
    assert "<!here" not in json.dumps(slo)


def test_alerts_command_lists_active_alerts_through_the_response_url(env: SlackEnv) -> None:
    answer = env.command("/alerts")
    assert answer.status_code == 200
    call = env.slack.wait_for("response_url")
    assert call.params["response_type"] == "ephemeral"
    assert "1 active alert" in call.params["text"]
    assert "LLM cost approaching budget" in json.dumps(call.params["blocks"])


def test_slo_status_lists_models_worst_first(env: SlackEnv) -> None:
    env.service.ingest(
        [
            ("support-bot", "response_time_p95_ms", env.clock.now(), 5200.0),
            ("support-bot", "current_accuracy", env.clock.now(), 0.93),
        ]
    )
    assert env.command("/slo", "status").status_code == 200
    call = env.slack.wait_for("response_url")
    assert call.params["response_type"] == "ephemeral"
    lines = call.params["text"].splitlines()[1:]  # one line per model, worst first (tests/slack/test_slo_commands.py)
    assert lines[0].startswith("🔴 support-bot") and "worst: response_time_p95_ms 5.2s" in lines[0]
    assert "1/2 ok, 4 no data" in lines[0]  # current_accuracy ok; helpfulness and the three counted SLOs never pushed
    assert lines[-1].startswith("⚪ fraud-detector-v2")


def test_slo_status_of_an_unknown_model_and_bad_usage(env: SlackEnv) -> None:
    assert "Did you mean: `support-bot`?" in env.command("/slo", "status suport-bot").json()["text"]
    assert env.command("/slo", "budget").json()["text"].startswith("Usage: `/slo status")
    assert env.slack.calls_to("response_url") == []


# --------------------------------------------------------------------------- events


def test_app_home_opened_publishes_the_home_view(env: SlackEnv) -> None:
    assert env.home_opened(user=ANA).status_code == 200
    call = env.slack.wait_for("views.publish")
    assert call.ok, call.response
    assert call.params["user_id"] == ANA
    view = env.slack.home_view(ANA)
    assert view is not None and view["type"] == "home"
    assert "LLM cost approaching budget" in json.dumps(view)


def test_a_slack_retry_is_acknowledged_and_not_processed_again(env: SlackEnv) -> None:
    retry = env.home_opened(user=ANA, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert retry.status_code == 200
    assert env.home_opened(user=BEN).status_code == 200
    env.slack.wait_for("views.publish")
    time.sleep(0.1)
    assert [c.params["user_id"] for c in env.slack.calls_to("views.publish")] == [BEN]


def test_url_verification_echoes_the_challenge(env: SlackEnv) -> None:
    body = json.dumps(
        {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    )
    answer = env.post(body.encode(), "application/json")
    assert answer.status_code == 200
    assert "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in answer.text


def test_a_click_carrying_a_retry_header_is_not_acted_on(env: SlackEnv) -> None:
    body, content_type = env.click_body("alert_acknowledge", user=ANA)
    assert env.post(body, content_type, headers={"X-Slack-Retry-Num": "2"}).status_code == 200
    time.sleep(0.1)
    assert env.alert().state is AlertState.FIRING


# --------------------------------------------------------------------------- request security


def test_a_bad_signature_is_refused_and_changes_nothing(env: SlackEnv) -> None:
    body, content_type = env.click_body("alert_acknowledge", user=ANA)
    headers = {"Content-Type": content_type, **sign(body, secret="not-the-secret")}
    answer = env.http.post(env.url, content=body, headers=headers)
    assert answer.status_code == 401
    tampered = {"Content-Type": content_type, **sign(body)}
    answer = env.http.post(env.url, content=body.replace(b"alert_acknowledge", b"alert_resolve"), headers=tampered)
    assert answer.status_code == 401
    time.sleep(0.05)
    assert env.alert().state is AlertState.FIRING
    assert env.slack.calls == []


def test_a_stale_timestamp_is_refused(env: SlackEnv) -> None:
    body, content_type = env.click_body("alert_acknowledge", user=ANA)
    old = {"Content-Type": content_type, **sign(body, timestamp=int(time.time()) - 5 * 60 - 5)}
    assert env.http.post(env.url, content=body, headers=old).status_code == 401
    assert env.alert().state is AlertState.FIRING


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": "v0=abc"},
        {"X-Slack-Request-Timestamp": str(10**30), "X-Slack-Signature": "v0=abc"},
    ],
)
def test_missing_or_garbage_signature_headers_are_401_not_500(env: SlackEnv, headers: dict[str, str]) -> None:
    answer = env.http.post(env.url, content=b"\xff\xfe garbage", headers={"Content-Type": "text/plain", **headers})
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
        (b"payload=%7Bnot-json", "application/x-www-form-urlencoded"),
        (b"payload=%5B1%2C2%5D", "application/x-www-form-urlencoded"),
        (b'payload={"type":"block_actions","actions":"x"}', "application/x-www-form-urlencoded"),
        (b'payload={"type":"block_actions","actions":[1]}', "application/x-www-form-urlencoded"),
        (b'{"type":"event_callback","event":"x"}', "application/json"),
        (b"[1, 2]", "application/json"),
        (b"{not json", "application/json"),
    ],
)
def test_a_signed_but_malformed_body_is_a_4xx(env: SlackEnv, body: bytes, content_type: str) -> None:
    answer = env.post(body, content_type)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert env.alert().state is AlertState.FIRING


def test_an_oversized_body_is_refused_before_it_is_read(env: SlackEnv) -> None:
    huge = b"payload=" + b"x" * (1024 * 1024 + 1)
    assert env.post(huge, "application/x-www-form-urlencoded").status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while streaming
        for _ in range(9):
            yield b"y" * (128 * 1024)

    answer = env.http.post(env.url, content=chunks(), headers={"Content-Type": "text/plain", **sign(b"")})
    assert answer.status_code == 413


def test_signed_nonsense_that_parses_is_not_routed(env: SlackEnv) -> None:
    answer = env.post(b"hello=world", "application/x-www-form-urlencoded")
    assert answer.status_code == 404
    assert SECRET not in answer.text
