"""``incident-bot demo`` as a real process: it says where to look, the page shows the replayed
incident's alerts in both channels, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_demo_command_runs_until_ctrl_c() -> None:
    port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PAGERDUTY_", "DATABASE_URL"))}
    command = [sys.executable, "-m", "bot", "demo", "--port", str(port), "--sandbox-port", str(sandbox_port)]
    proc = subprocess.Popen(
        [*command, "--speed", "8"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert proc.stdout is not None
        line = ""
        deadline = time.monotonic() + 30
        while "Open http" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "the demo exited before it was ready"
        assert line.strip() == f"Open http://127.0.0.1:{sandbox_port} to watch the #ml-alerts and #llm-alerts channels"
        page = httpx.get(f"http://127.0.0.1:{sandbox_port}/")
        assert page.status_code == 200 and "Slack sandbox" in page.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            state = httpx.get(f"http://127.0.0.1:{sandbox_port}/sandbox/state").json()
            if all(channel["messages"] for channel in state["channels"]):
                break
            time.sleep(0.2)
        assert [(c["name"], bool(c["messages"])) for c in state["channels"]] == [
            ("ml-alerts", True),
            ("llm-alerts", True),
        ]
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    assert "demo stopped" in output
