"""Slack's request payloads read into small values: pure, as Bolt's own parsing is.

Listeners (:mod:`bot.slack.actions`, :mod:`bot.slack.silences`, :mod:`bot.slack.commands`) read
a click or a command here and nowhere else, so a change in what Slack sends (a menu's
``selected_option``, a click from the App Home without a channel) is handled once, and the
parsing is tested without a request. What a command's words *mean* (a rule, a window) is the
command's own grammar, in its module; this one only takes the payload apart.
"""

from __future__ import annotations

import json
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
    trigger_id: str | None = None
    """For a modal the command opens (valid 3 s)."""


def parse_command(command: Mapping[str, Any]) -> Asked:
    """The asker of a slash command payload; an absent field is ``None`` (or empty)."""
    return Asked(
        user=str(command.get("user_id") or ""),
        channel_id=str(command.get("channel_id") or "") or None,
        channel_name=str(command.get("channel_name") or "") or None,
        response_url=str(command.get("response_url") or ""),
        trigger_id=str(command.get("trigger_id") or "") or None,
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
NOTE_BLOCKS = ("cause", "fix")
"""The resolution-note modal's inputs: block ``cause`` / ``fix``, each with action ``<block>_input``."""


@dataclass(frozen=True)
class NoteSubmission:
    """A submitted resolution-note modal: who, what they wrote, and what the modal was opened for."""

    user: str
    cause: str
    fix: str
    incident_id: int | None
    resolve: bool
    """Opened by Resolve (resolve and note together), else by **Add resolution note** (note only)."""
    channel: str | None
    required: bool = True
    """Whether the resolve needs a note (``resolution_note_required``); a declared incident's is optional."""


def parse_note_submission(body: Mapping[str, Any]) -> NoteSubmission:
    """Read a ``view_submission`` of the note modal; ``private_metadata`` is the JSON the bot set.
    A field of the wrong shape reads as empty (the submission is then refused, never a crash)."""
    view = _object(body.get("view"))
    values = _object(_object(view.get("state")).get("values"))
    typed = {name: _text(_object(_object(values.get(name)).get(f"{name}_input")).get("value")) for name in NOTE_BLOCKS}
    try:
        meta = _object(json.loads(_text(view.get("private_metadata")) or "{}"))
    except ValueError:
        meta = {}
    incident = meta.get("incident_id")
    return NoteSubmission(
        user=_text(_object(body.get("user")).get("id")),
        cause=typed["cause"].strip(),
        fix=typed["fix"].strip(),
        incident_id=incident if isinstance(incident, int) and not isinstance(incident, bool) else None,
        resolve=meta.get("resolve") is True,
        channel=_text(meta.get("channel")) or None,
        required=meta.get("required") is not False,
    )


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Mark:
    """A room message someone marked for the timeline (⏱ reaction or **Add to timeline**)."""

    user: str
    channel: str
    ts: str
    author: str
    text: str | None
    """The message's text when the payload carries it (a shortcut does; a reaction does not)."""
    thread_ts: str | None = None


def parse_reaction(event: Mapping[str, Any]) -> Mark | None:
    """A ``reaction_added`` event on a message, or None for anything else (a file, a bad shape)."""
    item = _object(event.get("item"))
    channel, ts = _text(item.get("channel")), _text(item.get("ts"))
    if item.get("type") != "message" or not (channel and ts):
        return None
    return Mark(_text(event.get("user")), channel, ts, _text(event.get("item_user")), None)


def parse_message_shortcut(body: Mapping[str, Any]) -> Mark | None:
    """A ``message_action`` payload (the message shortcut), or None without a channel or message."""
    message = _object(body.get("message"))
    channel = _text(_object(body.get("channel")).get("id"))
    ts = _text(message.get("ts")) or _text(body.get("message_ts"))
    if not (message and channel and ts):
        return None
    return Mark(
        user=_text(_object(body.get("user")).get("id")),
        channel=channel,
        ts=ts,
        author=_text(message.get("user")) or _text(message.get("bot_id")),
        text=_text(message.get("text")),
        thread_ts=_text(message.get("thread_ts")) or None,
    )
