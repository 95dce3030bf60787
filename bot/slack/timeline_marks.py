"""Marking room messages for the incident's timeline: the ⏱ (``stopwatch``) reaction and the
message shortcut **Add to timeline** (callback ``add_to_timeline``).

A mark is kept on the incident whose room the message is in (the channel is its ``room_id``), as a
``noted`` event with the message's text, author and ``ts`` (:meth:`IncidentReview.mark`). A message
is marked once, whoever marks it again and however (the ``ts`` is the key). Outside a room the
reaction is only an emoji and is ignored, while the shortcut -- asked for by name -- tells the
person privately that it works in rooms only.

A reaction event does not carry the message, so its text is read with ``conversations.history``
(``latest`` = its ``ts``, inclusive, one message), or ``conversations.replies`` for a thread reply,
which the channel's history does not hold. Bolt acknowledges the event and the shortcut at once;
the reads and the write run on the after-ack worker.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.errors import ActionRefused
from bot.incidents.incident import Incident
from bot.slack import messages
from bot.slack.clicks import patiently, tell
from bot.slack.context import Listeners, SlackContext
from bot.slack.payloads import Click, Mark, parse_message_shortcut, parse_reaction

log = logging.getLogger(__name__)

STOPWATCH = "stopwatch"
SHORTCUT = "add_to_timeline"
TEXT_LIMIT = 3000


def register(app: AsyncApp, context: SlackContext) -> None:
    marks = TimelineMarks(context)
    app.event("reaction_added")(marks.reaction_added)
    app.shortcut(SHORTCUT)(marks.shortcut)


class TimelineMarks(Listeners):
    async def reaction_added(self, event: dict[str, Any]) -> None:
        """⏱ on a message: handed to the worker (any other reaction is not ours)."""
        mark = parse_reaction(event) if event.get("reaction") == STOPWATCH else None
        if mark is not None:
            await self._after_ack.submit(lambda: self._from_reaction(mark))

    async def shortcut(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        mark = parse_message_shortcut(body)
        if mark is not None:
            await self._after_ack.submit(lambda: self._from_shortcut(mark))

    # ------------------------------------------------------------------ after the ack

    async def _from_reaction(self, mark: Mark) -> None:
        incident = await self._after_ack.read(self._context.review.room_incident, mark.channel)
        if incident is None:
            return  # an emoji in an ordinary channel
        found = await self._message(mark)
        if found is None:
            log.warning("⏱ on %s/%s: the message cannot be read; not marked", mark.channel, mark.ts)
            return
        author = mark.author or str(found.get("user") or found.get("bot_id") or "")
        await self._record(replace(mark, text=str(found.get("text") or ""), author=author), incident, answer=False)

    async def _from_shortcut(self, mark: Mark) -> None:
        incident = await self._after_ack.read(self._context.review.room_incident, mark.channel)
        if incident is None:
            await tell(self._after_ack.client, _click(mark), messages.ONLY_IN_A_ROOM)
            return
        await self._record(mark, incident, answer=True)

    async def _record(self, mark: Mark, incident: Incident, *, answer: bool) -> None:
        """Keep the mark; the shortcut's user hears how it went (a reaction is its own answer)."""
        data = {"ts": mark.ts, "author": mark.author, "channel": mark.channel}
        if mark.thread_ts:
            data["thread_ts"] = mark.thread_ts
        text = (mark.text or "")[:TEXT_LIMIT]
        write = self._context.review.mark
        said = messages.marked(incident.id or 0)
        try:
            await patiently(
                lambda: self._after_ack.db(write, mark.channel, actor=mark.user, text=text, data=data),
                what=f"timeline mark {mark.channel}/{mark.ts}",
            )
        except ActionRefused:
            said = messages.already_marked(incident.id or 0)
        except Exception:
            log.exception("marking %s/%s for the timeline of incident %s failed", mark.channel, mark.ts, incident.id)
            said = messages.TRY_AGAIN
        else:
            log.info("incident %s: %s marked message %s for the timeline", incident.id, mark.user, mark.ts)
        if answer:
            await tell(self._after_ack.client, _click(mark), said)

    async def _message(self, mark: Mark) -> dict[str, Any] | None:
        """The marked message: in the channel's history, else in a thread (a reply)."""
        client = self._after_ack.client
        try:
            page = await client.conversations_history(channel=mark.channel, latest=mark.ts, inclusive=True, limit=1)
            found = [m for m in page.get("messages") or [] if m.get("ts") == mark.ts]
            if not found:
                thread = await client.conversations_replies(channel=mark.channel, ts=mark.ts, limit=200)
                found = [m for m in thread.get("messages") or [] if m.get("ts") == mark.ts]
        except Exception:
            log.warning("reading the message %s/%s failed", mark.channel, mark.ts, exc_info=True)
            return None
        return dict(found[0]) if found else None


def _click(mark: Mark) -> Click:
    """Where to answer the person privately: the channel they marked in."""
    return Click(SHORTCUT, mark.ts, mark.user, mark.channel, None, None)
