"""The pure Block Kit builders: buttons per state, escaping, Block Kit limits, modal, lists, home."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, AlertState, EventKind
from bot.notify.links import Link
from bot.notify.slack_blocks import (
    ACKNOWLEDGE_ACTION,
    RESOLVE_ACTION,
    RUNBOOK_ACTION,
    SILENCE_ACTION,
    alert_message,
    alerts_list,
    home_view,
    runbook_modal,
)
from bot.notify.slack_links import LINK_ACTION
from bot.notify.slack_replies import state_reply
from bot.notify.slack_text import clip, escape_mrkdwn, format_value, markdown_to_mrkdwn, mention
from bot.severity import Severity
from tests.emulators.block_kit_limits import check_blocks, check_message, check_view

NOW = datetime(2026, 1, 5, 14, 25, tzinfo=UTC)
FIRED = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
INJECTION = "<!channel> <@U0BOSS> <https://evil.example|click>"


def make_alert(**changes: Any) -> Alert:
    base = Alert(
        id=42,
        rule="llm_cost_runaway",
        model="support-bot",
        severity=Severity.P1,
        state=AlertState.FIRING,
        started_at=FIRED,
        fired_at=FIRED,
        title="LLM cost approaching budget for support-bot",
        description="Daily cost: $450.00 / $500.00 budget (80%+ consumed).",
        values={"daily_cost_usd": 450.0, "daily_budget_usd": 500},
    )
    return replace(base, **changes)


def acked(**changes: Any) -> Alert:
    fields: dict[str, Any] = {"acknowledged_by": "U1", "acknowledged_at": FIRED + timedelta(minutes=2), **changes}
    return make_alert(state=AlertState.ACKNOWLEDGED, **fields)


def resolved(by: str = "U2", **changes: Any) -> Alert:
    return make_alert(state=AlertState.RESOLVED, resolved_by=by, resolved_at=FIRED + timedelta(minutes=23), **changes)


def texts(node: Any) -> Iterator[tuple[str, str]]:
    """Every text object in a payload, as (type, text)."""
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
            yield node["type"], node["text"]
        for value in node.values():
            yield from texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from texts(item)


def mrkdwn(blocks: Any) -> str:
    return "\n".join(text for kind, text in texts(blocks) if kind == "mrkdwn")


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


@pytest.mark.parametrize(
    ("alert", "expected"),
    [
        (make_alert(), [ACKNOWLEDGE_ACTION, RESOLVE_ACTION, RUNBOOK_ACTION, SILENCE_ACTION]),
        (acked(), [RESOLVE_ACTION, RUNBOOK_ACTION, SILENCE_ACTION]),
        (resolved(), [RUNBOOK_ACTION]),
    ],
    ids=["firing", "acknowledged", "resolved"],
)
def test_buttons_match_the_state(alert: Alert, expected: list[str]) -> None:
    _, blocks = alert_message(alert, now=NOW)
    shown = buttons(blocks)
    assert [b["action_id"] for b in shown] == expected
    assert {b["value"] for b in shown} == {"42"}
    assert check_message({"text": "x", "blocks": blocks}) is None


def test_acknowledge_is_the_primary_button_while_firing() -> None:
    ack, resolve, runbook, silence = buttons(alert_message(make_alert(), now=NOW)[1])
    assert ack["style"] == "primary" and ack["text"]["text"] == "Acknowledge"
    assert "style" not in resolve and "style" not in runbook and "style" not in silence
    assert silence["text"]["text"] == "Silence 1h"


def test_without_a_runbook_a_resolved_alert_has_no_actions() -> None:
    _, blocks = alert_message(resolved(), now=NOW, runbook=False)
    assert buttons(blocks) == []
    assert [b["action_id"] for b in buttons(alert_message(make_alert(), now=NOW, runbook=False)[1])] == [
        ACKNOWLEDGE_ACTION,
        RESOLVE_ACTION,
        SILENCE_ACTION,
    ]


def test_message_shows_severity_title_values_time_and_context() -> None:
    text, blocks = alert_message(make_alert(), now=NOW)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "🟠 P1 · LLM cost approaching budget for support-bot", "emoji": True},
    }
    body = mrkdwn(blocks)
    assert "Daily cost: $450.00 / $500.00 budget" in body
    assert "*daily_cost_usd*\n450" in body and "*daily_budget_usd*\n500" in body
    assert f"<!date^{int(FIRED.timestamp())}^" in body and "|2026-01-05 14:00 UTC>" in body
    assert "🔥 Firing" in body
    assert blocks[-1]["type"] == "context"
    assert "`llm_cost_runaway`" in body and "`llm_cost_runaway:support-bot`" in body
    assert text.startswith("🟠 P1 · LLM cost approaching budget")


@pytest.mark.parametrize(
    ("severity", "emoji"), [(Severity.P0, "🔴"), (Severity.P1, "🟠"), (Severity.P2, "🟡"), (Severity.P3, "🔵")]
)
def test_header_emoji_by_severity(severity: Severity, emoji: str) -> None:
    _, blocks = alert_message(make_alert(severity=severity), now=NOW)
    assert blocks[0]["text"]["text"].startswith(f"{emoji} {severity.value} · ")


def test_model_is_added_to_a_header_whose_title_lacks_it() -> None:
    _, blocks = alert_message(make_alert(title="Cost runaway"), now=NOW)
    assert blocks[0]["text"]["text"] == "🟠 P1 · Cost runaway · support-bot"


@pytest.mark.parametrize(
    "alert",
    [
        make_alert(values={"top_drifted_features": INJECTION}),
        make_alert(values={INJECTION: 1.0}),
        make_alert(model=INJECTION, title="Cost"),
        make_alert(description=f"cost is {INJECTION}"),
        make_alert(title=f"Cost {INJECTION}"),
        acked(acknowledged_by=INJECTION),
        resolved(by=INJECTION),
    ],
    ids=["label", "metric-name", "model", "description", "title", "ack-actor", "resolve-actor"],
)
def test_outside_text_cannot_inject_mentions_or_links(alert: Alert) -> None:
    text, blocks = alert_message(alert, now=NOW)
    for rendered in (text, mrkdwn(blocks)):
        assert "<!channel>" not in rendered and "<@U0BOSS>" not in rendered and "<https://evil" not in rendered
    assert "&lt;!channel&gt;" in text + mrkdwn(blocks)
    untrusted = [b for b in blocks if b["type"] in ("section", "context")]
    assert all(t.get("verbatim") is True for b in untrusted for t in [b.get("text") or {}, *b.get("fields", [])] if t)


def test_escape_mrkdwn_escapes_exactly_slacks_three_characters() -> None:
    assert escape_mrkdwn("a & b < c > d *e* _f_") == "a &amp; b &lt; c &gt; d *e* _f_"
    assert escape_mrkdwn(12.5) == "12.5"


def test_actors_render_as_mentions_the_bot_as_auto_resolve() -> None:
    assert mention("U123") == "<@U123>"
    assert mention("W0ENTERPRISE") == "<@W0ENTERPRISE>"
    assert mention(SYSTEM_ACTOR) == "auto-resolve"
    assert mention("ana@example.com") == "ana@example.com"
    assert mention("<!here>") == "&lt;!here&gt;"


def test_header_is_cut_to_150_characters() -> None:
    _, blocks = alert_message(make_alert(title="x" * 400 + " support-bot"), now=NOW)
    header = blocks[0]["text"]["text"]
    assert len(header) == 150 and header.endswith("…")


def test_long_description_is_truncated_to_3000_characters() -> None:
    _, blocks = alert_message(make_alert(description="<&>" * 4000), now=NOW)
    section = blocks[1]["text"]["text"]
    assert len(section) <= 3000 and section.endswith("…")
    assert re.search(r"&(amp|lt|gt);…$", section)  # never half an entity
    assert check_blocks(blocks) == []


def test_clip_never_leaves_half_a_token_or_an_open_code_block() -> None:
    assert clip("abc <@U123> def", 9) == "abc …"
    assert clip("x" * 20, 10) == "x" * 9 + "…"
    cut = clip("```" + "y" * 50, 20)
    assert len(cut) <= 20 and cut.count("```") == 2


def test_many_values_stay_within_block_kit_limits() -> None:
    values = {f"metric_{i:02}": i * 1.5 for i in range(55)}
    text, blocks = alert_message(make_alert(values=values), now=NOW)
    field_sections = [b for b in blocks if b["type"] == "section" and "fields" in b]
    assert all(len(b["fields"]) <= 10 for b in field_sections)
    assert sum(len(b["fields"]) for b in field_sections) == 40
    assert "…and 15 more values" in mrkdwn(blocks)
    assert check_message({"text": text, "blocks": blocks}) is None


@pytest.mark.parametrize(
    ("value", "shown"),
    [(12000, "12,000"), (450.0, "450"), (6100.456, "6,100.46"), (0.873456, "0.8735"), ("a, b", "a, b"), (True, "True")],
)
def test_numbers_are_formatted_for_people(value: object, shown: str) -> None:
    assert format_value(value) == shown


def test_a_resolved_alert_loses_its_firing_colour() -> None:
    # open: the severity's colour, whatever the state; resolved (by a person or by itself): green
    for alert in (make_alert(), acked()):
        text, blocks = alert_message(alert, now=NOW)
        assert blocks[0]["text"]["text"] == "🟠 P1 · LLM cost approaching budget for support-bot"
        assert text.startswith("🟠 P1 · ")
    for alert in (resolved(), resolved(by=SYSTEM_ACTOR)):
        text, blocks = alert_message(alert, now=NOW)
        assert blocks[0]["text"]["text"] == "🟢 Resolved · P1 · LLM cost approaching budget for support-bot"
        assert text.startswith("🟢 P1 · LLM cost approaching budget for support-bot — ")
        assert "🟠" not in text + mrkdwn(blocks)


def test_an_auto_resolve_shows_the_values_that_fired_it_and_the_recovered_ones_labelled() -> None:
    alert = resolved(by=SYSTEM_ACTOR, values={"p99_latency_ms": 6100.0, "p99_threshold_ms": 5000, "am_fp": "x"})
    recovered = {"p99_latency_ms": 200.0, "p99_threshold_ms": 5000, "am_fp": "y"}
    reply = state_reply(alert, EventKind.AUTO_RESOLVED, "rule:r", NOW, escalation={"recovered": recovered})
    # what changed is news; a threshold setting that fed the condition, unchanged, and bookkeeping are not
    assert reply == (
        "🟢 Auto-resolved: condition cleared after 23 min"
        " · fired at: p99_latency_ms 6,100, p99_threshold_ms 5,000 · recovered: p99_latency_ms 200"
    )
    body = mrkdwn(alert_message(alert, now=NOW, recovered=recovered)[1])
    assert "*p99_latency_ms*\nfired at: 6,100 · recovered: 200" in body
    # resolved by a person: the values are still the ones that fired it, and say so
    assert "*p99_latency_ms*\nfired at: 6,100" in mrkdwn(alert_message(resolved(values=alert.values), now=NOW)[1])
    # while open, the values need no label
    assert "*p99_latency_ms*\n6,100" in mrkdwn(alert_message(make_alert(values=alert.values), now=NOW)[1])


def test_state_lines_say_who_and_when() -> None:
    assert "✅ Acknowledged by <@U1> at 14:02 UTC" in mrkdwn(alert_message(acked(), now=NOW)[1])
    assert "🟢 Resolved by <@U2> after 23 min" in mrkdwn(alert_message(resolved(), now=NOW)[1])
    auto = mrkdwn(alert_message(resolved(by=SYSTEM_ACTOR), now=NOW)[1])
    assert "🟢 Auto-resolved: condition cleared after 23 min" in auto


def test_state_replies() -> None:
    assert state_reply(acked(), EventKind.ACKNOWLEDGED, "U1", NOW) == "✅ Acknowledged by <@U1> at 14:02 UTC"
    assert state_reply(resolved(), EventKind.RESOLVED, "U2", NOW) == "🟢 Resolved by <@U2> after 23 min"
    auto = state_reply(resolved(by=SYSTEM_ACTOR), "auto_resolved", "rule:llm_cost_runaway", NOW)
    assert auto == (
        "🟢 Auto-resolved: condition cleared after 23 min · fired at: daily_cost_usd 450, daily_budget_usd 500"
    )
    assert "&lt;!channel&gt;" in state_reply(make_alert(), "some_future_event", "<!channel>", NOW)


def test_runbook_modal_converts_markdown_minimally() -> None:
    markdown = "# Latency spike: support-bot\n\n- check **GPU** memory\n\n```\nkubectl get pods | grep <pod>\n```\n"
    view = runbook_modal("support-bot", markdown + "See [dashboard](https://grafana.internal/d/x?a=1&b=2).")
    assert view["type"] == "modal" and view["close"]["text"] == "Close"
    assert len(view["title"]["text"]) <= 24
    text = view["blocks"][0]["text"]["text"]
    assert text.startswith("*Latency spike: support-bot*\n")
    assert "• check *GPU* memory" in text
    assert "```\nkubectl get pods | grep &lt;pod&gt;\n```" in text
    assert "<https://grafana.internal/d/x?a=1&amp;b=2|dashboard>" in text
    assert check_view(view) is None


def test_long_runbook_is_split_across_sections_with_code_blocks_kept_whole() -> None:
    markdown = "\n".join(["## Step", "```", *[f"echo line {i} " + "x" * 60 for i in range(120)], "```"] * 3)
    view = runbook_modal("a-model-with-a-very-long-name", markdown)
    sections = [b["text"]["text"] for b in view["blocks"]]
    assert len(sections) > 3
    assert all(len(s) <= 3000 for s in sections)
    assert all(s.count("```") % 2 == 0 for s in sections)  # each section opens what it closes
    assert check_view(view) is None


def test_huge_runbook_stops_at_100_blocks() -> None:
    view = runbook_modal("m", "\n".join("y" * 2900 for _ in range(150)))
    assert len(view["blocks"]) == 100
    assert "too long" in view["blocks"][-1]["elements"][0]["text"]
    assert check_view(view) is None


def test_empty_runbook_says_so() -> None:
    assert runbook_modal("m", "")["blocks"][0]["text"]["text"] == "_This runbook is empty._"


def test_markdown_headings_and_bold() -> None:
    assert markdown_to_mrkdwn("### Rollback ###\n__now__ & **then**") == "*Rollback*\n*now* &amp; *then*"


def test_alerts_list_puts_the_most_severe_first_with_state_and_age() -> None:
    alerts = [
        make_alert(id=1, severity=Severity.P2, title="Drift for support-bot", fired_at=NOW - timedelta(hours=2)),
        make_alert(
            id=2,
            severity=Severity.P0,
            title="Down for fraud",
            model="fraud",
            fired_at=NOW - timedelta(minutes=12),
            incident_id=5,
        ),
        acked(id=3, fired_at=NOW - timedelta(minutes=30)),
        resolved(id=4),
    ]
    text, blocks = alerts_list(alerts, now=NOW)
    assert text == "3 active alerts (1 P0, 1 P1, 1 P2)"
    lines = [b["text"]["text"] for b in blocks[1:]]
    assert [line.split(" ")[0] for line in lines] == ["🔴", "🟠", "🟡"]
    assert "`fraud` · 🔥 firing · firing for 12 min · incident #5" in lines[0], "which incident it belongs to"
    assert "✅ acknowledged by <@U1> · firing for 30 min" in lines[1]
    assert "firing for 2 h" in lines[2]
    assert check_blocks(blocks) == []


def test_alerts_list_empty() -> None:
    text, blocks = alerts_list([], now=NOW)
    assert text == "No active alerts 🎉"
    assert blocks[0]["text"]["text"] == "No active alerts 🎉"


def test_alerts_list_caps_blocks() -> None:
    many = [make_alert(id=i, title=f"Alert {i} <!here>") for i in range(120)]
    _, blocks = alerts_list(many, now=NOW)
    assert len(blocks) <= 50 and "…and 80 more" in mrkdwn(blocks)
    assert "<!here>" not in mrkdwn(blocks)


def test_home_view_lists_alerts_and_slos() -> None:
    view = home_view([acked(), make_alert(id=7, severity=Severity.P0)], now=NOW, slo_lines=["✅ support-bot <ok>"])
    assert view["type"] == "home"
    headers = [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]
    assert headers == ["🚨 Active alerts (2)", "📈 SLOs"]
    body = mrkdwn(view["blocks"])
    assert body.index("🔴") < body.index("🟠")
    assert "✅ support-bot &lt;ok&gt;" in body
    assert check_view(view) is None


def test_home_view_when_quiet() -> None:
    view = home_view([], now=NOW)
    assert "No active alerts 🎉" in mrkdwn(view["blocks"])
    assert all(b["type"] != "divider" for b in view["blocks"])  # no SLO section asked for
    assert "No SLOs configured" in mrkdwn(home_view([], now=NOW, slo_lines=[])["blocks"])


def test_an_escalation_reply_says_where_it_climbed_whether_it_paged_and_whom_it_calls() -> None:
    from bot.alerts.lifecycle import Alert, AlertState
    from bot.notify.slack_replies import state_reply
    from bot.severity import Severity

    fired = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    alert = Alert(rule="r", model="m", severity=Severity.P1, state=AlertState.FIRING, started_at=fired, fired_at=fired)
    step = {
        "step": 3,
        "steps": 3,
        "after_seconds": 3600.0,
        "from_severity": "P2",
        "to_severity": "P1",
        "mention": "S0ONCALL1",
    }
    text = state_reply(alert, "escalated", "incident-bot", fired, escalation=step, paged=True)
    assert text == "⏫ Escalated to P1 — step 3/3, unacknowledged for 1 h; paged PagerDuty · cc <!subteam^S0ONCALL1>"
    same = {**step, "from_severity": "P1", "mention": "<!channel>"}
    text = state_reply(alert, "escalated", "incident-bot", fired, escalation=same, paged=False)
    assert text.startswith("⏫ Still unacknowledged (P1)")
    assert "&lt;!channel&gt;" in text


def test_the_dashboard_and_other_links_are_url_buttons_after_the_actions() -> None:
    links = [Link("Dashboard", "https://grafana.example/d/support-bot"), Link("Logs", "https://logs.example/?q=x")]
    _, blocks = alert_message(resolved(), now=NOW, links=links)
    shown = buttons(blocks)
    assert [b["action_id"] for b in shown] == [RUNBOOK_ACTION, f"{LINK_ACTION}_0", f"{LINK_ACTION}_1"]
    assert [(b["text"]["text"], b["url"]) for b in shown[1:]] == [(link.text, link.url) for link in links]
    assert check_message({"text": "x", "blocks": blocks}) is None


def test_links_beyond_an_actions_blocks_room_become_an_escaped_context_line() -> None:
    links = [Link(f"<!channel> {n}", f"https://x.example/{n}?a|b") for n in range(30)]
    _, blocks = alert_message(make_alert(), now=NOW, links=links)
    assert len(buttons(blocks)) == 25
    assert check_message({"text": "x", "blocks": blocks}) is None
    line = blocks[[b["type"] for b in blocks].index("actions") + 1]
    assert line["type"] == "context"
    assert "<https://x.example/21?a%7Cb|&lt;!channel&gt; 21>" in line["elements"][0]["text"]
