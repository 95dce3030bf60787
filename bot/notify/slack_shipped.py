"""What shipped before an incident started, as its root message and its room's card say it (pure).

The first question in an ML incident is "did a new model, prompt or dataset ship?"; the change
events (:mod:`bot.changes`) answer it, and this line puts the answer where people look.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.changes.events import Change, how_long_before
from bot.notify.links import Link, is_web_url
from bot.notify.slack_links import mrkdwn_link
from bot.notify.slack_text import escape_mrkdwn


def shipped_line(changes: Sequence[Change], opened: datetime) -> str:
    """``🚢 Shipped before it started: *prompt v42, 4 min before* (latest) · …``: the changes that may
    have caused it, the latest marked, each with its model when the incident spans several."""
    models = {c.model for c in changes}

    def told(change: Change) -> str:
        where = f" to {change.model}" if len(models) > 1 else ""
        text = f"{change.said()}{where}, {how_long_before(change, opened)}"
        return mrkdwn_link(Link(text, change.link)) if change.link and is_web_url(change.link) else escape_mrkdwn(text)

    parts = [f"*{told(changes[0])}* (latest)", *(told(c) for c in changes[1:])]
    return "🚢 Shipped before it started: " + " · ".join(parts)
