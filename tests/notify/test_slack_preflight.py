"""``serve`` warns at start, once per alert channel, when the bot cannot read the channel (its
exactly-once recovery reads channel history): checked against the Slack Web API emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config.loader import Config, load_config
from bot.notify.slack_api import make_client
from bot.notify.slack_preflight import (
    NEEDED_SCOPES,
    alert_channels,
    unreadable_channels,
    warn_missing_scopes,
    warn_unreadable_channels,
)
from bot.settings import Settings
from tests.emulators.slack_api import GRANTED_SCOPES, SlackEmulator

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    with SlackEmulator() as running:
        yield running


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(REPO)


def test_alert_channels_are_every_channel_the_configuration_posts_to(config: Config) -> None:
    assert alert_channels(config) == ["#llm-alerts", "#ml-alerts"]
    rule = config.rules[0].model_copy(update={"channel": "C0ABCDEF1"})
    quiet = config.routing.model_copy(update={"quiet_channel": "#after-hours"})
    changed = replace(config, rules=(rule, *config.rules[1:]), routing=quiet)
    assert alert_channels(changed) == ["#after-hours", "#llm-alerts", "#ml-alerts", "C0ABCDEF1"]


def test_one_problem_per_channel_it_cannot_find_or_read(emulator: SlackEmulator) -> None:
    emulator.channel_id("#ml-alerts"), emulator.channel_id("#llm-alerts")  # known to conversations.list
    emulator.error_next("conversations.history", "not_in_channel")  # the first channel read: #llm-alerts
    client = make_client("xoxb-test", base_url=emulator.base_url)

    problems = unreadable_channels(client, ["#llm-alerts", "#ml-alerts", "#private-team"])

    assert list(problems) == ["#llm-alerts", "#private-team"]
    assert "not_in_channel" in problems["#llm-alerts"] and "/invite @incident-bot" in problems["#llm-alerts"]
    assert "cannot see it" in problems["#private-team"]
    read = [c.params["channel"] for c in emulator.calls_to("conversations.history")]
    assert read == [emulator.channel_id("#llm-alerts"), emulator.channel_id("#ml-alerts")]


def test_a_slow_slack_never_holds_start_up_past_the_budget(emulator: SlackEmulator) -> None:
    emulator.channel_id("#ml-alerts"), emulator.channel_id("#llm-alerts")
    emulator.delay_next("conversations.history", 2.0)
    client = make_client("xoxb-test", base_url=emulator.base_url, timeout=0.2)
    started = time.monotonic()

    problems = unreadable_channels(client, ["#llm-alerts", "#ml-alerts"], budget=0.1)

    assert time.monotonic() - started < 1.5
    assert problems["#llm-alerts"].startswith("not checked: Slack conversations.history: no answer")
    assert problems["#ml-alerts"] == "not checked: Slack did not answer the other checks within 0.1 s"


def test_one_listing_finds_every_name_and_a_slow_one_leaves_all_unchecked(emulator: SlackEmulator) -> None:
    emulator.channel_id("#ml-alerts"), emulator.channel_id("#llm-alerts")
    client = make_client("xoxb-test", base_url=emulator.base_url, timeout=0.2)
    assert unreadable_channels(client, ["#llm-alerts", "#ml-alerts", "C0ABCDEF1"]) == {}
    assert len(emulator.calls_to("conversations.list")) == 1

    emulator.delay_next("conversations.list", 2.0)
    problems = unreadable_channels(client, ["#llm-alerts", "#ml-alerts"])
    assert list(problems) == ["#llm-alerts", "#ml-alerts"]
    assert all(p.startswith("not checked: Slack conversations.list: no answer") for p in problems.values())


def test_without_a_slack_token_nothing_is_checked(emulator: SlackEmulator, config: Config) -> None:
    settings = Settings(slack_bot_token=None, slack_api_url=emulator.base_url)
    assert warn_unreadable_channels(settings, config) == {}
    token = Settings(slack_bot_token=SecretStr("xoxb-test"), slack_api_url=emulator.base_url)
    assert set(warn_unreadable_channels(token, config)) == {"#llm-alerts", "#ml-alerts"}  # never named: unseen
    assert emulator.calls_to("conversations.list")


def test_the_warning_says_where_alerts_for_the_channel_go_meanwhile(
    emulator: SlackEmulator, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.channel_id("#ml-alerts")  # #llm-alerts is never named: the bot cannot see it
    token = Settings(slack_bot_token=SecretStr("xoxb-test"), slack_api_url=emulator.base_url)
    assert set(warn_unreadable_channels(token, config)) == {"#llm-alerts"}
    [warning] = [r.getMessage() for r in caplog.records if "alert channel" in r.getMessage()]
    assert warning.startswith("alert channel #llm-alerts: the bot cannot see it")
    assert "go to #ml-alerts instead" in warning


def test_serve_warns_at_start_for_the_channel_it_cannot_read(emulator: SlackEmulator, tmp_path: Path) -> None:
    emulator.channel_id("#ml-alerts"), emulator.channel_id("#llm-alerts")
    emulator.error_next("conversations.history", "not_in_channel")
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "s3cret",
        "SLACK_API_URL": emulator.base_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "BOT_CONFIG_DIR": str(REPO),
    }
    for name in ("SLACK_APP_TOKEN", "PAGERDUTY_ROUTING_KEY", "PROMETHEUS_URL"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the warnings come before uvicorn says it is running
            lines.append(line)
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    warnings = [line for line in lines if "alert channel" in line]
    assert len(warnings) == 1, "".join(lines)
    assert "#llm-alerts" in warnings[0] and "not_in_channel" in warnings[0] and "exactly-once" in warnings[0]


def test_serve_names_the_scopes_the_token_lacks_and_what_they_are_for(
    emulator: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(slack_bot_token=SecretStr("xoxb-test"), slack_api_url=emulator.base_url)
    assert warn_missing_scopes(settings) == {}, "the emulator grants the manifest's scopes"
    emulator.scopes = [s for s in emulator.scopes if s not in ("channels:manage", "pins:write")]
    with caplog.at_level("WARNING", logger="bot.notify.slack_preflight"):
        missing = warn_missing_scopes(settings)
    assert set(missing) == {"channels:manage", "pins:write"}
    [line] = {r.getMessage() for r in caplog.records if r.name == "bot.notify.slack_preflight"}
    assert "channels:manage (creating incident rooms" in line and "pins:write (pinning the incident card" in line


def test_every_scope_the_bot_needs_is_in_the_manifest() -> None:
    import yaml

    manifest = yaml.safe_load((REPO / "manifest.yaml").read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == set(NEEDED_SCOPES) == set(GRANTED_SCOPES)
    assert "/incident" in [c["command"] for c in manifest["features"]["slash_commands"]]
    assert {s["callback_id"] for s in manifest["features"]["shortcuts"]} == {"declare_incident", "add_to_timeline"}
    assert "reaction_added" in manifest["settings"]["event_subscriptions"]["bot_events"]
