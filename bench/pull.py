"""Benchmark: pulling a fleet's metrics from a real Prometheus (issue 20, point 3).

An exporter (a child process) serves ``--models`` × ``--metrics`` gauges, 1% of the models
breaching one metric each; Debian's Prometheus scrapes it every ``--scrape`` seconds; the bot
(this process: the real ``PrometheusPuller``, ``AlertService`` and store) pulls one
``model: "*"`` query per metric every ``--interval`` seconds, on a fixed grid, and evaluates
after each pull (``--windowed K``: the first K metrics also read by an hour's average, which the
puller asks of Prometheus in PromQL, issue 20 point 2). After the second pull the exporter
switches to another 1% breaching set, and the benchmark times how long until every new breach is
an open alert.

Prints, beside each target: the pull's time (and of it, storing; the queries are in flight while
answers are stored), the evaluation's, whether
every pull started on its tick and finished before the next, breach-to-alert, the bot's peak RSS,
and whether the open alerts are exactly the breaching set::

    .venv/bin/python bench/pull.py --models 10000 --pulls 5 [--jitter]
    .venv/bin/python bench/pull.py --models 1000 --pulls 4 --database-url postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/pull.py --models 10000 --pulls 5 --windowed 5   # + 5 hour averages in PromQL
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.harness import PROMETHEUS, free_port, scratch_database, start_prometheus
from bot.alerts import store as alert_store
from bot.clock import SystemClock
from bot.config.loader import load_config
from bot.metrics.store import Point
from bot.service import AlertService, every_channel
from bot.sources.prometheus import CONCURRENCY, PrometheusPuller
from bot.storage.database import make_engine, migrate
from bot.storage.database import session as open_session
from bot.storage.tables import MetricSampleRow


def breaching(models: int, metrics: int, phase: int) -> set[tuple[str, str]]:
    """1% of the models, one metric each; phase 1 is a different 1% from phase 0."""
    offset = 7 if phase == 0 else 53
    return {(model_name(n), metric_name(n % metrics)) for n in range(models) if n % 100 == offset}


def model_name(n: int) -> str:
    return f"m-{n:05d}"


def metric_name(k: int) -> str:
    return f"g{k:02d}"


# ------------------------------------------------------------------ the exporter (child process)


def serve_exporter(models: int, metrics: int, port: int, *, jitter: bool) -> None:
    """``GET /metrics`` serves the gauges; ``POST /phase/<n>`` switches the breaching set. With
    ``jitter`` every gauge moves a little at every scrape (on the same side of its threshold), so
    every value the bot pulls has changed: no model's rules can be skipped as unchanged."""
    state: dict[str, Any] = {"text": b"", "phase": 0}
    noise = random.Random(7)

    def render(phase: int) -> None:
        breach = breaching(models, metrics, phase)
        lines = [f"# TYPE fleet_{metric_name(k)} gauge" for k in range(metrics)]
        for n in range(models):
            model = model_name(n)
            for k in range(metrics):
                metric = metric_name(k)
                value = 500.0 if (model, metric) in breach else float(n % 50)
                if jitter:
                    value += round(noise.random(), 3)
                lines.append(f'fleet_{metric}{{model="{model}"}} {value}')
        state["text"], state["phase"] = ("\n".join(lines) + "\n").encode(), phase

    render(0)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            if jitter:
                render(state["phase"])
            body = state["text"]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            render(int(self.path.rsplit("/", 1)[-1]))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


# ------------------------------------------------------------------ the run


@dataclass
class PullTiming:
    late: float
    pull: float
    """The whole pull: up to ``CONCURRENCY`` queries in flight while answers are parsed and stored."""
    storing: float
    """Of the pull, the time spent storing values (the rest is waiting on and parsing answers)."""
    evaluation: float

    @property
    def total(self) -> float:
        return self.pull + self.evaluation


