"""Slack mrkdwn text and Slack's limits: escaping, clipping, dates, and the two text blocks.

Split from :mod:`bot.notify.slack_blocks` so every builder (alert and incident messages, link
buttons, replies, commands' answers) shares one escaping and one clipping without importing the
message layouts. The rule of that module holds here: outside text goes through
:func:`escape_mrkdwn`, and every text is clipped to Slack's limit rather than refused.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import ContextBlock, HeaderBlock, MarkdownTextObject, PlainTextObject, SectionBlock

from bot.alerts.lifecycle import SYSTEM_ACTOR
from bot.safe_text import neutralise

SECTION_LIMIT = 3000
"""Slack's limits, which it enforces by refusing the whole message."""
FIELD_LIMIT = 2000
HEADER_LIMIT = 150
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
FIELDS_PER_SECTION = 10

_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")
_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))


def escape_mrkdwn(text: object) -> str:
    """Escape the three characters Slack treats as control characters (``& < >``).

    That is all Slack asks for: with them escaped, ``<!channel>``, ``<@U1>`` and ``<url|x>``
    become visible text instead of mentions or links. Bidirectional overrides and zero-width
    characters are shown as ``[U+202E]`` (:func:`bot.safe_text.neutralise`), so a label cannot
    reorder or hide what the reader sees.
    """
    out = neutralise(str(text))
    for raw, escaped in _ESCAPES:
        out = out.replace(raw, escaped)
    return out


def mention(actor: str | None) -> str:
    """A Slack user id as a mention, the bot itself as "auto-resolve", anything else as text."""
    if not actor:
        return "someone"
    if actor == SYSTEM_ACTOR:
        return "auto-resolve"
    if _USER_ID.match(actor):
        return f"<@{actor}>"
    return escape_mrkdwn(actor)


def clip(text: str, limit: int) -> str:
    """Shorten already-escaped mrkdwn to ``limit`` characters, ending in "…".

    The cut never leaves half an entity (``&am``) or half a ``<…>`` token behind, which Slack
    would render as garbage or refuse.
    """
    if len(text) <= limit:
        return text
    budget = limit - 1
    if text[:budget].count("```") % 2:
        budget -= 4  # room to close a code block we cut open, or the rest renders as code
    cut = text[:budget]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    if cut.count("```") % 2:
        cut += "\n```"
    return cut + "…"


def format_value(value: object) -> str:
    """Numbers as a person reads them (``12,000``, ``450.25``, ``0.8734``); labels unchanged."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if value != value:  # NaN is refused at ingest; never crash on one anyway
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def slack_date(moment: datetime) -> str:
    """A ``<!date>`` token (shown in each reader's time zone) with a plain UTC fallback."""
    fallback = f"{moment:%Y-%m-%d %H:%M} UTC"
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def section(mrkdwn: str, *, verbatim: bool = True) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(mrkdwn, SECTION_LIMIT), verbatim=verbatim))


def context_line(mrkdwn: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(mrkdwn, FIELD_LIMIT), verbatim=True)])


# --------------------------------------------------------------------------- runbook modal

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")


def markdown_to_mrkdwn(markdown: str) -> str:
    """Minimal Markdown → Slack mrkdwn: headings become bold lines, ``**x**`` becomes ``*x*``,
    bullets become "•", links become ``<url|text>``; fenced code is kept as is (escaped only)."""
    out: list[str] = []
    in_code = False
    for raw in markdown.splitlines():
        if raw.strip().startswith("```"):
            in_code = not in_code
            out.append("```")  # Slack ignores a language tag but would show it as text
            continue
        line = escape_mrkdwn(raw)
        if in_code:
            out.append(line)
            continue
        heading = _HEADING.match(line)
        if heading:
            out.append(f"*{heading.group(1)}*" if heading.group(1) else "")
            continue
        line = _BULLET.sub(lambda m: f"{m.group(1)}• ", line)
        line = _BOLD.sub(lambda m: f"*{m.group(1) or m.group(2)}*", line)
        out.append(_LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", line))
    return "\n".join(out)


def split_sections(mrkdwn: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Cut mrkdwn at line boundaries into chunks of at most ``limit`` characters; a code block
    that spans a cut is closed and reopened, so each section renders on its own."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    in_code = False
    room = limit - 8  # space to close and reopen a code fence

    def flush() -> None:
        nonlocal current, size
        text = "\n".join(current)
        if in_code:
            text += "\n```"
        if text.strip("`\n "):
            chunks.append(text)
        current, size = (["```"], 3) if in_code else ([], 0)

    for line in mrkdwn.splitlines():
        pieces = [line[i : i + room] for i in range(0, len(line), room)] or [""]
        for piece in pieces:
            if size + len(piece) + 1 > room:
                flush()
            current.append(piece)
            size += len(piece) + 1
        if line == "```":
            in_code = not in_code
    in_code = False
    flush()
    return chunks


def mrkdwn_section(mrkdwn: str) -> dict[str, Any]:
    """A section of already-escaped mrkdwn (at most :data:`SECTION_LIMIT` characters), as the
    answers to commands and the weekly review send it."""
    return SectionBlock(text=MarkdownTextObject(text=mrkdwn)).to_dict()


def mrkdwn_context(mrkdwn: str) -> dict[str, Any]:
    """A context line of already-escaped mrkdwn: a note under a message."""
    return ContextBlock(elements=[MarkdownTextObject(text=mrkdwn)]).to_dict()


def header_block(title: str) -> dict[str, Any]:
    """A header of plain text, cut to :data:`HEADER_LIMIT` characters."""
    return HeaderBlock(text=PlainTextObject(text=title[:HEADER_LIMIT], emoji=True)).to_dict()
