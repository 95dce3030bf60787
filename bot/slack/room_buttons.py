"""The room's buttons and the **Declare incident** shortcut.

* **Declare incident** on the root message (``incident_declare``) and the message shortcut
  ``declare_incident``: on an incident's root it declares that incident (found by the message's
  channel and ts), on any other message a new hand-made incident titled from the message;
* the card's **Take commander** (the clicker leads) and **Post update** (a modal with one text
  input; its submission posts the update in the room and the alert's thread). The card's
  **Resolve** and **Runbook** are the root's own buttons (:mod:`bot.slack.actions`).

Each listener acks first and works on the after-ack worker; a change passes the same ``access:``
check as Acknowledge and Resolve (the incident's alert channel), and a refusal ("Already declared
by … : the room is #…") is told to the person alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.errors import ActionRefused, ConcurrentChange
from bot.incident_response import IncidentResponse
from bot.incidents.incident import Incident
from bot.notify.slack_room_lines import (
    DECLARE_ACTION,
    DECLARE_SHORTCUT,
    POST_UPDATE_ACTION,
    TAKE_COMMAND_ACTION,
    UPDATE_BLOCK,
    UPDATE_INPUT,
    UPDATE_MODAL,
    update_modal,
)
from bot.slack import messages
from bot.slack.actions import AlertButtons
from bot.slack.clicks import patiently, refuse, tell
from bot.slack.context import SlackContext
from bot.slack.payloads import Click, Shortcut, alert_id_of, parse_shortcut, view_value

log = logging.getLogger(__name__)

TITLE_FROM_MESSAGE = 150
"""A hand-made incident declared on a message is titled with its first line, this long at most."""


def register(app: AsyncApp, context: SlackContext) -> None:
    buttons = RoomButtons(context)
    app.action(DECLARE_ACTION)(buttons.declare)
    app.action(TAKE_COMMAND_ACTION)(buttons.take_command)
    app.action(POST_UPDATE_ACTION)(buttons.post_update)
    app.view(UPDATE_MODAL)(buttons.update_submitted)
    app.shortcut(DECLARE_SHORTCUT)(buttons.declare_shortcut)


class RoomButtons(AlertButtons):
    """Shares :class:`AlertButtons`' access check; the changes go through :class:`IncidentResponse`."""

    def __init__(self, context: SlackContext) -> None:
        super().__init__(context)
        self._rooms = context.rooms or IncidentResponse(context.service)

    # ------------------------------------------------------------------ listeners

    async def declare(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await self._hand_over(ack, body, lambda c: self._change(c, "declare", self._declared))

    async def take_command(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await self._hand_over(ack, body, lambda c: self._change(c, "take command of", self._commanding))

    async def post_update(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await self._hand_over(ack, body, self._open_update)

    async def update_submitted(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """The modal closes at once; the update is posted (or the person told why not) after."""
        await ack()
        view = body.get("view") or {}
        click = Click(
            action_id=UPDATE_MODAL,
            value=str(view.get("private_metadata") or ""),
            user=str((body.get("user") or {}).get("id", "")),
            channel=None,  # a modal has no channel: the person is answered in a DM
            trigger_id=None,
            message_ts=None,
        )
        text = view_value(view, UPDATE_BLOCK, UPDATE_INPUT)
        await self._after_ack.submit(lambda: self._change(click, "post an update on", self._updated(text)))

    async def declare_shortcut(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        shortcut = parse_shortcut(body)
        await self._after_ack.submit(lambda: self._declare_on_message(shortcut))

    # ------------------------------------------------------------------ after the ack

    def _declared(self, incident_id: int, user: str) -> tuple[Incident, str]:
        done = self._rooms.declare(incident_id, actor=user)
        return done, messages.declared(done.room, done.id)

    def _commanding(self, incident_id: int, user: str) -> tuple[Incident, str]:
        return self._rooms.take_command(incident_id, actor=user), messages.commander_taken(user)

    def _updated(self, text: str) -> Callable[[int, str], tuple[Incident, str]]:
        def post(incident_id: int, user: str) -> tuple[Incident, str]:
            return self._rooms.post_update(incident_id, actor=user, text=text), messages.UPDATE_POSTED

        return post

    async def _change(
        self,
        click: Click,
        verb: str,
        change: Callable[[int, str], tuple[Incident, str]],
        *,
        channel_of: Callable[[int], str | None] | None = None,
    ) -> None:
        """Check who may (``access:``, against the incident's alert channel, or ``channel_of``'s for
        a new incident), apply ``change`` through the use case, and tell the person what happened."""
        client = self._after_ack.client
        incident_id = alert_id_of(click.value)
        if incident_id is None:
            await refuse(client, click, messages.bad_button(click.value))
            return
        find = channel_of or self._context.queries.incident_channel
        if not await self._allowed(click, find, incident_id, verb=verb, what="incident"):
            return
        try:
            _, said = await patiently(
                lambda: self._after_ack.db(change, incident_id, click.user), what=f"{verb} incident {incident_id}"
            )
        except ActionRefused as exc:
            await refuse(client, click, messages.refused(str(exc)))
            return
        except LookupError:
            await refuse(client, click, messages.incident_not_found(incident_id))
            return
        except ConcurrentChange:
            await refuse(client, click, messages.INCIDENT_KEEPS_CHANGING)
            return
        except Exception:
            log.exception("%s incident %s by %s failed", verb, incident_id, click.user)
            await tell(client, click, messages.TRY_AGAIN)
            return
        await tell(client, click, said)

    async def _open_update(self, click: Click) -> None:
        incident_id = alert_id_of(click.value)
        if incident_id is None:
            await refuse(self._after_ack.client, click, messages.bad_button(click.value))
            return
        try:  # the trigger_id expires 3 s after the click: nothing slow may come before this call
            await self._after_ack.client.views_open(trigger_id=click.trigger_id, view=update_modal(incident_id))
        except Exception:
            log.warning("views.open for an update of incident %s failed", incident_id, exc_info=True)
            await tell(self._after_ack.client, click, messages.TRY_AGAIN)

    async def _declare_on_message(self, shortcut: Shortcut) -> None:
        """On a root: that incident. On any other message: a new one, titled from the message."""
        click = Click(DECLARE_SHORTCUT, "", shortcut.user, shortcut.channel, shortcut.trigger_id, shortcut.message_ts)
        try:
            found = await self._after_ack.read(
                self._context.queries.incident_by_message, shortcut.channel or "", shortcut.message_ts or ""
            )
        except Exception:
            log.exception("finding the incident of message %s failed", shortcut.message_ts)
            await tell(self._after_ack.client, click, messages.TRY_AGAIN)
            return
        if found is not None:
            await self._change(replace(click, value=str(found.id)), "declare", self._declared)
            return
        title = (shortcut.text.strip().splitlines() or ["Declared from a message"])[0][:TITLE_FROM_MESSAGE]
        channel = shortcut.channel

        def new(_incident_id: int, user: str) -> tuple[Incident, str]:
            done = self._rooms.declare(None, actor=user, title=title, channel=channel)
            return done, messages.declared(done.room, done.id)

        # a new incident: the channel the message is in is the one its members act from
        await self._change(replace(click, value="0"), "declare", new, channel_of=lambda _id: channel)
