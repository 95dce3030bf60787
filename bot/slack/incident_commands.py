"""``/incident``: declare an incident, and run it from its room.

* ``/incident declare [model] [title]`` declares the model's open incident, or a new hand-made
  one (no alerts, P2) titled ``title``, told in the channel the command was run in (a model's
  incident in the model's channel);
* in the room (found by the channel's id: ``incidents.room_id``): ``/incident update <text>``
  (said in the room and in the alert's thread), ``/incident commander @user``,
  ``/incident timeline`` (the incident's history, one line per event) and ``/incident resolve``.

Usage errors are answered in the acknowledgement; the rest is acknowledged at once and done on
the after-ack worker (:class:`~bot.slack.after_ack.AfterAck`), answered through the
``response_url``. A change goes through :class:`~bot.incident_response.IncidentResponse` and the
same ``access:`` policy as the buttons, checked against the incident's own alert channel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.config.loader import Config
from bot.errors import ActionRefused, ConcurrentChange
from bot.incident_response import IncidentResponse
from bot.incidents.incident import Incident
from bot.slack import messages
from bot.slack.context import Listeners, SlackContext
from bot.slack.payloads import Asked, Click, command_text, mentioned_user, parse_command
from bot.slack.replies import Reply, respond
from bot.slack.resolution_notes import ResolutionNotes

log = logging.getLogger(__name__)

ROOM_VERBS = ("update", "commander", "timeline", "resolve")


@dataclass(frozen=True)
class IncidentRequest:
    verb: str
    """``declare`` or one of :data:`ROOM_VERBS`."""
    model: str | None = None
    text: str = ""
    """The title (declare), the update, or the commander's user id."""


def parse_incident_args(config: Config, text: str) -> IncidentRequest | Reply:
    """The ``/incident`` grammar; anything else is a usage reply."""
    verb, _, rest = text.strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if verb == "declare":
        first, _, title = rest.partition(" ")
        if first in config.models:
            return IncidentRequest("declare", model=first, text=title.strip())
        return IncidentRequest("declare", text=rest)
    if verb == "update":
        return IncidentRequest("update", text=rest) if rest else Reply(messages.INCIDENT_USAGE)
    if verb == "commander":
        user = mentioned_user(rest)
        return IncidentRequest("commander", text=user) if user else Reply(messages.COMMANDER_USAGE)
    if verb in ("timeline", "resolve") and not rest:
        return IncidentRequest(verb)
    return Reply(messages.INCIDENT_USAGE)


def register(app: AsyncApp, context: SlackContext) -> None:
    app.command("/incident")(IncidentCommands(context).incident_command)


class IncidentCommands(Listeners):
    def __init__(self, context: SlackContext) -> None:
        super().__init__(context)
        self._rooms = context.rooms or IncidentResponse(context.service)

    async def incident_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        request = parse_incident_args(self._context.config(), command_text(command))
        if isinstance(request, Reply):
            await ack(text=request.text, blocks=request.blocks, response_type="ephemeral")
            return
        await ack()
        asked = parse_command(command)
        await self._after_ack.submit(lambda: self._run(request, asked))

    async def _run(self, request: IncidentRequest, asked: Asked) -> None:
        try:
            reply = await (
                self._declare(request, asked) if request.verb == "declare" else self._in_room(request, asked)
            )
        except ActionRefused as exc:
            reply = Reply(messages.refused(str(exc)))
        except LookupError:
            reply = Reply(messages.NOT_IN_A_ROOM)
        except ConcurrentChange:
            reply = Reply(messages.INCIDENT_KEEPS_CHANGING)
        except Exception:
            log.exception("/incident %s by %s failed", request.verb, asked.user)
            reply = Reply(messages.TRY_AGAIN)
        await respond(self._after_ack, asked.response_url, reply)

    async def _declare(self, request: IncidentRequest, asked: Asked) -> Reply:
        """Declaring acts from the channel the command was run in: ``access:`` checks that one."""
        refusal = await self._incident_refusal(asked.user, None, "declare", channel=asked.channel_id)
        if refusal is not None:
            return Reply(refusal)
        channel = None if request.model else asked.channel_id
        declare = self._rooms.declare
        done = await self._after_ack.db(
            lambda: declare(None, actor=asked.user, model=request.model, title=request.text or None, channel=channel)
        )
        return Reply(messages.declared(done.room, done.id))

    async def _in_room(self, request: IncidentRequest, asked: Asked) -> Reply:
        found = await self._after_ack.read(self._context.queries.incident_by_room, asked.channel_id or "")
        if found is None or found.id is None:
            return Reply(messages.NOT_IN_A_ROOM)
        incident_id = found.id
        if request.verb == "timeline":
            now = self._context.clock.now()
            entries = await self._after_ack.db(self._context.queries.incident_timeline, incident_id, now)
            return Reply(messages.timeline_text(entries or []))
        refusal = await self._incident_refusal(asked.user, found.id, request.verb)
        if refusal is not None:
            return Reply(refusal)
        if request.verb == "resolve" and found.severity in self._context.config().settings.resolution_note_required:
            click = Click("incident_resolve", str(incident_id), asked.user, asked.channel_id, asked.trigger_id, None)
            await ResolutionNotes(self._context).open_for_resolve(click, found, required=True)
            return Reply(messages.NOTE_FORM_OPENED)
        rooms, user = self._rooms, asked.user
        change: dict[str, Callable[[], Incident]] = {
            "update": lambda: rooms.post_update(incident_id, actor=user, text=request.text),
            "commander": lambda: rooms.take_command(incident_id, actor=user, commander=request.text),
            "resolve": lambda: rooms.resolve(incident_id, actor=user),
        }
        await self._after_ack.db(change[request.verb])
        said = {
            "update": messages.UPDATE_POSTED,
            "commander": messages.commander_taken(request.text),
            "resolve": messages.RESOLVED_FROM_ROOM,
        }
        return Reply(said[request.verb])
