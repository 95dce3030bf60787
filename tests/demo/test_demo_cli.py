"""``incident-bot demo`` as a real process: it says where to look, the page shows the replayed
incident's alerts in both channels, and Ctrl-C or SIGTERM stops it cleanly (servers stopped,
temporary directory removed, exit status 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def start_demo(port: int, sandbox_port: int, tmpdir: Path) -> subprocess.Popen[str]:
    """``incident-bot demo`` at 8x with its temporary files under ``tmpdir``, once it says where to look.

    Reading its output line by line waits on the demo itself, not on a clock.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PAGERDUTY_", "DATABASE_URL"))}
    env["TMPDIR"] = str(tmpdir)
    command = [sys.executable, "-m", "bot", "demo", "--port", str(port), "--sandbox-port", str(sandbox_port)]
    proc = subprocess.Popen(
        [*command, "--speed", "8"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    while line and "Open http" not in line:
        line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(f"the demo exited before it was ready: {proc.communicate(timeout=10)[0]}")
    assert line.strip() == f"Open http://127.0.0.1:{sandbox_port} to watch the #ml-alerts and #llm-alerts channels"
    return proc


def test_the_demo_command_runs_until_ctrl_c(tmp_path: Path) -> None:
    sandbox_port = free_port()
    proc = start_demo(free_port(), sandbox_port, tmp_path)
    try:
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
        output, _ = proc.communicate(timeout=60)  # a bound against a hang, for a loaded machine
    assert proc.returncode == 0, output
    assert "demo stopped" in output
    assert not list(tmp_path.glob("incident-bot-demo-*"))


def test_sigterm_cleans_up_like_ctrl_c(tmp_path: Path) -> None:
    """A container stop or ``kill`` sends SIGTERM: the demo must not leave its database and config behind."""
    port, sandbox_port = free_port(), free_port()
    proc = start_demo(port, sandbox_port, tmp_path)
    try:
        (workdir,) = tmp_path.glob("incident-bot-demo-*")
        assert (workdir / "demo.db").is_file() and (workdir / "config" / "rules").is_dir()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{sandbox_port}/sandbox/state").json()["pagerduty"] is not None
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)  # a bound against a hang, for a loaded machine
    assert proc.returncode == 0, output
    assert "demo stopped" in output and "Traceback" not in output
    assert not workdir.exists()
