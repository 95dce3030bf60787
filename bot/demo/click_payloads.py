"""What Slack sends when someone clicks in the sandbox: the clicked element found in a message's
blocks, and the ``actions[0]`` of the ``block_actions`` payload built from it. Pure.

The sandbox's browser page (:mod:`bot.demo.sandbox_ui`) clicks on the messages the bot posted;
these payloads are Slack's inbound shape (echoing the element), not Block Kit the bot builds.
"""

from __future__ import annotations

import time
from typing import Any

JsonDict = dict[str, Any]


def find_button(blocks: list[JsonDict], action_id: str, value: str) -> JsonDict | None:
    """The clicked button (with its block's ``block_id``): Slack echoes its text, value and style.
    For an overflow menu, ``value`` names the option chosen."""
    for block in blocks:
        elements = block.get("elements") if block.get("type") == "actions" else [block.get("accessory")]
        for element in elements or []:
            if not isinstance(element, dict) or element.get("action_id") != action_id:
                continue
            if element.get("type") == "overflow":
                options = [o for o in element.get("options") or [] if isinstance(o, dict)]
                chosen = next((o for o in options if str(o.get("value", "")) == value), None)
                if chosen is not None:
                    return {**element, "block_id": block.get("block_id", ""), "selected_option": chosen}
                continue
            if not value or str(element.get("value", "")) == value:
                return {**element, "block_id": block.get("block_id", "")}
    return None


def action_payload(element: JsonDict, action_id: str, *, value: str, block_id: str) -> JsonDict:
    """The ``actions[0]`` of a ``block_actions`` payload, as Slack sends it for a button or an overflow menu."""
    common = {
        "action_id": action_id,
        "block_id": block_id or element.get("block_id", ""),
        "action_ts": f"{time.time():.6f}",
    }
    if element.get("type") == "overflow":
        return {"type": "overflow", **common, "selected_option": element["selected_option"]}
    return {
        "type": "button",
        **common,
        "text": element.get("text", {"type": "plain_text", "text": action_id}),
        "value": element.get("value", value),
        **({"style": element["style"]} if element.get("style") else {}),
    }


def message_shortcut(
    callback_id: str, *, user: str, team: str, channel: str, message: JsonDict, response_url: str, trigger_id: str
) -> JsonDict:
    """A ``message_action`` payload: what Slack sends when someone runs a message shortcut
    (**Declare incident**, **Add to timeline**) on ``message`` in ``channel``."""
    return {
        "type": "message_action",
        "callback_id": callback_id,
        "action_ts": f"{time.time():.6f}",
        "team": {"id": team, "domain": "emulated"},
        "user": {"id": user, "username": user.lower(), "team_id": team},
        "channel": {"id": channel},
        "message_ts": message.get("ts"),
        "message": {"type": "message", **message},
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
