"""The weekly alert review as a Slack message (pure): a header and the review as a code block.

The notifier (:mod:`bot.notify.slack`) posts it once, to ``payload["channel"]``; its metadata
(:data:`REVIEW_EVENT`, naming the outbox row) lets a retry find an earlier post in the history.
"""

from __future__ import annotations

from typing import Any

from bot.notify.slack_text import escape_mrkdwn, header_block, mrkdwn_context, mrkdwn_section, split_sections

REVIEW = "review.weekly"
"""The weekly alert review's kind (``bot.review.weekly.KIND``; not imported: review depends on notify)."""
REVIEW_EVENT = "incident_bot_review"
REVIEW_SECTIONS = 45
"""Sections of the review message: a header and a note fit beside them within Slack's 50 blocks."""


def review_blocks(title: str, body: str) -> list[dict[str, Any]]:
    """The review message: a header, the text as a code block in sections of at most 3,000
    characters, and a note if it is longer than one message can hold."""
    chunks = split_sections(f"```\n{escape_mrkdwn(body)}\n```")
    blocks = [header_block(title), *(mrkdwn_section(chunk) for chunk in chunks[:REVIEW_SECTIONS])]
    if len(chunks) > REVIEW_SECTIONS:
        note = "_The review is longer than one Slack message; `incident-bot alerts review` prints it all._"
        blocks.append(mrkdwn_context(note))
    return blocks
