"""Slack's payloads taken apart (:mod:`bot.slack.payloads`): commands; clicks are in test_pure."""

from __future__ import annotations

from bot.slack.payloads import Asked, command_text, parse_command


def test_a_command_names_its_asker_where_and_where_to_answer() -> None:
    command = {
        "user_id": "U1",
        "channel_id": "C0ML",
        "channel_name": "ml-alerts",
        "response_url": "https://hooks.slack.test/r/1",
        "text": "latency_spike 1h",
    }
    assert parse_command(command) == Asked("U1", "C0ML", "ml-alerts", "https://hooks.slack.test/r/1")
    assert command_text(command) == "latency_spike 1h"


def test_missing_fields_are_none_or_empty() -> None:
    assert parse_command({}) == Asked("", None, None, "")
    assert command_text({"text": None}) == ""
