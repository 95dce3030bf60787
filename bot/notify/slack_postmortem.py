"""The postmortem draft in the incident's room: a short summary message, the Markdown file (and the
metric charts) in its thread. Kind :data:`POSTMORTEM`, enqueued when an incident with a room
resolves (:mod:`bot.recording`).

The outbox row only names the incident: the draft is computed when the row is delivered, from the
database as it then is (:class:`Drafts`, given by the composition root: the gatherer lives above
the notifiers, in :mod:`bot.incident_review`), so a retry an hour later includes a resolution note
written meanwhile.

Sent once: the summary goes first, carrying metadata that names the incident and the row; the
files go into its thread. A retry (the earlier attempt may have reached Slack) looks for that
summary in the room's history, and for the Markdown file in its thread, and only sends what is
missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from bot.errors import DeliveryError
from bot.notify.notifier import Notification
from bot.notify.slack_api import Location, SlackPoster, find_in_history, metadata_names
from bot.notify.slack_notes import reply_with_note_button

log = logging.getLogger(__name__)

POSTMORTEM = "incident.postmortem"
POSTMORTEM_EVENT = "incident_bot_postmortem"
LOOKBACK = timedelta(minutes=5)


@dataclass(frozen=True)
class PostmortemDraft:
    """What is posted: the summary (mrkdwn), the Markdown file, and charts by file name."""

    incident_id: int
    room_id: str | None
    resolved_at: datetime | None
    filename: str
    markdown: str
    summary: str
    charts: Mapping[str, bytes] = field(default_factory=dict)
    needs_note: bool = False
    """Nobody wrote a resolution note yet: the summary offers **Add resolution note**."""


Drafts = Callable[[int], PostmortemDraft | None]
"""The draft of an incident (``None``: no such incident)."""


class PostmortemMessages(SlackPoster):
    """The part of :class:`bot.notify.slack.SlackNotifier` that posts postmortem drafts."""

    drafts: Drafts | None = None
    """Set by the composition root (:func:`bot.app.default_notifiers`); without it the rows fail."""

    def _postmortem(self, note: Notification) -> None:
        """Post the summary and upload the files in its thread, each once. Raises DeliveryError."""
        incident_id = note.payload.get("incident_id")
        if self.drafts is None or not isinstance(incident_id, int):
            raise DeliveryError(f"outbox row {note.id}: no postmortem drafts here, or no incident", retryable=False)
        draft = self.drafts(incident_id)
        if draft is None or not draft.room_id:
            raise DeliveryError(f"incident {incident_id} has no room for its postmortem", retryable=False)
        where = self._earlier_summary(draft) if note.attempts > 0 else None
        if where is None:
            payload = {"incident_id": incident_id, "outbox_id": note.id}
            metadata = {"event_type": POSTMORTEM_EVENT, "event_payload": payload}
            blocks = reply_with_note_button(draft.summary, incident_id) if draft.needs_note else None
            where = self._post(
                draft.room_id, text=draft.summary, blocks=blocks, metadata=metadata, what="postmortem summary"
            )
        elif self._file_in_thread(where, draft.filename):
            log.info("postmortem of incident %s is already in %s; not uploading again", incident_id, where[0])
            return
        self._upload(where, draft)

    def _earlier_summary(self, draft: PostmortemDraft) -> Location | None:
        """The summary an earlier attempt posted in the room, found by its metadata."""
        channel = draft.room_id or ""
        oldest = (draft.resolved_at or datetime.fromtimestamp(0, UTC)) - LOOKBACK
        ours = partial(metadata_names, event_type=POSTMORTEM_EVENT, incident_id=draft.incident_id)
        found = find_in_history(self._client, channel, oldest=oldest, match=ours, caller=self._call)
        return (channel, str(found["ts"])) if found is not None else None

    def _file_in_thread(self, where: Location, filename: str) -> bool:
        request = partial(self._client.conversations_replies, channel=where[0], ts=where[1], limit=200)
        messages: list[dict[str, Any]] = self._call("conversations.replies", request).get("messages") or []
        return any(f.get("name") == filename for m in messages for f in (m.get("files") or []))

    def _upload(self, where: Location, draft: PostmortemDraft) -> None:
        """The Markdown file and the charts, shared in one message of the summary's thread."""
        title = f"Postmortem draft #{draft.incident_id}"
        uploads: list[dict[str, Any]] = [{"content": draft.markdown, "filename": draft.filename, "title": title}]
        uploads += [{"content": png, "filename": name, "title": name} for name, png in draft.charts.items()]
        upload = partial(self._client.files_upload_v2, file_uploads=uploads, channel=where[0], thread_ts=where[1])
        self._call("files.upload", upload)
        log.info("postmortem of incident %s uploaded to %s", draft.incident_id, where[0])
