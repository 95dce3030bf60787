"""``incident-bot serve``'s log as an operator reads it, from a real process: ``HOST=127.0.0.1``
binds loopback only, ``LOG_FORMAT=json`` writes nothing but JSON objects (uvicorn's lines too),
and an alert that fires, is delivered and auto-resolves writes one line for each of those, with
no scheduler chatter in between."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import httpx
import pytest

from tests.e2e.test_serve import REPO
from tests.support.ports import free_port

Entry = dict[str, Any]


class Lines:
    """Every line a process writes, read on a thread; a test waits for the one it expects."""

    def __init__(self, stream: TextIO) -> None:
        self.raw: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: TextIO) -> None:
        for line in stream:
            with self._cond:
                self.raw.append(line.rstrip("\n"))
                self._cond.notify_all()

    def entries(self) -> list[Entry]:
        with self._cond:
            return [json.loads(line) for line in self.raw]

    def wait_for(self, match: Callable[[Entry], bool], what: str, timeout: float = 30.0) -> Entry:
        with self._cond:
            found = self._cond.wait_for(lambda: [e for e in self.entries() if match(e)], timeout=timeout)
        if not found:
            pytest.fail(f"no log line for {what} within {timeout} s; the log:\n" + "\n".join(self.raw))
        return found[0]

    def finish(self) -> None:
        self._thread.join(timeout=15)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[int, Lines]]:
    """``serve`` configured only through the environment, as a container is: HOST, PORT, LOG_FORMAT."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_FORMAT": "json",
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "INGEST_TOKEN": "t0ken-for-the-log-test",
        "EVALUATION_INTERVAL": "1s",
        "BOT_CONFIG_DIR": str(REPO),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    lines = Lines(proc.stdout)
    try:
        yield port, lines
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        lines.finish()


def test_serve_binds_host_logs_json_and_one_line_per_change(serve: tuple[int, Lines]) -> None:
    port, lines = serve
    lines.wait_for(lambda e: "Uvicorn running on http://127.0.0.1:" in e["message"], "uvicorn listening")
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    with pytest.raises(httpx.ConnectError):  # bound to 0.0.0.0 (the old behaviour) this would answer
        httpx.get(f"http://127.0.0.2:{port}/healthz")

    metrics = f"http://127.0.0.1:{port}/api/v1/metrics"
    auth = {"Authorization": "Bearer t0ken-for-the-log-test"}
    pushed = httpx.post(metrics, headers=auth, json={"model": "support-bot", "metrics": {"daily_cost_usd": 455.2}})
    assert pushed.status_code == 202, pushed.text
    fired = lines.wait_for(lambda e: e["logger"] == "bot.service" and " fired: " in e["message"], "the alert firing")
    assert fired["level"] == "INFO" and "llm_cost_runaway:support-bot (P1)" in fired["message"], fired
    lines.wait_for(lambda e: e["logger"] == "bot.notify.notifier" and " fired " in e["message"], "its delivery")
    httpx.post(metrics, headers=auth, json={"model": "support-bot", "metrics": {"daily_cost_usd": 10}})
    lines.wait_for(lambda e: "auto_resolved" in e["message"] and e["logger"] == "bot.notify.notifier", "resolve sent")

    entries = lines.entries()  # every line parsed as one JSON object, or this raises
    assert all(set(e) >= {"time", "level", "logger", "message"} for e in entries)
    about_the_alert = [e["message"] for e in entries if e["logger"] in ("bot.service", "bot.notify.notifier")]
    # its incident opened, it fired, delivered, auto-resolved, its incident resolved, delivered
    assert len(about_the_alert) == 6, about_the_alert
    assert not [e for e in entries if e["logger"].startswith(("apscheduler", "httpx"))]
