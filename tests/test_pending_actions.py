"""The journal of clicks kept while the database is away: on disk before the clicker is told,
applied in order, once, and never lost to a crash or a database that is still away."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from bot.errors import ActionRefused, ConcurrentChange
from bot.pending_actions import PendingAction, PendingActions

AT = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)


def click(target: int, verb: str = "acknowledge", subject: str = "incident") -> PendingAction:
    return PendingAction(subject, target, verb, "U_ANA", AT)  # type: ignore[arg-type]


def test_a_kept_click_is_on_disk_and_a_restarted_process_finds_it(tmp_path: Path) -> None:
    journal = tmp_path / "pending.jsonl"
    PendingActions(journal).keep(click(7))

    again = PendingActions(journal)
    assert again.entries() == [click(7)]
    applied: list[PendingAction] = []
    assert again.replay(applied.append) == 1
    assert applied == [click(7)] and len(again) == 0
    assert not journal.exists(), "an empty journal is removed"


def test_clicks_are_applied_in_the_order_they_were_made(tmp_path: Path) -> None:
    journal = PendingActions(tmp_path / "pending.jsonl")
    for action in (click(1), click(1, "resolve"), click(2, subject="alert")):
        journal.keep(action)
    applied: list[PendingAction] = []
    journal.replay(applied.append)
    assert applied == [click(1), click(1, "resolve"), click(2, subject="alert")]


def test_a_database_still_away_keeps_the_click_and_those_after_it(tmp_path: Path) -> None:
    path = tmp_path / "pending.jsonl"
    journal = PendingActions(path)
    for target in (1, 2, 3):
        journal.keep(click(target))

    def apply(action: PendingAction) -> None:
        if action.target == 2:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    with pytest.raises(OperationalError):
        journal.replay(apply)
    assert [a.target for a in journal.entries()] == [2, 3]
    assert [a.target for a in PendingActions(path).entries()] == [2, 3], "and so does the file"


def test_a_click_that_no_longer_applies_is_dropped_and_one_that_lost_a_race_waits(tmp_path: Path) -> None:
    journal = PendingActions(tmp_path / "pending.jsonl")
    for target in (1, 2, 3, 4):
        journal.keep(click(target))

    def apply(action: PendingAction) -> None:
        if action.target == 1:
            raise ActionRefused("already resolved by U_BOB")
        if action.target == 2:
            raise LookupError("no incident with id 2")
        if action.target == 3:
            raise ConcurrentChange("keeps changing")

    assert journal.replay(apply) == 1
    assert [a.target for a in journal.entries()] == [3]


def test_a_torn_last_line_after_a_crash_is_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "pending.jsonl"
    PendingActions(path).keep(click(5))
    with path.open("a") as f:
        f.write('{"subject": "incident", "tar')
    assert PendingActions(path).entries() == [click(5)]
