"""Slack's payloads taken apart (:mod:`bot.slack.payloads`): commands, note submissions and timeline
marks; clicks are in test_pure."""

from __future__ import annotations

from bot.slack.payloads import (
    Asked,
    Mark,
    command_text,
    parse_command,
    parse_message_shortcut,
    parse_note_submission,
    parse_reaction,
)


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


# --------------------------------------------------------------------------- notes and marks


def test_a_note_submission_reads_the_inputs_and_the_bot_s_metadata_and_odd_shapes_read_as_empty() -> None:
    view = {
        "private_metadata": '{"incident_id": 7, "resolve": true, "channel": "C1"}',
        "state": {"values": {"cause": {"cause_input": {"value": " loop "}}, "fix": {"fix_input": {"value": None}}}},
    }
    note = parse_note_submission({"user": {"id": "U1"}, "view": view})
    assert (note.user, note.cause, note.fix, note.incident_id, note.resolve, note.channel) == (
        "U1",
        "loop",
        "",
        7,
        True,
        "C1",
    )
    odd = parse_note_submission({"user": "U1", "view": {"private_metadata": "{", "state": []}})
    assert (odd.user, odd.cause, odd.incident_id, odd.resolve) == ("", "", None, False)


def test_a_reaction_on_a_message_and_a_shortcut_read_as_marks_and_anything_else_as_none() -> None:
    event = {"user": "U2", "item_user": "U1", "item": {"type": "message", "channel": "C1", "ts": "1.2"}}
    assert parse_reaction(event) == Mark("U2", "C1", "1.2", "U1", None)
    assert parse_reaction({"item": {"type": "file", "file": "F1"}}) is None
    body = {"user": {"id": "U2"}, "channel": {"id": "C1"}, "message": {"ts": "1.2", "user": "U1", "text": "hi"}}
    assert parse_message_shortcut(body) == Mark("U2", "C1", "1.2", "U1", "hi")
    assert parse_message_shortcut({"channel": "C1", "message": "x"}) is None
