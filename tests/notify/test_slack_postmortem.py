"""The postmortem draft in the incident's room, against the Slack emulator: enqueued at resolve in
the resolve's transaction, posted as a summary with the Markdown file in its thread, and sent once
when a retry finds an earlier attempt's summary (or its file) already there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.errors import DeliveryError
from bot.notify.notifier import Notification
from bot.notify.slack import SlackNotifier, make_client
from bot.notify.slack_notes import ADD_NOTE_ACTION
from bot.notify.slack_postmortem import POSTMORTEM, POSTMORTEM_EVENT
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow
from tests.emulators.slack_api import SlackEmulator
from tests.review.incident_world import ROOM_ID, World, build_world, resolve


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


@pytest.fixture
def slack(world: World) -> Iterator[SlackEmulator]:
    with SlackEmulator(clock=lambda: world.clock.now().timestamp()) as emulator:
        yield emulator


def notifier(world: World, slack: SlackEmulator) -> SlackNotifier:
    client = make_client("xoxb-test", base_url=slack.base_url, timeout=5)
    sent = SlackNotifier(client, engine=world.engine, config=world.service._config, clock=world.clock)
    sent.drafts = world.review.draft
    return sent


def postmortem_rows(world: World) -> list[OutboxRow]:
    with open_session(world.engine) as s:
        return list(s.exec(select(OutboxRow).where(OutboxRow.kind == POSTMORTEM)).all())


def attempt(row: OutboxRow, attempts: int) -> Notification:
    assert row.id is not None
    return Notification(row.id, row.channel, row.kind, None, dict(row.payload), attempts=attempts)


def test_a_resolve_with_a_room_enqueues_one_postmortem_row_naming_the_incident(world: World) -> None:
    assert postmortem_rows(world) == []
    resolve(world)

    (row,) = postmortem_rows(world)
    assert (row.channel, row.incident_id, row.payload) == ("slack", world.incident_id, {"incident_id": row.incident_id})
    assert row.idempotency_key == f"slack:postmortem:{world.incident_id}"


def test_an_incident_without_a_room_leaves_no_postmortem_row(tmp_path: Path) -> None:
    world = build_world(tmp_path, room=False)
    resolve(world)
    assert postmortem_rows(world) == []


def test_the_room_gets_a_summary_and_the_markdown_in_its_thread(world: World, slack: SlackEmulator) -> None:
    resolve(world)
    (row,) = postmortem_rows(world)

    notifier(world, slack).send(attempt(row, 0))

    (summary,) = slack.messages(ROOM_ID)
    assert summary["text"].startswith(f"📝 *Postmortem draft* for incident #{world.incident_id}")
    assert summary["metadata"]["event_type"] == POSTMORTEM_EVENT
    thread = slack.thread(ROOM_ID, summary["ts"])
    files = [f for message in thread[1:] for f in message.get("files", [])]
    assert files[0]["name"] == f"postmortem-incident-{world.incident_id}.md"
    markdown = slack.file_content(files[0]["id"]) or b""
    assert markdown.startswith(b"# Postmortem draft") and b"29.8% of its 7-day budget" in markdown


def test_a_retry_after_the_upload_failed_uploads_once_under_the_first_summary(
    world: World, slack: SlackEmulator
) -> None:
    resolve(world)
    (row,) = postmortem_rows(world)
    sender = notifier(world, slack)
    slack.error_next("files.completeUploadExternal", "internal_error")
    with pytest.raises(DeliveryError):
        sender.send(attempt(row, 0))
    assert len(slack.messages(ROOM_ID)) == 1  # the summary went out; its file did not

    sender.send(attempt(row, 1))
    sender.send(attempt(row, 2))  # a third attempt (the outcome of the second was lost) finds both

    (summary,) = slack.messages(ROOM_ID)
    shared = [f["name"] for m in slack.thread(ROOM_ID, summary["ts"])[1:] for f in m.get("files", [])]
    assert shared.count(f"postmortem-incident-{world.incident_id}.md") == 1


def test_a_postmortem_without_a_note_offers_add_resolution_note_under_its_summary(
    world: World, slack: SlackEmulator
) -> None:
    world.service.resolve_incident(world.incident_id, actor="U0ANA0001")
    (row,) = postmortem_rows(world)

    notifier(world, slack).send(attempt(row, 0))

    (summary,) = slack.messages(ROOM_ID)
    assert "Resolution note: _none yet_" in summary["text"]
    buttons = [e["action_id"] for b in summary["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == [ADD_NOTE_ACTION]
