"""The log of ``serve`` (bot.logs): LOG_FORMAT=json, LOG_LEVEL, redacted secrets, and no
APScheduler chatter on every job tick."""

from __future__ import annotations

import inspect
import io
import json
import logging
import shutil
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config.holder import ConfigHolder
from bot.jobs import build_scheduler
from bot.logs import NOISY, configure_logging
from bot.settings import Settings

TOKEN = "xoxb-1234-5678-abcdefghijkl"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put pytest's handlers and the levels back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY}
    yield
    root.handlers, root.level = handlers, level
    for name, was in noisy.items():
        logging.getLogger(name).setLevel(was)


@pytest.mark.usefixtures("restore_logging")
def test_json_format_writes_one_object_per_line_with_the_exception_when_there_is_one() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    log = logging.getLogger("bot.test")
    log.info("alert %s fired", 7)
    try:
        raise RuntimeError("database gone\nsecond line")
    except RuntimeError:
        log.exception("evaluation job failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines  # the traceback's newlines stay inside its JSON string
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert (first["level"], first["logger"], first["message"]) == ("INFO", "bot.test", "alert 7 fired")
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert second["level"] == "ERROR" and second["message"] == "evaluation job failed"
    assert "Traceback" in second["exception"] and "RuntimeError: database gone" in second["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_log_level_drops_what_is_below_it() -> None:
    out = io.StringIO()
    configure_logging(level=Settings(log_level="warning").log_level, stream=out)
    logging.getLogger("bot.test").info("not shown")
    logging.getLogger("bot.test").warning("shown")
    assert out.getvalue().count("\n") == 1
    assert " WARNING bot.test: shown" in out.getvalue()


def test_log_settings_take_any_case_and_refuse_what_they_do_not_know() -> None:
    assert (Settings().log_level, Settings().log_format) == ("INFO", "text")
    assert (Settings(log_level=" debug", log_format="JSON").log_level, Settings(log_format="JSON").log_format) == (
        "DEBUG",
        "json",
    )
    with pytest.raises(ValidationError, match="log_level"):
        Settings(log_level="loud")
    with pytest.raises(ValidationError, match="log_format"):
        Settings(log_format="xml")


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.usefixtures("restore_logging")
def test_secrets_the_bot_was_given_never_reach_the_log(fmt: str) -> None:
    settings = Settings(slack_bot_token=TOKEN, ingest_token="tiny")  # type: ignore[arg-type]
    out = io.StringIO()
    configure_logging(fmt=fmt, stream=out, secrets=settings.secret_values())
    log = logging.getLogger("bot.test")
    log.warning("calling Slack with %s", TOKEN)
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError:
        log.exception("failed")
    text = out.getvalue()
    assert TOKEN not in text
    assert "calling Slack with [redacted]" in text and "bad token [redacted]" in text


@pytest.mark.usefixtures("restore_logging")
def test_a_minute_of_idle_scheduler_ticks_writes_no_line() -> None:
    """Every job of ``serve``'s scheduler, ticking every 10 ms until there were more ticks than a
    minute of the real intervals has (about 200): APScheduler logs two INFO lines per tick unless held back."""
    out = io.StringIO()
    configure_logging(stream=out)
    ticks, enough = 0, threading.Event()
    lock = threading.Lock()

    def job() -> None:
        nonlocal ticks
        with lock:
            ticks += 1
            if ticks >= 250:
                enough.set()

    tick = timedelta(milliseconds=10)
    wiring = inspect.signature(build_scheduler).parameters  # every job serve schedules, whatever their names
    jobs = {name: job for name, p in wiring.items() if p.default is p.empty and not name.endswith("_interval")}
    intervals = {name: tick for name in wiring if name.endswith("_interval")}
    scheduler = build_scheduler(**jobs, **intervals, extra=[(job, "slo-evaluation", tick)])  # type: ignore[arg-type]
    scheduler.start()
    try:
        assert enough.wait(timeout=60), f"only {ticks} ticks"
    finally:
        scheduler.shutdown(wait=True)
    assert [line for line in out.getvalue().splitlines() if " INFO " in line] == []


def test_a_configuration_reload_is_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for part in ("rules", "runbooks"):
        shutil.copytree(REPO / part, tmp_path / part)
    holder = ConfigHolder(tmp_path)
    caplog.set_level(logging.INFO)
    assert holder.reload()
    [line] = [r for r in caplog.records if r.name.startswith("bot")]
    assert line.levelno == logging.INFO and line.getMessage().startswith(f"configuration reloaded from {tmp_path}: ")
