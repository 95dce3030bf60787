"""``slo status`` and ``alerts review`` read the bot's database; pointed at a SQLite file that is
not there, they say so and create nothing, instead of answering "no data" from a new empty one."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.storage.database import make_engine, migrate, missing_sqlite_file

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", [["alerts", "review"], ["slo", "status"]])
def test_a_missing_sqlite_file_is_refused_and_not_created(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///incident-bot.db")
    assert main([*command, "--config-dir", str(REPO)]) == 1
    err = capsys.readouterr().err
    assert f"no database at {tmp_path / 'incident-bot.db'}" in err and "nothing was created" in err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_database_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    migrate(make_engine(url))
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["alerts", "review", "--config-dir", str(REPO)]) == 0


def test_only_sqlite_files_can_be_missing(tmp_path: Path) -> None:
    assert missing_sqlite_file(f"sqlite:///{tmp_path}/absent.db") == tmp_path / "absent.db"
    assert missing_sqlite_file("sqlite://") is None
    assert missing_sqlite_file("sqlite:///:memory:") is None
    assert missing_sqlite_file("postgresql://postgres@127.0.0.1:5432/test") is None
