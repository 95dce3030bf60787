"""Ephemeral answers to slash commands: the :class:`Reply` value, its blocks, and how it is sent.

Shared by the commands (:mod:`bot.slack.commands`, :mod:`bot.slack.runbooks`,
:mod:`bot.slack.slo_replies`): each builds a :class:`Reply` with pure functions, and the listener
either returns it in the acknowledgement or sends it through the ``response_url`` with
:func:`respond` once the database has answered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.config.durations import parse_duration
from bot.notify.slack_text import escape_mrkdwn, mrkdwn_section, split_sections
from bot.slack import messages
from bot.slack.after_ack import AfterAck

log = logging.getLogger(__name__)

SECTION_LIMIT = 3000
"""Slack's limit on a section block's text."""
MAX_SECTIONS = 45
"""Stay under the 50 blocks of a message, leaving room for a header and a note."""
MAX_WINDOW = timedelta(days=90)
"""The longest window ``/slo status`` and ``/alerts review`` read: beyond it a command would
scan months of samples while Slack waits, and nobody keeps SLOs over a quarter in chat."""
MIN_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Reply:
    """An ephemeral answer: a plain-text fallback and optional blocks."""

    text: str
    blocks: list[dict[str, Any]] | None = None


async def respond(after_ack: AfterAck, response_url: str, reply: Reply) -> None:
    message: dict[str, Any] = {"text": reply.text, "response_type": "ephemeral", "replace_original": False}
    if reply.blocks is not None:
        message["blocks"] = reply.blocks
    try:
        await after_ack.respond(response_url, message)
    except Exception:  # an expired response_url or a Slack outage: the person retries the command
        log.warning("could not answer a slash command through its response_url", exc_info=True)


def parse_window(arg: str, usage: str) -> timedelta | Reply:
    """A window argument (``7d``, ``24h``, ``1h30m``) between :data:`MIN_WINDOW` and
    :data:`MAX_WINDOW`, else a reply saying how to write one."""
    try:
        window = parse_duration(arg)
    except ValueError:
        return Reply(messages.bad_window(arg, usage=usage))
    if window < MIN_WINDOW:
        return Reply(messages.bad_window(arg, usage=usage, reason="a window is at least `1m`, e.g. `24h` or `7d`"))
    if window > MAX_WINDOW:
        return Reply(messages.bad_window(arg, usage=usage, reason="a window is at most `90d`, e.g. `30d`"))
    return window


def sections(mrkdwn: str) -> list[dict[str, Any]]:
    """Section blocks of at most 3,000 characters (a code block cut in two is closed and reopened)."""
    chunks = split_sections(mrkdwn, SECTION_LIMIT)
    return [mrkdwn_section(chunk) for chunk in chunks]


def code_block(plain: str) -> str:
    """Plain text as a mrkdwn code block; ``& < >`` escaped, as Slack asks even inside code."""
    return f"```\n{escape_mrkdwn(plain)}\n```"
