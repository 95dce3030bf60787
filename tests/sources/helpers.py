"""Shared pieces of the source tests: configuration directories, free ports, a metrics exporter
the test controls, the real Prometheus and Alertmanager binaries, and the bot under uvicorn."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from bot.app import Bot
from tests.support.ports import free_port
from tests.support.served import serving

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = Path("/usr/bin/prometheus")
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def config_dir(tmp_path: Path, extra: str = "", *, group_wait: str | None = None) -> Path:
    """A copy of the shipped configuration plus ``extra`` as ``rules/sources.yaml``."""
    root = tmp_path / "config"
    shutil.copytree(REPO / "rules", root / "rules")
    shutil.copytree(REPO / "runbooks", root / "runbooks")
    if extra:
        (root / "rules" / "sources.yaml").write_text(extra, encoding="utf-8")
    if group_wait is not None:
        settings = root / "rules" / "settings.yaml"
        text = settings.read_text(encoding="utf-8")
        assert "group_wait: 10s" in text
        settings.write_text(text.replace("group_wait: 10s", f"group_wait: {group_wait}"), encoding="utf-8")
    return root


def require_binary(path: Path, package: str | None = None) -> None:
    """Skip (with the reason printed by ``-ra``) where the binary is missing, unless CI requires it.
    ``package`` is the Debian package that ships it, where that is not the binary's own name."""
    if path.is_file() and os.access(path, os.X_OK):
        return
    reason = f"{path} is not installed (Debian: apt-get install {package or path.name})"
    if os.environ.get("REQUIRE_PROMETHEUS") == "1":
        pytest.fail(f"{reason}; REQUIRE_PROMETHEUS=1 requires it")
    pytest.skip(reason)


@contextmanager
def running_binary(args: list[str], ready_url: str, log_path: Path, *, timeout: float = 20.0) -> Iterator[None]:
    """Start a server binary, wait until ``ready_url`` answers 200, stop it afterwards.

    Its output goes to ``log_path``; a failed start shows the log's tail in the failure."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    pytest.fail(f"{args[0]} exited with {process.returncode}:\n{_tail(log_path)}")
                try:
                    if httpx.get(ready_url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"{args[0]} was not ready within {timeout}s:\n{_tail(log_path)}")
                time.sleep(0.1)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def running_prometheus(
    tmp: Path, exporter: Exporter, *, scrape: str = "1s", job: str = "exporter", flags: tuple[str, ...] = ()
) -> Iterator[str]:
    """Debian's Prometheus scraping ``exporter`` every ``scrape``, its data in ``tmp``, with extra
    command-line ``flags``; yields its URL."""
    (tmp / "prometheus.yml").write_text(
        f"global: {{scrape_interval: {scrape}, scrape_timeout: {scrape}, evaluation_interval: {scrape}}}\n"
        "scrape_configs:\n"
        f"  - job_name: {job}\n    static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]\n",
        encoding="utf-8",
    )
    url = f"http://127.0.0.1:{free_port()}"
    args = [
        str(PROMETHEUS),
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address={url.removeprefix('http://')}",
        *flags,
    ]
    with running_binary(args, f"{url}/-/ready", tmp / "prometheus.log"):
        yield url


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Exporter:
    """A scrape target serving gauges in Prometheus' text format; the test sets their values."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[str, float] = {}
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: Prometheus scrapes every second."""

            def do_GET(self) -> None:
                body = exporter.exposition().encode() if self.path.startswith("/metrics") else b"not found\n"
                self.send_response(200 if self.path.startswith("/metrics") else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def set(self, series: str, value: float) -> None:
        """``series`` as written in the exposition: ``model_cost_usd{model="support-bot"}``."""
        with self._lock:
            self._series[series] = value

    def remove(self, series: str) -> None:
        """Stop serving ``series``: Prometheus' next scrape marks it stale, so it has no value after."""
        with self._lock:
            del self._series[series]

    def exposition(self) -> str:
        with self._lock:
            names = sorted({s.split("{")[0] for s in self._series})
            lines = [f"# TYPE {name} gauge" for name in names]
            lines += [f"{series} {value!r}" for series, value in sorted(self._series.items())]
        return "\n".join(lines) + "\n"

    def __enter__(self) -> Exporter:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Served:
    base: str
    bot: Bot


@contextmanager
def serve(bot: Bot) -> Iterator[Served]:
    """The bot's web app and scheduler under uvicorn on a free port, as ``incident-bot serve`` runs."""
    config = uvicorn.Config(bot.app, log_level="warning", lifespan="on", access_log=False)
    try:
        with serving(config, name="uvicorn-sources") as port:
            yield Served(f"http://127.0.0.1:{port}", bot)
    finally:
        bot.engine.dispose()


def wait_until(check: Any, *, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
