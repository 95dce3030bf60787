"""Resolution notes from Slack: the modal that asks what caused an incident and what fixed it.

It opens two ways:

* **Resolve** on the root of an incident whose severity is in ``settings.resolution_note_required``
  (:mod:`bot.slack.actions` hands the click here): cause and fix are required, and submitting
  resolves the incident and stores the note in one transaction
  (:meth:`AlertService.resolve_incident`), so a note is never kept for a resolve that was refused;
* **Add resolution note** under the reply of a resolve that left no note (an auto-resolve, or a
  Resolve of a severity that needs none): the note alone (:meth:`IncidentReview.add_resolution_note`).

Resolve of other severities resolves at once, as before: a modal on every click would slow the
common case, and the thread still offers the note afterwards. The submission is acknowledged
first (with the field error when both fields are empty), then saved on the after-ack worker; the
person is told privately what happened.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.models.blocks import InputBlock, PlainTextInputElement, SectionBlock
from slack_sdk.models.views import View

from bot.errors import ActionRefused, ConcurrentChange
from bot.incidents.incident import Incident
from bot.notify.slack_notes import ADD_NOTE_ACTION
from bot.notify.slack_text import clip, escape_mrkdwn
from bot.slack import messages
from bot.slack.clicks import clicked, patiently, refuse, tell
from bot.slack.context import Listeners, SlackContext
from bot.slack.payloads import Click, NoteSubmission, parse_note_submission

log = logging.getLogger(__name__)

NOTE_VIEW = "resolution_note"
"""The modal's ``callback_id``."""
INPUT_LIMIT = 2000


def register(app: AsyncApp, context: SlackContext) -> None:
    notes = ResolutionNotes(context)
    app.action(ADD_NOTE_ACTION)(notes.add_note)
    app.view(NOTE_VIEW)(notes.submitted)


def note_modal(incident: Incident, *, resolve: bool, channel: str | None, required: bool = True) -> dict[str, Any]:
    """The modal: the incident named, cause and fix. ``resolve``: it resolves too, with a note that
    is ``required`` (the severity is in ``resolution_note_required``) or offered (a declared incident's
    Resolve: the postmortem and the next on-call read it)."""
    what = escape_mrkdwn(incident.title or incident.group_key)
    intro = f"*Incident #{incident.id}* · {incident.severity.value} · {what}"
    if resolve and required:
        intro += "\nThis severity needs a resolution note: the next on-call sees it when this happens again."
    elif resolve:
        intro += "\nWhat caused it, what fixed it? Optional: the postmortem and the next on-call read it."

    def field(name: str, label: str, hint: str) -> InputBlock:
        box = PlainTextInputElement(action_id=f"{name}_input", multiline=True, max_length=INPUT_LIMIT, placeholder=hint)
        return InputBlock(block_id=name, label=label, element=box, optional=not (resolve and required))

    metadata = {"incident_id": incident.id, "resolve": resolve, "channel": channel, "required": required}
    view = View(
        type="modal",
        callback_id=NOTE_VIEW,
        title="Resolve incident" if resolve else "Resolution note",
        submit="Resolve" if resolve else "Save note",
        close="Cancel",
        private_metadata=json.dumps(metadata),
        blocks=[
            SectionBlock(text=clip(intro, 3000)),
            field("cause", "What caused it?", "e.g. prompt v42 made the bot loop on tool calls"),
            field("fix", "What fixed it?", "e.g. rolled the prompt back to v41"),
        ],
    )
    return view.to_dict()


class ResolutionNotes(Listeners):
    async def add_note(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await self._hand_over(ack, body, self._open_for_note)

    async def submitted(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """Refuse an empty note in the modal itself; otherwise close it and save on the worker."""
        note = parse_note_submission(body)
        if not (note.cause or note.fix) and (note.required or not note.resolve):
            await ack(response_action="errors", errors={"cause": messages.NOTE_NEEDED})
            return
        await ack()
        await self._after_ack.submit(lambda: self._save(note))

    # ------------------------------------------------------------------ after the ack

    async def open_for_resolve(self, click: Click, incident: Incident, *, required: bool) -> None:
        """Resolve of a severity that needs a note, or of a declared incident: the modal instead of the resolve."""
        await self._open(click, incident, resolve=True, required=required)

    async def _open_for_note(self, click: Click) -> None:
        found = await clicked(self._after_ack, click, self._context.queries.incident, subject="incident", why="note")
        if found is None:
            return
        incident = found[1]
        if incident.resolution_note:
            by = incident.resolution_note.get("by") or "someone"
            await refuse(self._after_ack.client, click, messages.refused(f"{by} already wrote its resolution note."))
            return
        await self._open(click, incident, resolve=False)

    async def _open(self, click: Click, incident: Incident, *, resolve: bool, required: bool = True) -> None:
        client = self._after_ack.client
        try:  # the trigger_id expires 3 s after the click
            view = note_modal(incident, resolve=resolve, channel=click.channel, required=required)
            await client.views_open(trigger_id=click.trigger_id, view=view)
        except Exception:
            log.warning("views.open for the note of incident %s failed", incident.id, exc_info=True)
            await tell(client, click, messages.TRY_AGAIN)

    async def _save(self, note: NoteSubmission) -> None:
        """Resolve with the note, or save the note alone; tell the person either way. A resolve
        refused because the incident ended meanwhile (its alerts cleared) still keeps the note."""
        as_click = Click(NOTE_VIEW, str(note.incident_id), note.user, note.channel, None, None)
        client = self._after_ack.client
        target = note.incident_id
        if target is None:
            await refuse(client, as_click, messages.bad_button(""))
            return
        refusal = await self._incident_refusal(note.user, target, "write the resolution note of")
        if refusal is not None:
            await refuse(client, as_click, refusal)
            return
        try:
            try:
                await patiently(lambda: self._write(note, target, resolve=note.resolve), what=f"note of {target}")
            except ActionRefused:
                if not note.resolve:
                    raise
                await patiently(lambda: self._write(note, target, resolve=False), what=f"note of {target}")
        except ActionRefused as exc:
            await refuse(client, as_click, messages.refused(str(exc)))
            return
        except LookupError:
            await refuse(client, as_click, messages.incident_not_found(target))
            return
        except ConcurrentChange:
            await refuse(client, as_click, messages.INCIDENT_KEEPS_CHANGING)
            return
        except Exception:
            log.exception("the resolution note of incident %s by %s failed", target, note.user)
            await tell(client, as_click, messages.TRY_AGAIN)
            return
        log.info("resolution note of incident %s by %s saved", target, note.user)
        await tell(client, as_click, messages.note_saved(target))

    async def _write(self, note: NoteSubmission, target: int, *, resolve: bool) -> Incident:
        """Resolve and note in one transaction (the service), or the note alone (the review)."""
        write = self._context.service.resolve_incident if resolve else self._context.review.add_resolution_note
        return await self._after_ack.db(write, target, actor=note.user, cause=note.cause, fix=note.fix)
