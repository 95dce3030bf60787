"""Failed notifications are visible and can be acted on (issue 12 point 4): ``/healthz`` names
them and paused delivery, and ``incident-bot outbox list / retry / drop`` reads and writes the
outbox of ``DATABASE_URL`` while the bot's own outbox delivers what was put back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from bot.app import Bot, build_bot
from bot.cli import main
from bot.clock import FrozenClock
from bot.errors import DeliveryError
from bot.notify.outbox import DROPPED, FAILED, PENDING, SENT
from bot.settings import Settings
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow
from tests.support.recording import RecordingNotifier

REPO = Path(__file__).resolve().parents[2]
REFUSED = DeliveryError("Slack chat.postMessage refused: invalid_blocks", retryable=False)
TOKEN_REVOKED = DeliveryError("Slack chat.postMessage refused: token_revoked", retryable=False, pauses=True)


@pytest.fixture
def recording() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def bot(
    tmp_path: Path, clock: FrozenClock, recording: RecordingNotifier, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Bot]:
    url = f"sqlite:///{tmp_path}/bot.db"
    monkeypatch.setenv("DATABASE_URL", url)  # what the command reads
    settings = Settings(database_url=url, ingest_token="outbox-admin-token")  # type: ignore[arg-type]
    built = build_bot(settings, clock=clock, notifiers={"recording": recording}, config_dir=REPO)
    yield built
    built.engine.dispose()


def fire(bot: Bot, clock: FrozenClock, metric: str = "daily_cost_usd", value: float = 455.0) -> None:
    """support-bot's cost (P1), or with ``current_accuracy`` 0.5 its accuracy alert."""
    bot.service.ingest([("support-bot", metric, clock.now(), value)])
    assert bot.service.evaluate_once().transitions


def statuses(bot: Bot) -> dict[int, str]:
    with open_session(bot.engine) as s:
        return {row.id or 0: row.status for row in s.exec(select(OutboxRow)).all()}


def test_healthz_names_failed_notifications_and_paused_delivery(
    bot: Bot, clock: FrozenClock, recording: RecordingNotifier
) -> None:
    web = TestClient(bot.app)
    assert web.get("/healthz").json() == {"status": "ok", "scheduler": False}
    fire(bot, clock)
    recording.fail_next(REFUSED)
    bot.outbox.deliver_due()
    assert web.get("/healthz").json() == {
        "status": "degraded",
        "scheduler": False,
        "notifications_failed": {"recording": 1},
    }
    fire(bot, clock, "current_accuracy", 0.5)
    recording.fail_next(TOKEN_REVOKED)
    bot.outbox.deliver_due()
    health = web.get("/healthz").json()
    assert health["delivery_paused"] == {"recording": str(TOKEN_REVOKED)}
    assert health["notifications_failed"] == {"recording": 1}, "a paused row has not failed"


def test_outbox_list_retry_and_drop(
    bot: Bot, clock: FrozenClock, recording: RecordingNotifier, capsys: pytest.CaptureFixture[str]
) -> None:
    fire(bot, clock)
    fire(bot, clock, "current_accuracy", 0.5)
    recording.fail_next(REFUSED, times=2)
    for _ in range(2):  # one incident: its second row goes out after the first one's outcome
        bot.outbox.deliver_due()
    failed = sorted(row_id for row_id, status in statuses(bot).items() if status == FAILED)
    assert len(failed) == 2

    assert main(["outbox", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "STATUS", "CHANNEL", "KIND", "ALERT", "ATTEMPTS", "LAST", "ERROR"]
    assert [line.split()[:3] for line in table[1:]] == [[str(i), FAILED, "recording"] for i in failed]
    assert all("invalid_blocks" in line for line in table[1:])

    assert main(["outbox", "retry", str(failed[0])]) == 0
    assert capsys.readouterr().out == f"1 notification(s) put back in the queue: {failed[0]}\n"
    assert statuses(bot)[failed[0]] == PENDING
    assert bot.outbox.deliver_due() == 1  # the running bot sends it on its next pass
    assert statuses(bot)[failed[0]] == SENT

    assert main(["outbox", "retry", str(failed[0])]) == 1, "sent, so not failed: nothing to retry"
    assert "not failed, or no such notification" in capsys.readouterr().err

    assert main(["outbox", "drop", str(failed[1])]) == 0
    assert statuses(bot)[failed[1]] == DROPPED
    assert main(["outbox", "retry", "--all-failed"]) == 0
    assert capsys.readouterr().out.endswith("0 notification(s) put back in the queue\n")
    assert bot.outbox.deliver_due() == 0 and statuses(bot)[failed[1]] == DROPPED

    assert main(["outbox", "list"]) == 0
    assert capsys.readouterr().out == "nothing pending or failed in the outbox\n"


def test_outbox_retry_all_failed_puts_every_failed_row_back(
    bot: Bot, clock: FrozenClock, recording: RecordingNotifier, capsys: pytest.CaptureFixture[str]
) -> None:
    fire(bot, clock)
    fire(bot, clock, "current_accuracy", 0.5)
    recording.fail_next(REFUSED, times=2)
    for _ in range(2):  # one incident: its second row goes out after the first one's outcome
        bot.outbox.deliver_due()
    assert main(["outbox", "retry", "--all-failed"]) == 0
    assert capsys.readouterr().out.startswith("2 notification(s) put back in the queue: ")
    assert bot.outbox.deliver_due() == 2


def test_outbox_without_the_database_file_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/missing.db")
    assert main(["outbox", "list"]) == 1
    assert "no database at" in capsys.readouterr().err and not (tmp_path / "missing.db").exists()
