"""``incident-bot changes [model] [--window 24h]``: what shipped lately, without Slack."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.changes.events import Change, ChangeKind
from bot.changes.log import ChangeLog
from bot.slo import cli as slo_cli
from bot.storage.database import make_engine, migrate

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="incident-bot")
    slo_cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    return slo_cli.run(parser.parse_args([*argv, "--config-dir", str(REPO)]), now=NOW)


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ChangeLog:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("DATABASE_URL", url)
    engine = make_engine(url)
    migrate(engine)
    return ChangeLog(engine)


def test_recent_changes_are_listed_newest_first_with_who_and_where(
    log: ChangeLog, capsys: pytest.CaptureFixture[str]
) -> None:
    log.record(
        [
            Change("support-bot", ChangeKind.DATASET, "d9", NOW - timedelta(days=2)),  # outside 24 h
            Change("fraud-detector-v2", ChangeKind.DEPLOY, "b77", NOW - timedelta(hours=3)),
            Change(
                "support-bot",
                ChangeKind.PROMPT,
                "v42",
                NOW - timedelta(minutes=4),
                author="dana",
                link="https://git.internal/prompts/pull/42",
                description="shorter system prompt",
            ),
        ]
    )
    assert run_cli(["changes"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Changes to any model in the last 1 d, newest first:",
        "- 2026-01-05 08:56 UTC (4 min ago) support-bot: prompt v42 by dana: shorter system prompt "
        "<https://git.internal/prompts/pull/42>",
        "- 2026-01-05 06:00 UTC (3 h ago) fraud-detector-v2: deploy b77",
    ]
    assert run_cli(["changes", "support-bot", "--window", "7d"]) == 0
    assert "dataset d9" in capsys.readouterr().out


def test_no_changes_is_said_plainly(log: ChangeLog, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["changes", "fraud-detector-v2"]) == 0
    assert capsys.readouterr().out.strip() == "No changes to fraud-detector-v2 in the last 1 d."
