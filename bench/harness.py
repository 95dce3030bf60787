"""Plumbing the benchmarks share: free ports, a scratch database, a server in a child process
answering questions over stdin/stdout, and waiting for ``/healthz``.

Scratch databases are created and dropped by the benchmark, so a ``--database-url`` pointing at a
real server never has its own data touched.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def scratch_database(url: str | None, sqlite_file: Path, *, prefix: str = "ib_bench") -> Iterator[str]:
    """A URL for a fresh SQLite file, or for a fresh database on the PostgreSQL server of ``url``
    (dropped afterwards)."""
    if url is None:
        yield f"sqlite:///{sqlite_file}"
        return
    from sqlalchemy import create_engine, text

    sys.path.insert(0, str(REPO))
    from bot.storage.database import normalise_url

    admin = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT", pool_size=1)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class ChildServer:
    """A server (an emulator) in a child process: it prints its base URL as a JSON line, then
    answers one JSON line per question written to its stdin. Running it apart keeps its threads
    from competing with the load generator's timers for the GIL."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("wb"),
            text=True,
            cwd=REPO,
        )
        self.base_url: str = self._read()["base_url"]

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.proc.args} exited")
        return json.loads(line)

    def ask(self, *words: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(words) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0, *, path: str = "/healthz"
) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url}{path} did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """Terminate every child, then wait for each (killed if it will not stop)."""
    for proc in processes:
        proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


PROMETHEUS = Path("/usr/bin/prometheus")
"""Debian's Prometheus, which the Prometheus benchmarks start."""


def start_prometheus(folder: Path, port: int) -> subprocess.Popen[bytes]:
    """Prometheus on ``127.0.0.1:port`` with ``folder/prometheus.yml`` and its data in ``folder/data``."""
    return subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
