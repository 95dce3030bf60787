"""``incident-bot serve`` under a connection flood, as a real process (bot.http_limits).

The server runs with 1,024 open files, as many systems start a process: 2,000 idle connections
and 500 slowloris ones (request heads trickled a byte at a time, reopened when closed) used to
exhaust them, after which every ``accept()`` failed and logged a traceback, hundreds of
thousands of lines, while ``/healthz``, ingest and ``/slack/events`` timed out. Now healthy
requests on fresh connections keep answering within a second, the log stays small, no slow
connection outlives the header timeout, and a request with both ``Content-Length`` and
``Transfer-Encoding`` is refused before the application sees it.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.http_limits import ConnectionLimits
from tests.e2e.test_serve import REPO
from tests.emulators.slack_api import SlackEmulator
from tests.slack.harness import SECRET, TOKEN, sign
from tests.support.ports import free_port

INGEST_TOKEN = "flood-ingest-token"
SERVER_FILES, SERVER_HARD_FILES = 1024, 8192
IDLE, SLOW = 2000, 500
HEALTHY_FOR = 12.0
"""Seconds of healthy traffic under the flood: past the header timeout, so slow connections are
closed and reopened meanwhile."""
HEADER_TIMEOUT = ConnectionLimits().header_timeout


@dataclass
class Served:
    base: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]


def _low_file_limit() -> None:
    """Runs in the child before exec: 1,024 open files, as systemd and many shells start a
    process, under a hard limit ``serve`` may raise it to."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FILES, SERVER_HARD_FILES))


def start_serve(tmp_path: Path, slack: SlackEmulator, **extra: str) -> Served:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "INGEST_TOKEN": INGEST_TOKEN,
        "BOT_CONFIG_DIR": str(REPO),
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": slack.base_url,
        "SLACK_TEAM_ID": slack.team_id,
        "LOG_LEVEL": "INFO",
        **extra,
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_low_file_limit,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return Served(base, port, log, proc)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"serve did not come up: {log.read_text()}")


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator(TOKEN) as emulator:
        yield emulator


def stop(served: Served) -> None:
    served.proc.terminate()
    served.proc.wait(timeout=15)


# --------------------------------------------------------------------------- the flood


def healthy_requests(served: Served) -> list[tuple[str, int | None, float]]:
    """``/healthz``, an ingest push and a signed ``/slack/events`` in turn, each on a fresh
    connection (http.client: the lightest client, so the time measured is the server's):
    (what, status or None for no answer within 5 s, seconds)."""
    results: list[tuple[str, int | None, float]] = []
    deadline = time.monotonic() + HEALTHY_FOR
    turn = 0
    while time.monotonic() < deadline:
        kind = ("healthz", "ingest", "slack")[turn % 3]
        turn += 1
        if kind == "healthz":
            method, path, body, headers = "GET", "/healthz", b"", {}
        elif kind == "ingest":
            body = json.dumps({"model": "support-bot", "metrics": {"daily_cost_usd": 10.0}}).encode()
            method, path = "POST", "/api/v1/metrics"
            headers = {"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"}
        else:
            body = json.dumps({"type": "url_verification", "challenge": f"c{turn}", "token": "x"}).encode()
            method, path, headers = "POST", "/slack/events", {"Content-Type": "application/json", **sign(body)}
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            answer.read()
            status: int | None = answer.status
        except OSError:
            status = None
        finally:
            connection.close()
        results.append((kind, status, time.monotonic() - started))
        time.sleep(0.2)
    return results


def test_a_flood_of_idle_and_slow_connections_does_not_starve_healthy_requests(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    served = start_serve(tmp_path, slack)
    attacker = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.flood", str(served.port), str(IDLE), str(SLOW), str(HEALTHY_FOR + 2)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert attacker.stdout is not None
    try:
        assert attacker.stdout.readline().strip() == "ready", attacker.stdout.read()
        results = healthy_requests(served)
        report = json.loads(attacker.stdout.readline())
    finally:
        attacker.kill()
        attacker.wait()
        stop(served)
    text = served.log.read_text(errors="replace")
    assert report["idle_opened"] > SERVER_FILES, "the flood did not open more connections than the server has files"
    late = [r for r in results if r[1] not in (200, 202) or r[2] > 1.0]
    shown = f"{len(late)} of {len(results)} healthy requests failed or took over 1 s: {late[:10]}"
    assert not late, f"{shown}\n{text[-2000:]}"
    assert {kind for kind, _, _ in results} == {"healthz", "ingest", "slack"}
    lifetimes = report["slow_lifetimes"]
    assert lifetimes, "no slow connection was ever closed by the server"
    assert max(lifetimes) < HEADER_TIMEOUT + 3, f"a slow connection lived {max(lifetimes):.1f} s"
    assert served.log.stat().st_size < 1_000_000, f"the log grew to {served.log.stat().st_size} bytes"
    assert "Traceback" not in text, text[-3000:]


def raw_request(port: int, request: bytes, timeout: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_when_every_connection_is_busy_a_new_one_is_answered_503_at_once(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    """Connections that sent a request head are busy, not idle: none gives way, the newcomer is refused."""
    served = start_serve(tmp_path, slack, HTTP_MAX_CONNECTIONS="3")
    busy = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(3)]
    try:
        for sock in busy:  # a head promising a body that does not come (yet)
            sock.sendall(b"POST /api/v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        time.sleep(0.3)  # the heads reach the server (no event to wait on across processes)
        started = time.monotonic()
        answer = raw_request(served.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert time.monotonic() - started < 1.0
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"retry-after: 1" in answer.lower()
        for sock in busy:
            sock.close()
        assert httpx.get(f"{served.base}/healthz", timeout=5).status_code == 200  # the slots came back
    finally:
        for sock in busy:
            sock.close()
        stop(served)
    assert "Traceback" not in served.log.read_text()


def test_content_length_with_transfer_encoding_is_refused_before_the_app(tmp_path: Path, slack: SlackEmulator) -> None:
    served = start_serve(tmp_path, slack)
    try:
        body = json.dumps({"model": "support-bot", "metrics": {"daily_cost_usd": 455.2}}).encode()
        request = (
            b"POST /api/v1/metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + INGEST_TOKEN.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )
        answer = raw_request(served.port, request)
        assert answer.startswith(b"HTTP/1.1 400"), answer
        assert b"Transfer-Encoding can't be present with Content-Length" in answer, answer
        assert httpx.get(f"{served.base}/healthz").json()["status"] == "ok"
    finally:
        stop(served)
    assert "fired" not in served.log.read_text()  # the push never reached ingest
