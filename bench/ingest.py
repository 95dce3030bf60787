"""Benchmark: push ingest against Prometheus' Pushgateway, in the same run (issue 16, point 2).

Two servers on 127.0.0.1, each in its own process:

- ``python -m bot serve`` on a fresh SQLite file (or a fresh PostgreSQL database with
  ``--database-url``), with a fleet configuration (``accept_unknown_models``, 20 gauges), taking
  ``POST /api/v1/metrics``;
- Debian's ``prometheus-pushgateway``, taking ``POST /metrics/job/fleet/instance/<client>`` in the
  text exposition format (each client its own group, so pushes never replace one another).

For every batch size (samples per request: 1, 20, 200; a relay sends 200) and every number of
concurrent clients (1, 8, 32), each client pushes as fast as it is answered for ``--seconds``
(closed loop: saturation), first to one server then to the other. A batch of 20 is one model's
20 gauges; 200 is ten models' (the bot's JSON list, Pushgateway's lines). Printed per cell:
samples accepted per second and p50/p99 request latency for both, the bot's throughput as a
ratio of Pushgateway's (target ≥ 1) and its p99 as a ratio of Pushgateway's (target ≤ 2), and
errors (target 0). Not a timed test; figures go to ``bench/RESULTS.md``.

    .venv/bin/python bench/ingest.py [--seconds 5] [--database-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.harness import REPO, free_port, scratch_database, stop_all, wait_healthy

PUSHGATEWAY = Path("/usr/bin/prometheus-pushgateway")
TOKEN = "bench-ingest-token"
METRICS = 20
MODELS = 10_000
BATCHES = (1, 20, 200)
CLIENTS = (1, 8, 32)


@dataclass
class Cell:
    samples: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def row(cell: Cell, width: int) -> str:
    return f"{cell.rate:>{width},.0f} {cell.quantile(0.5):>5.1f}ms {cell.quantile(0.99):>5.1f}ms {cell.errors:>4}"


def bot_body(client: int, n: int, batch: int) -> bytes:
    """``batch`` samples as the bot's JSON: one model's metrics, or several models' 20 gauges."""
    per_model = min(batch, METRICS)
    items = [
        {
            "model": f"m-{(client * 7919 + n * 31 + k) % MODELS:05d}",
            "metrics": {f"g{j:02d}": float((n + j) % 50) for j in range(per_model)},
        }
        for k in range(max(1, batch // METRICS))
    ]
    return json.dumps(items if len(items) > 1 else items[0]).encode()


def pushgateway_body(client: int, n: int, batch: int) -> bytes:
    """The same samples in the text exposition format."""
    per_model = min(batch, METRICS)
    lines = [
        f'fleet_g{j:02d}{{model="m-{(client * 7919 + n * 31 + k) % MODELS:05d}"}} {float((n + j) % 50)}'
        for k in range(max(1, batch // METRICS))
        for j in range(per_model)
    ]
    return ("\n".join(lines) + "\n").encode()


async def saturate(
    url: Callable[[int], str], body: Callable[[int, int, int], bytes], headers: dict[str, str], *,
    batch: int, clients: int, seconds: float, ok: int,
) -> Cell:  # fmt: skip
    cell = Cell()
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def client(index: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                data = body(index, n, batch)
                started = time.perf_counter()
                try:
                    async with http.post(url(index), data=data, headers=headers) as answer:
                        await answer.read()
                        good = answer.status == ok
                except (TimeoutError, aiohttp.ClientError):
                    good = False
                cell.latencies.append(time.perf_counter() - started)
                if good:
                    cell.samples += batch
                else:
                    cell.errors += 1
                n += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        cell.seconds = time.perf_counter() - started
    return cell


def fleet_config(root: Path) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "runbooks").mkdir()
    (root / "runbooks" / "default.md").write_text("# {model}\n")
    (root / "rules" / "fleet.yaml").write_text(
        "settings:\n  accept_unknown_models: true\n  storm_threshold: 100000\n"
        "metrics:\n" + "".join(f"  - {{name: g{j:02d}}}\n" for j in range(METRICS))
        + "rules:\n  - {name: high_g00, condition: g00 > 100, severity: P3, title: 'g00 on {model}'}\n"
    )  # fmt: skip
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per cell and server")
    parser.add_argument("--database-url", help="the bot on this PostgreSQL server (a fresh database)")
    args = parser.parse_args()
    if not PUSHGATEWAY.exists():
        raise SystemExit("needs Debian's prometheus-pushgateway: apt-get install prometheus-pushgateway")
    folder = Path(tempfile.mkdtemp(prefix="ib-ingest-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with scratch_database(args.database_url, folder / "bot.db", prefix="ib_ingest") as database:
            bot_port, gateway_port = free_port(), free_port()
            env = {
                **os.environ,
                "INGEST_TOKEN": TOKEN,
                "DATABASE_URL": database,
                "BOT_CONFIG_DIR": str(fleet_config(folder / "config")),
                "LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(REPO),
            }
            log = folder / "bot.log"
            command = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(bot_port)]
            processes.append(
                subprocess.Popen(command, env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)
            )
            gateway = [str(PUSHGATEWAY), f"--web.listen-address=127.0.0.1:{gateway_port}"]
            gateway_log = folder / "pushgateway.log"
            processes.append(subprocess.Popen(gateway, stdout=gateway_log.open("wb"), stderr=subprocess.STDOUT))
            bot_url, gateway_url = f"http://127.0.0.1:{bot_port}", f"http://127.0.0.1:{gateway_port}"
            wait_healthy(bot_url, processes[0], log, timeout=60.0)
            wait_healthy(gateway_url, processes[1], gateway_log, path="/-/ready")
            backend = "PostgreSQL" if database.startswith("postgres") else "SQLite"
            load = os.getloadavg()
            print(f"ingest: the bot on {backend} against Pushgateway, closed loop, {args.seconds:g} s per cell; "
                  f"load {load[0]:.2f}")  # fmt: skip
            print(f"  {'batch':>5} {'clients':>7} | {'bot samples/s':>13} {'p50':>7} {'p99':>7} {'err':>4} | "
                  f"{'gateway':>9} {'p50':>7} {'p99':>7} {'err':>4} | {'rate ×':>6} {'p99 ×':>6}")  # fmt: skip
            for batch in BATCHES:
                for clients in CLIENTS:
                    bot = asyncio.run(
                        saturate(
                            lambda _i: f"{bot_url}/api/v1/metrics", bot_body,
                            {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                            batch=batch, clients=clients, seconds=args.seconds, ok=202,
                        )
                    )  # fmt: skip
                    peer = asyncio.run(
                        saturate(
                            lambda i: f"{gateway_url}/metrics/job/fleet/instance/c{i}", pushgateway_body,
                            {"Content-Type": "text/plain; version=0.0.4"},
                            batch=batch, clients=clients, seconds=args.seconds, ok=200,
                        )
                    )  # fmt: skip
                    print(f"  {batch:>5} {clients:>7} | {row(bot, 13)} | {row(peer, 9)} | {bot.rate / peer.rate:>6.2f} "
                          f"{bot.quantile(0.99) / peer.quantile(0.99):>6.2f}", flush=True)  # fmt: skip
            print(f"  targets: rate × ≥ 1, p99 × ≤ 2, no errors; load after {os.getloadavg()[0]:.2f}")
    finally:
        stop_all(processes)


if __name__ == "__main__":
    main()