@dataclass
class Run:
    pulls: list[PullTiming] = field(default_factory=list)
    breach_to_alert: float | None = None
    exact: bool = False
    open_alerts: int = 0
    expected: int = 0
    sample_rows: int = 0


def write_config(root: Path, metrics: int, interval: int, windowed: int) -> Path:
    """One rule per metric on its value and, for the first ``windowed`` metrics, one on its hour's
    average (never breached: values reach 500), which Prometheus evaluates in PromQL."""
    (root / "rules").mkdir(parents=True)
    (root / "runbooks").mkdir()
    (root / "runbooks" / "default.md").write_text("# {model}\n")
    names = [metric_name(k) for k in range(metrics)]
    rules = "".join(
        f"  - {{name: high_{m}, condition: {m} > 100, severity: P3, title: '{m} on {{model}}', cooldown: 0s}}\n"
        for m in names
    )
    rules += "".join(
        f"  - {{name: hourly_{m}, condition: 'avg_over_time({m}, \"1h\") > 1000', severity: P3, title: t}}\n"
        for m in names[:windowed]
    )
    queries = "".join(f"    - {{model: '*', metric: {m}, query: 'max by (model) (fleet_{m})'}}\n" for m in names)
    (root / "rules" / "fleet.yaml").write_text(
        f"settings:\n  accept_unknown_models: true\n  storm_threshold: 100000\n  evaluation_interval: {interval}s\n"
        "metrics:\n" + "".join(f"  - {{name: {m}}}\n" for m in names) + "rules:\n" + rules
        + f"prometheus:\n  interval: {interval}s\n  timeout: {max(1, interval - 5)}s\n  queries:\n" + queries
    )  # fmt: skip
    return root


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (httpx.HTTPError, ValueError):  # not up yet, or a starting server's non-JSON answer
            pass
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def count_series(url: str, metric: str) -> int:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": f"count(fleet_{metric})"}, timeout=10).json()
    result = answer.get("data", {}).get("result", [])
    return int(float(result[0]["value"][1])) if result else 0


