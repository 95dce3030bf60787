"""``/slo status [model] [window] [chart]``, ``/alerts review [window]`` and the App Home's SLO
section as signed Slack requests against the running app (uvicorn on 127.0.0.1), answered
through the Slack Web API emulator, with two days of metrics pushed through
``AlertService.ingest`` as the clock advances (``slo_data.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulators.slack_api import Call
from tests.slack.harness import ANA, SlackEnv, slack_env
from tests.slack.slo_data import push_slo_history

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SlackEnv]:
    with slack_env(tmp_path) as running:
        push_slo_history(running.service, running.clock)
        yield running


def answered(env: SlackEnv, text: str, command: str = "/slo") -> Call:
    """Run the command; it is acknowledged at once (empty) and answered through its response_url."""
    before = len(env.slack.calls_to("response_url"))
    answer = env.command(command, text)
    assert answer.status_code == 200, answer.text
    assert answer.text == "", f"expected an empty ack, got {answer.text!r}"
    call = env.slack.wait_for("response_url", count=before + 1)
    assert call.params["response_type"] == "ephemeral"
    return call


def acked(env: SlackEnv, text: str, command: str = "/slo") -> dict[str, Any]:
    """Run the command; its reply comes in the acknowledgement itself."""
    answer = env.command(command, text)
    assert answer.status_code == 200, answer.text
    reply: dict[str, Any] = answer.json()
    assert reply["response_type"] == "ephemeral"
    return reply


def sections(call: Call) -> list[str]:
    return [b["text"]["text"] for b in call.params["blocks"] if b["type"] == "section"]


def context(call: Call) -> str:
    return " ".join(e["text"] for b in call.params["blocks"] if b["type"] == "context" for e in b["elements"])


# --------------------------------------------------------------------------- /slo status


def test_overview_has_one_line_per_model_worst_first_and_a_hint(env: SlackEnv) -> None:
    call = answered(env, "status")
    header, *lines = call.params["text"].splitlines()
    assert header == "*SLO status — all models, worst first* (last 7 days)"
    assert len(lines) == 2
    assert lines[0].startswith("🔴 support-bot — SLO compliance 33% (1/3 ok, 3 no data)")
    assert "worst: response_time_p95_ms 5.6s vs ≤ 2s (critical)" in lines[0]
    assert lines[1] == "✅ fraud-detector-v2 — SLO compliance 100% (1/1 ok)"
    assert "`/slo status <model>`" in context(call) and "chart" in context(call)
    assert all(len(text) <= 3000 for text in sections(call))


def test_model_table_has_every_slo_row_with_its_status(env: SlackEnv) -> None:
    call = answered(env, "status support-bot")
    header, table = sections(call)
    assert header == "*SLO status — support-bot* (last 7 days)"
    assert table.startswith("```\nSLO Dashboard - support-bot - Last 7 Days\n") and table.endswith("\n```")
    rows = {line.split(" │ ")[0].strip(): line for line in table.splitlines() if " │ " in line}
    assert set(rows) == {
        "Metric",
        "response_time_p95_ms",
        "helpfulness",
        "availability",
        "error_rate",
        "cost_per_query",
        "current_accuracy",
    }
    assert "Budget left" in rows["Metric"] and "Burn (1 h)" in rows["Metric"] and "Compliance" in rows["Metric"]
    assert rows["response_time_p95_ms"].endswith("🔴 critical") and "5.6s" in rows["response_time_p95_ms"]
    assert rows["helpfulness"].endswith("⚠️ warning") and "0.78" in rows["helpfulness"]
    assert rows["availability"].endswith("⚪ no data")
    assert rows["current_accuracy"].endswith("✅ ok") and "93%" in rows["current_accuracy"]
    assert "spent (156% used)" in rows["response_time_p95_ms"]  # an hour at 5.6 s has used up a week's budget
    # worst first, the columns aligned: every row's separators at the same places
    order = [name for name in rows if name != "Metric"]
    no_data = ["availability", "error_rate", "cost_per_query"]
    assert order == ["response_time_p95_ms", "helpfulness", *no_data, "current_accuracy"]
    positions = {tuple(i for i, ch in enumerate(line) if ch == "│") for line in rows.values()}
    assert len(positions) == 1
    assert "Overall SLO Compliance: 33% (1 of 3 measured SLOs ok; 3 with no data)" in table
    assert "\nData for 14% of the window (least: availability 0%)\n```" in table
    assert context(call).startswith("Window: last 7 days · burn rate over the last 1 h · as of ")


def test_model_table_over_another_window(env: SlackEnv) -> None:
    call = answered(env, "status support-bot 30d")
    header, table = sections(call)
    assert header == "*SLO status — support-bot* (last 30 days)"
    assert "SLO Dashboard - support-bot - Last 30 Days" in table
    assert context(call).startswith("Window: last 30 days · burn rate over the last 1 h")
    # a week of samples is 23% of 30 days: enough for a budget; a day of them, 3%, is not
    assert "Data for 3% of the window (least: availability 0%)" in table
    assert "a budget is projected once 10% of the window has data" in table
    # the model is found whatever the case, and the window may come first
    assert sections(answered(env, "STATUS 12h Support-Bot"))[0] == "*SLO status — support-bot* (last 12 hours)"


def test_a_bad_window_is_refused_in_the_ack_with_an_example(env: SlackEnv) -> None:
    reply = acked(env, "status support-bot 3x")
    assert reply["text"].startswith("`3x` is not a window: write it like `7d`, `24h` or `30m`.")
    assert "Usage: `/slo status [model] [window] [chart]`" in reply["text"]
    assert "at most `90d`" in acked(env, "status support-bot 365d")["text"]
    assert "at least `1m`" in acked(env, "status 0s")["text"]
    assert "`week` is not a window" in acked(env, "status support-bot week")["text"]
    assert env.slack.calls_to("response_url") == []


def test_an_unknown_model_lists_close_matches(env: SlackEnv) -> None:
    text = acked(env, "status nosuch")["text"]
    assert text.startswith("Unknown model `nosuch`.")
    assert "Known models: " in text and "`support-bot`" in text and "`fraud-detector-v2`" in text
    assert "Did you mean: `support-bot`?" in acked(env, "status suport-bot")["text"]
    assert "Did you mean: `fraud-detector-v2`?" in acked(env, "status fraud-detector")["text"]
    assert env.slack.calls_to("response_url") == []


def test_usage_and_chart_without_a_model(env: SlackEnv) -> None:
    assert acked(env, "budget")["text"].startswith("Usage: `/slo status [model] [window] [chart]`")
    assert acked(env, "")["text"].startswith("Usage: `/slo status")
    assert acked(env, "status chart")["text"].startswith("`chart` needs a model: e.g. `/slo status ")


def test_chart_is_uploaded_to_the_channel_as_a_png(env: SlackEnv) -> None:
    call = answered(env, "status support-bot chart")
    assert call.params["text"] == f"📈 Posted the error-budget chart of `support-bot` in <#{env.channel}>."
    [url] = env.slack.calls_to("files.getUploadURLExternal")
    assert url.params["filename"] == "slo-error-budget-support-bot.png"
    [complete] = env.slack.calls_to("files.completeUploadExternal")
    assert complete.params["channel_id"] == env.channel
    [shared] = complete.params["files"]
    assert shared["title"] == "Error budget — support-bot (last 7 days)"
    content = env.slack.file_content(shared["id"])
    assert content is not None and content.startswith(PNG_MAGIC) and len(content) > 1000
    [upload] = env.slack.calls_to("upload_url")
    assert upload.params["length"] == len(content)
    [message] = env.slack.messages(env.channel)
    assert message["files"][0]["id"] == shared["id"]
    assert f"<@{ANA}>" in message["text"] and "`support-bot`" in message["text"]


def test_chart_over_a_window(env: SlackEnv) -> None:
    answered(env, "status support-bot 12h chart")
    [complete] = env.slack.calls_to("files.completeUploadExternal")
    assert complete.params["files"][0]["title"] == "Error budget — support-bot (last 12 hours)"


def test_chart_refused_by_slack_says_why(env: SlackEnv) -> None:
    env.slack.error_next("files.getUploadURLExternal", "not_in_channel")
    call = answered(env, "status support-bot chart")
    assert "I could not post the chart here (Slack said: `not_in_channel`)" in call.params["text"]
    assert "/invite @incident-bot" in call.params["text"]
    assert env.slack.calls_to("files.completeUploadExternal") == []


# --------------------------------------------------------------------------- /alerts review


def test_alerts_review_is_a_code_block_of_the_weekly_review(env: SlackEnv) -> None:
    call = answered(env, "review", command="/alerts")
    assert call.params["text"].startswith("Alert review — last 7 days (")
    [block] = sections(call)
    assert block.startswith("```\nAlert review — last 7 days (") and block.endswith("\n```")
    assert "llm_cost_runaway" in block and "Alert:action" in block


def test_alerts_review_over_a_window_and_its_usage_errors(env: SlackEnv) -> None:
    call = answered(env, "review 30d", command="/alerts")
    assert call.params["text"].startswith("Alert review — last 30 days (")
    bad = acked(env, "review 3x", command="/alerts")["text"]
    assert bad.startswith("`3x` is not a window") and "`/alerts review [window]`" in bad
    assert acked(env, "reveiw", command="/alerts")["text"].startswith("Usage: `/alerts`")
    assert acked(env, "review 7d extra", command="/alerts")["text"].startswith("Usage: `/alerts`")


# --------------------------------------------------------------------------- App Home


def test_app_home_shows_the_slo_overview(env: SlackEnv) -> None:
    assert env.home_opened(user=ANA).status_code == 200
    env.slack.wait_for("views.publish")
    view = env.slack.home_view(ANA)
    assert view is not None
    text = json.dumps(view, ensure_ascii=False)
    assert "🔴 support-bot — SLO compliance 33%" in text
    assert "✅ fraud-detector-v2 — SLO compliance 100%" in text
    assert text.index("support-bot — SLO") < text.index("fraud-detector-v2 — SLO")
