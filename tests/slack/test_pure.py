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
from bot.metrics.samples import Sample
from bot.slack import messages
from bot.slack.access import MembershipCache
from bot.slack.commands import AlertsRequest, parse_alerts_args, review_reply
from bot.slack.gates import malformed, signature_ok
from bot.slack.payloads import alert_id_of, menu_choice, parse_click
from bot.slack.replies import MAX_SECTIONS
from bot.slack.runbooks import render_runbook, resolve_model, runbook_blocks, runbook_reply
from bot.slack.slo_replies import SloRequest, parse_slo_args, slo_reply, table_context
from bot.slo.dashboard import ModelDashboard, build_dashboard
from bot.slo.service import specs_of
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


def test_an_overflow_choice_is_read_as_the_clicks_value() -> None:
    option = {"text": {"type": "plain_text", "text": "Resolve this alert"}, "value": "resolve:7"}
    body = {
        "user": {"id": "U1"},
        "channel": {"id": "C1"},
        "actions": [{"action_id": "alert_menu", "type": "overflow", "selected_option": option}],
    }
    assert parse_click(body).value == "resolve:7"
    odd = {**body, "actions": [{"action_id": "alert_menu", "type": "overflow", "selected_option": "resolve:7"}]}
    assert parse_click(odd).value == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("acknowledge:7", ("acknowledge", 7)),
        ("resolve:12", ("resolve", 12)),
        ("runbook:3", ("runbook", 3)),
        ("delete:7", None),
        ("resolve:", None),
        ("resolve:-1", None),
        ("resolve:<!channel>", None),
        ("7", None),
        ("", None),
    ],
)
def test_menu_choice(value: str, expected: tuple[str, int] | None) -> None:
    assert menu_choice(value) == expected


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


def test_parse_slo_args(cfg: Config) -> None:
    assert parse_slo_args(cfg, "status") == SloRequest(None, None)
    assert parse_slo_args(cfg, "STATUS support-bot 24h") == SloRequest("support-bot", timedelta(hours=24))
    assert parse_slo_args(cfg, "status 7d") == SloRequest(None, timedelta(days=7))
    assert parse_slo_args(cfg, "status 7d Support-Bot") == SloRequest("support-bot", timedelta(days=7))
    assert parse_slo_args(cfg, "status support-bot chart") == SloRequest("support-bot", None, chart=True)
    assert parse_slo_args(cfg, "status chart support-bot 30d") == SloRequest("support-bot", timedelta(days=30), True)
    for usage in ("", "burn", "status a b c d", "status support-bot 7d 30d", "status a 7d chart chart"):
        assert parse_slo_args(cfg, usage) == parse_slo_args(cfg, ""), usage
    bad = parse_slo_args(cfg, "status support-bot 7x")
    assert not isinstance(bad, SloRequest) and bad.text.startswith("`7x` is not a window: write it like `7d`")
    for too in ("0s", "30s", "91d"):
        assert not isinstance(parse_slo_args(cfg, f"status {too}"), SloRequest), too
    assert parse_slo_args(cfg, "status 90d") == SloRequest(None, timedelta(days=90))
    chartless = parse_slo_args(cfg, "status chart")
    assert not isinstance(chartless, SloRequest) and chartless.text.startswith("`chart` needs a model")
    unknown = parse_slo_args(cfg, "status suport-bot")
    assert not isinstance(unknown, SloRequest) and "Did you mean: `support-bot`?" in unknown.text
    none = parse_slo_args(replace(cfg, slos=()), "status support-bot")
    assert not isinstance(none, SloRequest) and none.text == messages.SLO_NONE_CONFIGURED
    fraud_only = replace(cfg, slos=tuple(slo for slo in cfg.slos if slo.model == "fraud-detector-v2"))
    without = parse_slo_args(fraud_only, "status support-bot")
    assert not isinstance(without, SloRequest)
    assert without.text == "No SLOs are configured for `support-bot`. Models with SLOs: `fraud-detector-v2`."


