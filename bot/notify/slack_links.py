"""An alert's links (:mod:`bot.notify.links`) as Slack buttons beside its action buttons.

Slack opens a button's ``url`` in the browser and also sends the click to the app, which must
acknowledge it: :data:`LINK_ACTION` starts every link button's ``action_id`` (each distinct, as
Slack requires within a block) so :mod:`bot.slack.actions` acks them all with one listener. An
actions block holds at most :data:`ACTION_ELEMENTS` elements; links beyond that go to a context
line of ``<url|text>`` links instead of being dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block, ButtonElement

from bot.notify.links import Link
from bot.notify.slack_text import context_line, escape_mrkdwn

LINK_ACTION = "open_link"
ACTION_ELEMENTS = 25
"""Slack's limit of elements in one actions block."""
_URL_ESCAPES = (("|", "%7C"), ("<", "%3C"), (">", "%3E"), (" ", "%20"))


def with_links(buttons: Sequence[ButtonElement], links: Sequence[Link]) -> tuple[list[ButtonElement], list[Block]]:
    """``buttons`` followed by a button per link that fits, and a context line for the rest."""
    room = max(ACTION_ELEMENTS - len(buttons), 0)
    shown = [
        ButtonElement(text=link.text, url=link.url, action_id=f"{LINK_ACTION}_{index}")
        for index, link in enumerate(links[:room])
    ]
    rest = links[room:]
    line: list[Block] = [context_line(" · ".join(mrkdwn_link(link) for link in rest))] if rest else []
    return [*buttons, *shown], line


def mrkdwn_link(link: Link) -> str:
    """``<url|text>``: the text escaped, and the characters that would end the link encoded in the URL."""
    url = link.url
    for raw, encoded in _URL_ESCAPES:
        url = url.replace(raw, encoded)
    return f"<{url}|{escape_mrkdwn(link.text)}>"
