"""The pure parts of the Slack surface, table-driven: payload checks, signatures, reply builders."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.signature import SignatureVerifier

from bot.config.loader import Config
from bot.config.schema import Slo
from bot.metrics.samples import Sample
from bot.slack import messages
from bot.slack.actions import MembershipCache, alert_id_of, parse_click
from bot.slack.app import malformed, signature_ok
from bot.slack.commands import (
    SloRequest,
    SloState,
    parse_slo_args,
    render_runbook,
    resolve_model,
    runbook_blocks,
    runbook_reply,
    slo_lines,
    slo_state,
)
from tests.slack.harness import SECRET, shipped_config, sign

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def cfg() -> Config:
    return shipped_config()


# --------------------------------------------------------------------------- the HTTP edge


def test_signature_ok_accepts_slacks_signature_and_nothing_else() -> None:
    verifier = SignatureVerifier(SECRET)
    body = b"command=%2Fruns&text=x"
    assert signature_ok(verifier, body, sign(body))
    lowered = {k.lower(): v for k, v in sign(body).items()}
    assert signature_ok(verifier, body, lowered)
    assert not signature_ok(verifier, body + b"&more=1", lowered)
    assert not signature_ok(verifier, body, {k.lower(): v for k, v in sign(body, secret="other").items()})
    stale = {k.lower(): v for k, v in sign(body, timestamp=int(time.time()) - 301).items()}
    assert not signature_ok(verifier, body, stale)
    future = {k.lower(): v for k, v in sign(body, timestamp=int(time.time()) + 301).items()}
    assert not signature_ok(verifier, body, future)
    for garbage in ({}, {"x-slack-request-timestamp": "soon", "x-slack-signature": "v0=0"}):
        assert not signature_ok(verifier, body, garbage)
    non_ascii = {"x-slack-request-timestamp": str(int(time.time())), "x-slack-signature": "v0=ÿÿ"}
    assert not signature_ok(verifier, body, non_ascii)


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (b"command=%2Frunbook&text=support-bot", "application/x-www-form-urlencoded", None),
        (b'payload={"type":"block_actions","actions":[{"action_id":"a"}]}', "application/x-www-form-urlencoded", None),
        (b'{"type":"url_verification","challenge":"c"}', "application/json", None),
        (b'{"type":"event_callback","event":{"type":"app_home_opened"}}', "application/json", None),
        (b"", None, None),
        (b"\xff", "application/json", "not UTF-8"),
        (b"{oops", "application/json", "not valid JSON"),
        (b"payload=%7Boops", "application/x-www-form-urlencoded", "not valid JSON"),
        (b"payload=7", "application/x-www-form-urlencoded", "not a JSON object"),
        (b'payload={"type":"block_actions"}', "application/x-www-form-urlencoded", "needs actions"),
        (
            b'payload={"type":"block_actions","actions":[{"action_id":1}]}',
            "application/x-www-form-urlencoded",
            "action",
        ),
        (b'payload={"type":"block_actions","actions":[],"user":[1]}', "application/x-www-form-urlencoded", "'user'"),
        (b'{"type":"event_callback"}', "application/json", "needs an event"),
        (b'{"type":"event_callback","event":{"type":5}}', "application/json", "event.type"),
    ],
)
def test_malformed_names_what_bolt_could_not_route(body: bytes, content_type: str | None, problem: str | None) -> None:
    found = malformed(body, content_type)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


# --------------------------------------------------------------------------- buttons


def test_parse_click_reads_the_block_actions_payload() -> None:
    body = {
        "user": {"id": "U1"},
        "channel": {"id": "C1"},
        "container": {"message_ts": "1.2", "channel_id": "C1"},
        "trigger_id": "t",
        "actions": [{"action_id": "alert_resolve", "value": "7"}],
    }
    assert parse_click(body).channel == "C1" and parse_click(body).message_ts == "1.2"
    home = {"user": {"id": "U1"}, "container": {"type": "view"}, "actions": [{"action_id": "x", "value": "7"}]}
    assert parse_click(home).channel is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7), (" 12 ", 12), ("-1", None), ("1e3", None), ("٣", None), ("", None), ("9" * 30, None)],
)
def test_alert_id_of(value: str, expected: int | None) -> None:
    assert alert_id_of(value) == expected


def test_membership_cache_remembers_for_its_ttl() -> None:
    clock = [0.0]
    calls: list[int] = []
    cache = MembershipCache(ttl=60, timer=lambda: clock[0])

    async def fetch() -> frozenset[str]:
        calls.append(1)
        return frozenset({"U1"})

    async def scenario() -> None:
        assert await cache.members("channel:C1", fetch) == {"U1"}
        clock[0] = 59
        await cache.members("channel:C1", fetch)
        assert len(calls) == 1
        clock[0] = 61
        await cache.members("channel:C1", fetch)
        assert len(calls) == 2

    asyncio.run(scenario())


def test_refusal_reasons_mention_users_and_escape_the_rest() -> None:
    assert messages.refused("Already acknowledged by U0ANA0001 at 14:02 UTC.").endswith(
        "Already acknowledged by <@U0ANA0001> at 14:02 UTC."
    )
    assert "UTC" in messages.mention_users("at 14:02 UTC")
    assert messages.mention_users("by <!channel> U1") == "by &lt;!channel&gt; <@U1>"


# --------------------------------------------------------------------------- /runbook


def test_runbook_reply_renders_the_models_runbook(cfg: Config) -> None:
    reply = runbook_reply(cfg, "  fraud-detector-v2 ")
    text = json.dumps(reply.blocks)
    assert "ML Incident Runbook: fraud-detector-v2" in text
    assert "kubectl rollout undo deployment/fraud-v2" in text and "{rollback_command}" not in text
    assert "https://ml.internal/fraud/v2" in text and "{endpoint}" not in text


def test_runbook_reply_usage_and_close_matches(cfg: Config) -> None:
    assert runbook_reply(cfg, "").text == messages.RUNBOOK_USAGE
    assert runbook_reply(cfg, "a b").text == messages.RUNBOOK_USAGE
    typo = runbook_reply(cfg, "fraud-detector-v3").text
    assert "Did you mean: `fraud-detector-v2`?" in typo
    nothing_close = runbook_reply(cfg, "zzz").text
    assert "Did you mean" not in nothing_close and "Known models: `fraud-detector-v2`, `support-bot`." in nothing_close
    assert resolve_model(cfg, "Support-Bot") == "support-bot"


def test_an_alerts_runbook_prefers_the_rules_runbook(cfg: Config) -> None:
    by_rule = render_runbook(cfg, "support-bot", rule="llm_cost_runaway")
    assert by_rule is not None and by_rule.startswith("# LLM cost runaway: support-bot")
    by_model = render_runbook(cfg, "support-bot")
    assert by_model is not None and by_model.startswith("# ML Incident Runbook: support-bot")
    unknown = render_runbook(cfg, "shadow-model")
    assert unknown is not None and "shadow-model" in unknown
    assert render_runbook(replace(cfg, runbooks={}), "support-bot") is None


def test_long_runbooks_are_split_into_sections_within_slack_limits() -> None:
    markdown = "\n".join(f"- step {i}: " + "x" * 90 for i in range(400)) + "\n```\n" + "y" * 5000 + "\n```"
    blocks = runbook_blocks("m", markdown)
    assert len(blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")


# --------------------------------------------------------------------------- /slo status


def _slo(objective: str, warning: float, critical: float) -> Slo:
    return Slo.model_validate(
        {"model": "m", "metric": "x", "objective": objective, "warning": warning, "critical": critical}
    )


@pytest.mark.parametrize(
    ("objective", "warning", "critical", "value", "state"),
    [
        ("below 2000", 3000, 5000, 1800, SloState.OK),
        ("below 2000", 3000, 5000, 2000, SloState.OK),
        ("below 2000", 3000, 5000, 2500, SloState.OFF_TARGET),
        ("below 2000", 3000, 5000, 3000, SloState.WARNING),
        ("below 2000", 3000, 5000, 5000, SloState.CRITICAL),
        ("above 0.90", 0.85, 0.75, 0.93, SloState.OK),
        ("above 0.90", 0.85, 0.75, 0.87, SloState.OFF_TARGET),
        ("above 0.90", 0.85, 0.75, 0.80, SloState.WARNING),
        ("above 0.90", 0.85, 0.75, 0.70, SloState.CRITICAL),
    ],
)
def test_slo_state(objective: str, warning: float, critical: float, value: float, state: SloState) -> None:
    assert slo_state(_slo(objective, warning, critical), value) is state


def test_slo_lines_worst_first_with_stale_samples_as_no_data(cfg: Config) -> None:
    latest = {
        "support-bot": {
            "current_accuracy": Sample(0.95, NOW),
            "helpfulness": Sample(0.72, NOW - timedelta(minutes=2)),
            "response_time_p95_ms": Sample(9000.0, NOW - timedelta(hours=2)),
        }
    }
    every = slo_lines(cfg, latest, now=NOW, model="support-bot")
    # only the SLOs over these three metrics: the shipped config may hold more for support-bot
    lines = [line for line in every if any(f"`{metric}`" in line for metric in latest["support-bot"])]
    assert [line[:1] for line in lines] == ["⚠", "⚪", "✅"]
    assert "helpfulness` = 0.72 (2m ago)" in lines[0]
    assert "stale" in lines[1]


def test_parse_slo_args(cfg: Config) -> None:
    assert parse_slo_args(cfg, "status") == SloRequest(None, None)
    assert parse_slo_args(cfg, "STATUS support-bot 24h") == SloRequest("support-bot", timedelta(hours=24))
    assert parse_slo_args(cfg, "status 7d") == SloRequest(None, timedelta(days=7))
    for usage in ("", "burn", "status a b c d"):
        assert parse_slo_args(cfg, usage) == parse_slo_args(cfg, "")
    bad = parse_slo_args(cfg, "status support-bot 7x")
    assert not isinstance(bad, SloRequest) and "not a window" in bad.text
    none = parse_slo_args(replace(cfg, slos=()), "status support-bot")
    assert not isinstance(none, SloRequest) and none.text == messages.no_slos_for("support-bot")
