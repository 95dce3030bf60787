"""What the incident's messages say about its room: the action ids of the room's buttons, the
**Declare incident** button, and the line naming the room, who declared and who commands.

Apart from :mod:`bot.notify.slack_incident` (the root) and :mod:`bot.notify.slack_room_card`
(the card pinned in the room) because both show them, and each message module stays small.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ButtonElement, InputBlock, PlainTextInputElement, PlainTextObject
from slack_sdk.models.views import View

from bot.incidents.incident import Incident
from bot.notify.slack_text import escape_mrkdwn, mention

DECLARE_ACTION = "incident_declare"
"""The root's **Declare incident** button (value: the incident id)."""
TAKE_COMMAND_ACTION = "room_take_command"
POST_UPDATE_ACTION = "room_post_update"
"""The room card's buttons (value: the incident id); its **Resolve** is the root's ``incident_resolve``."""
DECLARE_SHORTCUT = "declare_incident"
"""The message shortcut's callback id: on a root it declares that incident, elsewhere a new one."""
UPDATE_MODAL = "room_update_modal"
"""The callback id of the **Post update** modal; its private metadata is the incident id."""


def declare_button(incident: Incident) -> list[ButtonElement]:
    """**Declare incident** while the incident is open and has no room."""
    if incident.declared_at is not None or not incident.state.is_open:
        return []
    return [ButtonElement(text="Declare incident", action_id=DECLARE_ACTION, value=str(incident.id), style="danger")]


def declared_line(incident: Incident) -> str | None:
    """``🚨 Declared by @ana at 14:02 UTC · room #inc-… · commander @ben``, once declared."""
    if incident.declared_at is None:
        return None
    room = f"<#{incident.room_id}>" if incident.room_id else f"#{escape_mrkdwn(incident.room or '')} (being created)"
    line = f"🚨 Declared by {mention(incident.declared_by)} at {incident.declared_at:%H:%M} UTC · room {room}"
    return line + f" · commander {mention(incident.commander)}" if incident.commander else line


UPDATE_BLOCK = "update"
UPDATE_INPUT = "text"
UPDATE_LIMIT = 2500


def update_modal(incident_id: int) -> dict[str, Any]:
    """The **Post update** modal: one text input; its submission names the incident in ``private_metadata``."""
    field = PlainTextInputElement(action_id=UPDATE_INPUT, multiline=True, max_length=UPDATE_LIMIT)
    view = View(
        type="modal",
        callback_id=UPDATE_MODAL,
        private_metadata=str(incident_id),
        title=PlainTextObject(text="Post update"),
        submit=PlainTextObject(text="Post"),
        close=PlainTextObject(text="Cancel"),
        blocks=[InputBlock(block_id=UPDATE_BLOCK, label=PlainTextObject(text="What is happening?"), element=field)],
    )
    return view.to_dict()
