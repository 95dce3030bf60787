"""Slack's request payloads read into small values: pure, as Bolt's own parsing is.

Listeners (:mod:`bot.slack.actions`, :mod:`bot.slack.silences`, :mod:`bot.slack.commands`) read
a click or a command here and nowhere else, so a change in what Slack sends (a menu's
``selected_option``, a click from the App Home without a channel) is handled once, and the
parsing is tested without a request. What a command's words *mean* (a rule, a window) is the
command's own grammar, in its module; this one only takes the payload apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MENU_VERBS = ("acknowledge", "resolve", "runbook")
"""What an alert's overflow menu offers (option values ``<verb>:<alert id>``)."""


@dataclass(frozen=True)
class Click:
    """The parts of a ``block_actions`` payload a button handler needs."""

    action_id: str
    value: str
    user: str
    channel: str | None
    trigger_id: str | None
    message_ts: str | None


def parse_click(body: dict[str, Any]) -> Click:
    """Read a button click or an overflow menu choice (its value is the chosen option's); clicks
    from the App Home carry no channel."""
    action = body["actions"][0]
    channel = body.get("channel") or {}
    container = body.get("container") or {}
    chosen = action.get("selected_option")
    value = chosen.get("value", "") if isinstance(chosen, dict) else action.get("value", "")
    return Click(
        action_id=str(action.get("action_id", "")),
        value=str(value),
        user=str((body.get("user") or {}).get("id", "")),
        channel=channel.get("id") or container.get("channel_id"),
        trigger_id=body.get("trigger_id"),
        message_ts=container.get("message_ts"),
    )


def alert_id_of(value: str) -> int | None:
    """The alert (or incident) id a button carries (``str(alert.id)``), or None for anything else."""
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def menu_choice(value: str) -> tuple[str, int] | None:
    """``("resolve", 7)`` from an alert menu's ``resolve:7``, or None for anything else."""
    verb, _, rest = value.partition(":")
    alert_id = alert_id_of(rest)
    return (verb, alert_id) if verb in MENU_VERBS and alert_id is not None else None


@dataclass(frozen=True)
class Asked:
    """Who ran a slash command, where, and where to answer."""

    user: str
    channel_id: str | None
    channel_name: str | None
    response_url: str


def parse_command(command: Mapping[str, Any]) -> Asked:
    """The asker of a slash command payload; an absent field is ``None`` (or empty)."""
    return Asked(
        user=str(command.get("user_id") or ""),
        channel_id=str(command.get("channel_id") or "") or None,
        channel_name=str(command.get("channel_name") or "") or None,
        response_url=str(command.get("response_url") or ""),
    )


def command_text(command: Mapping[str, Any]) -> str:
    """The words after the command (``/silence`` *latency_spike 1h*)."""
    return str(command.get("text") or "")


@dataclass(frozen=True)
class Shortcut:
    """A message shortcut (``message_action``): who ran it on which message."""

    callback_id: str
    user: str
    channel: str | None
    message_ts: str | None
    text: str
    trigger_id: str | None


def parse_shortcut(body: Mapping[str, Any]) -> Shortcut:
    message = body.get("message") or {}
    return Shortcut(
        callback_id=str(body.get("callback_id") or ""),
        user=str((body.get("user") or {}).get("id", "")),
        channel=(body.get("channel") or {}).get("id"),
        message_ts=str(message.get("ts") or "") or None,
        text=str(message.get("text") or ""),
        trigger_id=body.get("trigger_id"),
    )


_USER_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")


def mentioned_user(word: str) -> str | None:
    """The user id of ``<@U123|ana>`` (how Slack escapes an @mention in a command), or None."""
    found = _USER_MENTION.match(word.strip())
    return found.group(1) if found else None


def view_value(view: Mapping[str, Any], block_id: str, action_id: str) -> str:
    """A modal's submitted text input (``view.state.values[block][action].value``), or ``""``."""
    values = ((view.get("state") or {}).get("values") or {}).get(block_id) or {}
    return str((values.get(action_id) or {}).get("value") or "")