def _boards(
    cfg: Config, series: dict[str, dict[str, list[Sample]]], *, model: str | None = None
) -> tuple[ModelDashboard, ...]:
    return build_dashboard(specs_of(cfg, model=model), series, NOW)


def _hourly(value: float, hours: int) -> list[Sample]:
    return [Sample(value, NOW - timedelta(minutes=15 * i)) for i in range(hours * 4 + 1)]


def test_slo_reply_escapes_and_keeps_sections_small(cfg: Config) -> None:
    series = {"support-bot": {"response_time_p95_ms": _hourly(1500.0, 24)}}
    overview = slo_reply(_boards(cfg, series), model=None, window=None, now=NOW)
    assert overview.blocks is not None
    assert overview.text.splitlines()[1].startswith("⚪ fraud-detector-v2")  # blind is worse than partly seen
    table = slo_reply(_boards(cfg, series, model="support-bot"), model="support-bot", window=None, now=NOW)
    assert table.blocks is not None
    code = table.blocks[1]["text"]["text"]
    assert code.startswith("```\nSLO Dashboard - support-bot - Last 7 Days")
    assert "response_time_p95_ms │ ≤ 2s    │ 1.5s" in code
    assert all(len(b["text"]["text"]) <= 3000 for b in table.blocks if b["type"] == "section")
    assert slo_reply((), model=None, window=None, now=NOW).text == messages.SLO_NONE_CONFIGURED


def test_table_says_window_and_coverage(cfg: Config) -> None:
    series = {"support-bot": {"response_time_p95_ms": _hourly(1500.0, 42), "current_accuracy": _hourly(0.95, 84)}}
    [board] = _boards(cfg, series, model="support-bot")
    note = table_context(board, window=None, now=NOW)
    assert note.startswith("Window: last 7 days · burn rate over the last 1 h · as of ")
    assert table_context(board, window=timedelta(days=30), now=NOW).startswith("Window: last 30 days · ")
    reply = slo_reply([board], model="support-bot", window=None, now=NOW)
    assert reply.blocks is not None
    # 42 h and 84 h of a 168 h window: 25% and 50%; four SLOs with none: a mean of 12.5%
    assert "\nData for 12% of the window (least: helpfulness 0%)\n```" in reply.blocks[1]["text"]["text"]


# --------------------------------------------------------------------------- /alerts review


def test_parse_alerts_args() -> None:
    assert parse_alerts_args("") == AlertsRequest()
    assert parse_alerts_args("review") == AlertsRequest(review=True, window=timedelta(days=7))
    assert parse_alerts_args("Review 30d") == AlertsRequest(review=True, window=timedelta(days=30))
    for usage in ("list", "review 7d more", "firing"):
        reply = parse_alerts_args(usage)
        assert not isinstance(reply, AlertsRequest) and reply.text == messages.ALERTS_USAGE
    bad = parse_alerts_args("review <!here>")
    assert not isinstance(bad, AlertsRequest) and bad.text.startswith("`&lt;!here&gt;` is not a window")


def test_review_reply_is_a_code_block_cut_into_sections() -> None:
    review = "Alert review — last 7 days\n" + "\n".join(f"rule_{i:03d} │ 3 │ <1> │ 4m" for i in range(400))
    reply = review_reply(review)
    assert reply.text == "Alert review — last 7 days"
    assert reply.blocks is not None and len(reply.blocks) > 1
    texts = [b["text"]["text"] for b in reply.blocks]
    assert all(len(t) <= 3000 and t.startswith("```\n") and t.endswith("\n```") for t in texts)
    assert "<1>" not in "".join(texts) and "&lt;1&gt;" in texts[0]
    huge = review_reply("x\n" + "\n".join("y" * 2900 for _ in range(60)))
    assert huge.blocks is not None and len(huge.blocks) == MAX_SECTIONS + 1
    assert huge.blocks[-1]["type"] == "context"