def run(args: argparse.Namespace, database_url: str, tmp: Path) -> Run:
    exporter_port, prometheus_port = free_port(), free_port()
    exporter = subprocess.Popen(
        [sys.executable, __file__, "--serve-exporter", "--models", str(args.models), "--metrics", str(args.metrics),
         "--port", str(exporter_port), *(["--jitter"] if args.jitter else [])],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert exporter.stdout is not None
    exporter.stdout.readline()
    (tmp / "prometheus.yml").write_text(
        f"global: {{scrape_interval: {args.scrape}s, scrape_timeout: {min(args.scrape, 10)}s}}\n"
        f"scrape_configs:\n  - job_name: fleet\n    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
    )
    url = f"http://127.0.0.1:{prometheus_port}"
    prometheus = start_prometheus(tmp, prometheus_port)
    try:
        last = metric_name(args.metrics - 1)
        wait_for(lambda: count_series(url, last) == args.models, 120, "Prometheus' first full scrape")
        return measure(args, database_url, tmp, url, exporter_port)
    finally:
        prometheus.terminate()
        exporter.terminate()
        prometheus.wait(timeout=30)
        exporter.wait(timeout=30)


def measure(args: argparse.Namespace, database_url: str, tmp: Path, url: str, exporter_port: int) -> Run:
    config = load_config(write_config(tmp / "config", args.metrics, args.interval, args.windowed))
    engine = make_engine(database_url)
    migrate(engine)
    service = AlertService(engine, SystemClock(), lambda: config, every_channel(["log"]))
    storing = [0.0]

    def ingest(points: list[Point]) -> int:
        started = time.monotonic()
        try:
            return service.ingest_pulled(points)
        finally:
            storing[0] += time.monotonic() - started

    puller = PrometheusPuller(url, lambda: config, ingest, SystemClock())
    result = Run()
    start = time.monotonic() + 1.0
    switched_at: float | None = None
    expected = breaching(args.models, args.metrics, 1)
    for i in range(args.pulls):
        tick = start + i * args.interval
        time.sleep(max(0.0, tick - time.monotonic()))
        began = time.monotonic()
        storing[0] = 0.0
        puller.run_once()
        pulled = time.monotonic()
        service.evaluate_once()
        done = time.monotonic()
        result.pulls.append(PullTiming(began - tick, pulled - began, storing[0], done - pulled))
        with open_session(engine) as s:
            fired = {(a.model, a.rule.removeprefix("high_")) for a in alert_store.open_alerts(s).values()}
        if switched_at is not None and result.breach_to_alert is None and expected <= fired:
            result.breach_to_alert = done - switched_at
        if i == 1:  # after the second pull: a new 1% breaches, the old recovers
            httpx.post(f"http://127.0.0.1:{exporter_port}/phase/1", timeout=30)
            switched_at = time.monotonic()
    result.exact, result.open_alerts, result.expected = fired == expected, len(fired), len(expected)
    with open_session(engine) as s:
        result.sample_rows = s.exec(select(func.count()).select_from(MetricSampleRow)).one()
    engine.dispose()
    return result


def report(args: argparse.Namespace, name: str, result: Run) -> None:
    steady = result.pulls[1:] or result.pulls
    total_target = 5.0 if args.models >= 10_000 else 1.0

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:8.0f} ms   max {max(values) * 1000:8.0f} ms"

    late = [p.late for p in result.pulls]
    on_time = all(p.late < args.interval for p in result.pulls) and all(p.total < args.interval for p in result.pulls)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{name}: {args.models:,} models × {args.metrics} metrics, scraped every {args.scrape} s, "
          f"pulled every {args.interval} s, {len(result.pulls)} pulls")  # fmt: skip
    print(f"  pull (queries in flight {CONCURRENCY}) {ms([p.pull for p in steady])}")
    print(f"    of which storing the values {ms([p.storing for p in steady])}")
    print(f"    waiting on and parsing      {ms([p.pull - p.storing for p in steady])}")
    print(f"  evaluation after the pull     {ms([p.evaluation for p in steady])}")
    print(f"  pull + evaluation             {ms([p.total for p in steady])}   target < {total_target:g} s")
    print(f"  start behind its tick         {ms(late)}   every pull on time: {on_time}")
    btoa = f"{result.breach_to_alert:.1f} s" if result.breach_to_alert is not None else "never"
    print(f"  breach to alert               {btoa}   target < {args.scrape + args.interval} s (scrape + pull interval)")
    print(f"  bot peak RSS                  {rss:.0f} MB   target < 400 MB")
    print(f"  open alerts == breaching set  {result.exact} ({result.open_alerts} open, {result.expected} breaching)")
    print(f"  sample rows written per pull  {result.sample_rows / len(result.pulls):,.0f}   ({args.windowed} windowed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--pulls", type=int, default=4, help="at least 3: the breach switches after the second")
    parser.add_argument("--interval", type=int, default=30)
    parser.add_argument("--scrape", type=int, default=15)
    parser.add_argument("--windowed", type=int, default=0, help="metrics also read by an avg_over_time(m, '1h') rule")
    parser.add_argument("--database-url", help="also run on this PostgreSQL server (a fresh database)")
    parser.add_argument("--jitter", action="store_true", help="every gauge changes at every scrape (no quiet models)")
    parser.add_argument("--serve-exporter", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_exporter:
        serve_exporter(args.models, args.metrics, args.port, jitter=args.jitter)
        return
    if not PROMETHEUS.is_file():
        raise SystemExit(f"{PROMETHEUS} is missing: apt-get install prometheus")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        name = "PostgreSQL" if args.database_url else "SQLite (file)"
        with scratch_database(args.database_url, tmp / "bot.db") as url:
            report(args, name, run(args, url, tmp))


if __name__ == "__main__":
    main()
