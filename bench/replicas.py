"""Benchmark: replicas add throughput (issue 16, point 5): two ``serve`` processes on one
PostgreSQL database sustain at least 1.6× the ingest and evaluation rate of one, exactly once.

Why: a replica is the way to scale the bot past one process (one Python process uses one core).
That only holds if the second process's work is new work — not the same pass run twice, nor
requests queueing behind the same rows — and if the database still keeps every alert and
notification exactly once while both write.

What runs, all on 127.0.0.1: ``python -m bot serve`` once, then twice (two ports), on a scratch
database created on ``--database-url``'s server and dropped afterwards (a fresh one for each
measurement, so the two-process run never finds the one-process run's rows), with the Slack Web
API and PagerDuty emulators (``tests/emulators``) as ``bench/fleet.py`` starts them. The workload
is ``bench/fleet.py``'s: ``bench/evaluate.py``'s 20 rules and model settings for ``--models``
models, each pushing 20 metrics, 1% of the models breaching.

1. **Ingest rate**: ``--clients`` closed-loop clients (each sends its next request when the last
   is answered) push requests of 200 samples (10 models × 20 metrics, every value moving, as
   ``bench/fleet.py`` sends them) for ``--seconds``, to one process, then to two with the clients
   split evenly between them. Evaluation is pushed out of the way (``EVALUATION_INTERVAL`` of a
   day: its first tick is at midnight UTC), so the figure is ingest alone. Printed: samples
   accepted per second (``202``), p50/p99 request latency, errors (must be 0), and the ratio of
   two processes to one (target ≥ 1.6).
2. **Evaluation rate**: the database seeded with every model's latest samples; passes every
   ``--evaluation-interval`` seconds. After each pass of every process, a mover pushes one new
   value for every model through the ingest API (requests of 200 models, the metric a rule reads
   that it moves turning round from one round to the next), so no pass can leave a model out as
   unchanged (``bot.evaluation.quiet`` skips a model only when all its values are as the last pass
   saw them) while the mover adds little load. The first ``--warmup`` passes are left out (the
   first opens the breaching models' alerts), then ``--passes`` are measured. Evaluation rate of a
   process = models in its share / its mean pass time (the growth of the
   ``incident_bot_evaluation_seconds`` histogram's sum over that of its count); the processes'
   rates are summed. The share is the process's ``incident_bot_evaluation_models`` gauge (its
   last pass's share when evaluation is sharded across processes); where a process does not
   export it, every configured model (each process evaluates all of them) — the output says which
   applied. Without sharding, two processes each evaluating every model is the same work done
   twice, so their summed rate is not added throughput. Target ≥ 1.6× one process.
3. **Exactly once**, in the database after the two-process evaluation (and the one-process one):
   no alert key open twice, and every firing alert has exactly one Slack ``alert.fired`` row in
   the outbox (the row whose delivery posts its incident's root message, or adds the alert to it;
   ``tests/e2e/test_replicas.py`` checks the messages themselves). Delivery is not waited for:
   the Slack emulator paces posts at one a second per channel, as Slack does.
4. **CPU**: seconds used during each measurement by each bot process, by the PostgreSQL backends
   serving the scratch database (where ``/proc`` shows them), by this load generator, and the
   whole machine's busy share from ``/proc/stat``, so a reader sees whether the 2 cores were
   saturated (then a second process can only take cores from the first).

Small, as a smoke test (about 40 s): ``--models 200 --seconds 3 --passes 2 --evaluation-interval 2``.
Exit status 0 when every target is met. Figures go to ``bench/RESULTS.md``; this is not a timed test.

    python bench/replicas.py [--models 10000] [--seconds 20] [--clients 32] [--evaluation-interval 5]
        [--passes 4] [--database-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import aiohttp
import fleet
import httpx
import interactions
import soak
from harness import ChildServer, free_port, scratch_database, stop_all, wait_healthy
from ingest import Cell, saturate
from sqlalchemy import func, text
from sqlmodel import col, select

from bot.storage.database import make_engine, migrate
from bot.storage.database import session as open_session
from bot.storage.tables import AlertRow, OutboxRow

TARGET_RATIO = 1.6
BATCH = 200
"""Samples per ingest request: ten models' 20 metrics, as a metrics relay sends them."""
PER_REQUEST = BATCH // fleet.METRICS
MOVER_CLIENTS = 4
IDLE_INTERVAL = "86400s"
"""Evaluation during the ingest measurement: the first tick of a one-day grid is at midnight UTC."""
HISTOGRAM = "incident_bot_evaluation_seconds"
SHARE_GAUGE = "incident_bot_evaluation_models"
EVALUATORS_GAUGE = "incident_bot_evaluators"
MISSED = "incident_bot_evaluations_missed_total"
WANTED = re.compile(
    rf"^({HISTOGRAM}_sum|{HISTOGRAM}_count|{SHARE_GAUGE}|{EVALUATORS_GAUGE}|{MISSED}) (\S+)$", re.MULTILINE
)
"""The unlabelled samples this benchmark reads from ``/metrics`` (a regular expression: it scrapes
every quarter second, and the load generator shares the machine's cores)."""
HEADERS = {"Authorization": f"Bearer {interactions.INGEST_TOKEN}", "Content-Type": "application/json"}


# ------------------------------------------------------------------ processes and their books
@dataclass
class Replica:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def start_serves(
    count: int, env: dict[str, str], folder: Path, tag: str, processes: list[subprocess.Popen[bytes]]
) -> list[Replica]:
    """``count`` ``serve`` processes on ports of their own, each answering ``/healthz``."""
    replicas = []
    for i in range(count):
        port, log = free_port(), folder / f"{tag}-serve-{i + 1}.log"
        command = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)]
        fleet.start(command, env, log, processes)
        replicas.append(Replica(f"serve {i + 1}", f"http://127.0.0.1:{port}", processes[-1], log))
    for replica in replicas:
        wait_healthy(replica.url, replica.proc, replica.log, timeout=120.0)
    return replicas


def scrape(replica: Replica) -> dict[str, float]:
    """The unlabelled samples of the process's ``/metrics`` that this benchmark reads."""
    exposition = httpx.get(f"{replica.url}/metrics", timeout=10).text
    return {match[1]: float(match[2]) for match in WANTED.finditer(exposition)}


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


def backend_pids(url: str) -> set[int]:
    """The PostgreSQL backends connected to the scratch database (this benchmark's own included)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :name"), {"name": database_name(url)}
            )
            return {int(row[0]) for row in rows}
    finally:
        engine.dispose()


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot, from ``/proc/stat``."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_or_none(pid: int) -> float | None:
    try:
        return soak.cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class Cpu:
    """CPU seconds over a measurement: per bot process, the PostgreSQL backends, this generator."""

    used: dict[str, float] = field(default_factory=dict)
    backends: int = 0
    backends_seen: bool = True
    wall: float = 0.0
    machine_busy: float = 0.0
    """The whole machine's busy share of all its CPUs over the measurement."""

    def line(self) -> str:
        parts = [f"{name} {used:.1f} s ({used / self.wall:.0%} of a core)" for name, used in self.used.items()]
        if not self.backends_seen:
            parts.append("PostgreSQL backends: not visible in /proc here")
        cores = os.cpu_count() or 1
        return (
            f"CPU over {self.wall:.1f} s: " + ", ".join(parts)
            + f"; the machine was busy {self.machine_busy:.0%} of its {cores} CPUs "
            f"({self.machine_busy * cores:.2f} cores)"
        )  # fmt: skip


@contextmanager
def cpu_watch(replicas: list[Replica], url: str, others: dict[str, int]) -> Iterator[Cpu]:
    """CPU used by each process (``others`` too: the emulators) while the ``with`` body runs."""
    cpu = Cpu()
    pids = {r.name: r.proc.pid for r in replicas} | others
    backends = backend_pids(url)
    before = {name: soak.cpu_seconds(pid) for name, pid in pids.items()}
    before_backends = {pid: cpu_or_none(pid) for pid in backends}
    generator, machine, wall = sum(os.times()[:2]), machine_jiffies(), time.perf_counter()
    yield cpu
    cpu.wall = time.perf_counter() - wall
    busy, total = (now - then for now, then in zip(machine_jiffies(), machine, strict=True))
    cpu.machine_busy = busy / total if total else 0.0
    cpu.used = {name: soak.cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    after = {pid: cpu_or_none(pid) for pid in backends | backend_pids(url)}
    readable = {pid: used for pid, used in after.items() if used is not None}
    cpu.backends_seen = bool(readable)
    if readable:
        cpu.used["PostgreSQL backends"] = sum(
            used - (before_backends.get(pid) or 0.0) for pid, used in readable.items()
        )
        cpu.backends = len(readable)
    cpu.used["load generator"] = sum(os.times()[:2]) - generator


def tracebacks(replicas: list[Replica]) -> tuple[int, bool]:
    """Tracebacks in the processes' logs, and whether every process was still running."""
    count = sum(r.log.read_text(errors="replace").count("Traceback") for r in replicas)
    return count, all(r.proc.poll() is None for r in replicas)


# ------------------------------------------------------------------ 1. ingest
@dataclass
class IngestRun:
    processes: int
    cell: Cell
    cpu: Cpu
    tracebacks: int
    alive: bool


def ingest_bodies(batches: fleet.Batches) -> list[bytes]:
    """Two rounds of the fleet (at least 200 requests, at most 2,000), made before the clock runs so
    the load generator spends its core on sending; a model's values differ from one push to the next."""
    count = min(2000, max(200, 2 * batches.per_round))
    return [batches.bot_body(n) for n in range(count)]


def measure_ingest(
    args: argparse.Namespace,
    processes_wanted: int,
    bodies: list[bytes],
    env: dict[str, str],
    folder: Path,
    others: dict[str, int],
) -> IngestRun:
    with scratch_database(args.database_url, folder / "unused.db", prefix="ib_replicas") as url:
        engine = make_engine(url)
        try:
            migrate(engine)  # before the processes start, so none of them races another to migrate
        finally:
            engine.dispose()
        processes: list[subprocess.Popen[bytes]] = []
        try:
            replicas = start_serves(
                processes_wanted, env | {"DATABASE_URL": url, "EVALUATION_INTERVAL": IDLE_INTERVAL}, folder,
                f"ingest-{processes_wanted}", processes,
            )  # fmt: skip
            urls = [f"{r.url}/api/v1/metrics" for r in replicas]

            def run(seconds: float) -> Cell:
                return asyncio.run(
                    saturate(
                        lambda i: urls[i % len(urls)],
                        lambda client, n, _batch: bodies[(n * args.clients + client) % len(bodies)],
                        HEADERS, batch=BATCH, clients=args.clients, seconds=seconds, ok=202,
                    )
                )  # fmt: skip

            run(min(2.0, args.seconds))  # warm-up: connections, pools, caches; not counted
            with cpu_watch(replicas, url, others) as cpu:
                cell = run(args.seconds)
            count, alive = tracebacks(replicas)
        finally:
            stop_all(processes)
    return IngestRun(processes_wanted, cell, cpu, count, alive)


# ------------------------------------------------------------------ 2. evaluation
@dataclass
class ProcessPasses:
    name: str
    passes: float
    seconds: float
    share: float
    share_from_gauge: bool
    evaluators: float | None
    missed: float
    """Ticks the process skipped because a pass ran past the next one."""

    @property
    def mean(self) -> float:
        return self.seconds / self.passes if self.passes else float("nan")

    @property
    def rate(self) -> float:
        return self.share / self.mean if self.passes else 0.0


@dataclass
class EvaluationRun:
    processes: int
    per_process: list[ProcessPasses]
    rounds: int
    straddled: int
    """Mover rounds that were still being pushed when a tick came: that pass saw part of a round."""
    mover_errors: int
    mover_seconds: list[float]
    cpu: Cpu
    doubled_keys: int
    firing: int
    incidents: int
    roots_wrong: int
    """Firing alerts without exactly one Slack ``alert.fired`` row (none or several)."""
    open_alerts: int
    tracebacks: int
    alive: bool

    @property
    def rate(self) -> float:
        return sum(p.rate for p in self.per_process)

    @property
    def gauge(self) -> bool:
        return all(p.share_from_gauge for p in self.per_process)


class Mover:
    """Pushes one new value for every model, through the ingest API, spread over the processes."""

    def __init__(self, values: dict[str, dict[str, float | str]], urls: list[str]) -> None:
        self.values = values
        self.models = list(values)
        first = values[self.models[0]]
        self.metrics = sorted(k for k, v in first.items() if not isinstance(v, str) and k not in fleet.EXTRA_METRICS)
        self.urls = urls
        self.round = 0
        self.errors = 0

    def bodies(self) -> list[bytes]:
        """This round's requests: every model's value of one metric a rule reads, within
        :data:`fleet.JITTER` of its own (a breach stays a breach)."""
        metric = self.metrics[self.round % len(self.metrics)]
        rng = random.Random(self.round)
        items = [
            {"model": model, "metrics": {metric: round(float(self.values[model][metric]) * rng.uniform(
                1 - fleet.JITTER, 1 + fleet.JITTER), 6)}}
            for model in self.models
        ]  # fmt: skip
        return [json.dumps(items[i : i + BATCH]).encode() for i in range(0, len(items), BATCH)]

    async def push(self) -> None:
        bodies = self.bodies()
        self.round += 1
        queue = list(enumerate(bodies))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=soak.TIMEOUT)) as http:

            async def client() -> None:
                while queue:
                    n, body = queue.pop()
                    try:
                        async with http.post(self.urls[n % len(self.urls)], data=body, headers=HEADERS) as answer:
                            await answer.read()
                            self.errors += answer.status != 202
                    except (TimeoutError, aiohttp.ClientError):
                        self.errors += 1

            await asyncio.gather(*(client() for _ in range(MOVER_CLIENTS)))


def wait_passes(replicas: list[Replica], at_least: list[float], timeout: float) -> list[dict[str, float]]:
    """Scrape until every process's pass count reached ``at_least``; the last scrapes."""
    deadline = time.monotonic() + timeout
    while True:
        books = [scrape(r) for r in replicas]
        if all(b.get(f"{HISTOGRAM}_count", 0.0) >= n for b, n in zip(books, at_least, strict=True)):
            return books
        for r in replicas:
            if r.proc.poll() is not None:
                raise RuntimeError(f"{r.name} exited:\n{r.log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"passes {[b.get(f'{HISTOGRAM}_count') for b in books]} short of {at_least} "
                             f"after {timeout:.0f} s")  # fmt: skip
        time.sleep(0.25)


def exactly_once(url: str) -> tuple[int, int, int, int, int]:
    """Alert keys open more than once; firing alerts; their incidents; firing alerts without
    exactly one Slack ``alert.fired`` row in the outbox (the row whose delivery posts the
    incident's root message, or adds the alert to it); alerts open (firing or pending)."""
    engine = make_engine(url)
    try:
        with open_session(engine) as s:
            open_ = AlertRow.state != "resolved"
            doubled = s.exec(
                select(AlertRow.dedup_key).where(open_).group_by(col(AlertRow.dedup_key)).having(func.count() > 1)
            ).all()
            open_count = int(s.exec(select(func.count()).select_from(AlertRow).where(open_)).one())
            firing = s.exec(select(AlertRow.id, AlertRow.incident_id).where(AlertRow.state == "firing")).all()
            fired = dict(
                s.exec(
                    select(OutboxRow.alert_id, func.count())
                    .where(OutboxRow.channel == "slack", OutboxRow.kind == "alert.fired")
                    .group_by(col(OutboxRow.alert_id))
                ).all()
            )
    finally:
        engine.dispose()
    incidents = {incident for _, incident in firing}
    wrong = sum(1 for alert, incident in firing if incident is None or fired.get(alert) != 1)
    return len(doubled), len(firing), len(incidents), wrong, open_count


def measure_evaluation(
    args: argparse.Namespace, processes_wanted: int, workload: tuple[Path, dict[str, dict[str, float | str]]],
    env: dict[str, str], folder: Path, others: dict[str, int],
) -> EvaluationRun:  # fmt: skip
    config_root, values = workload
    interval = args.evaluation_interval
    with scratch_database(args.database_url, folder / "unused.db", prefix="ib_replicas") as url:
        fleet.seed_samples(url, config_root, values)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            replicas = start_serves(
                processes_wanted, env | {"DATABASE_URL": url}, folder, f"evaluation-{processes_wanted}", processes
            )
            mover = Mover(values, [f"{r.url}/api/v1/metrics" for r in replicas])
            timeout = 3 * interval + 120.0
            books = wait_passes(replicas, [float(args.warmup)] * len(replicas), timeout)
            # from the end of a pass: the mover's round lands before the next tick
            asyncio.run(mover.push())
            start = wait_passes(replicas, [b[f"{HISTOGRAM}_count"] + 1 for b in books], timeout)
            straddled, pushes = 0, []
            with cpu_watch(replicas, url, others) as cpu:
                books = start
                for _ in range(args.passes):
                    began = time.time()
                    asyncio.run(mover.push())
                    ended = time.time()
                    pushes.append(ended - began)
                    straddled += int(ended // interval) != int(began // interval)
                    books = wait_passes(replicas, [b[f"{HISTOGRAM}_count"] + 1 for b in books], timeout)
            count, alive = tracebacks(replicas)
        finally:
            stop_all(processes)
        doubled, firing, incidents, wrong, open_count = exactly_once(url)
    per_process = []
    models = len(values)
    for replica, first, last in zip(replicas, start, books, strict=True):
        passes = last[f"{HISTOGRAM}_count"] - first[f"{HISTOGRAM}_count"]
        seconds = last[f"{HISTOGRAM}_sum"] - first[f"{HISTOGRAM}_sum"]
        gauge = last.get(SHARE_GAUGE)
        per_process.append(
            ProcessPasses(
                replica.name, passes, seconds, models if gauge is None else gauge, gauge is not None,
                last.get(EVALUATORS_GAUGE),
                last.get(MISSED, 0.0) - first.get(MISSED, 0.0),
            )
        )  # fmt: skip
    return EvaluationRun(
        processes_wanted, per_process, mover.round, straddled, mover.errors, pushes, cpu,
        doubled, firing, incidents, wrong, open_count, count, alive,
    )  # fmt: skip


# ------------------------------------------------------------------ the report
def ratio(two: float, one: float) -> float:
    return two / one if one else float("nan")


def figures(ingest: list[IngestRun], evaluation: list[EvaluationRun]) -> list[fleet.Figure]:
    one_i, two_i = ingest
    one_e, two_e = evaluation
    ingest_ratio, evaluation_ratio = ratio(two_i.cell.rate, one_i.cell.rate), ratio(two_e.rate, one_e.rate)
    errors = [one_i.cell.errors, two_i.cell.errors, one_e.mover_errors, two_e.mover_errors]
    logs = [(r.tracebacks, r.alive) for r in ingest] + [(r.tracebacks, r.alive) for r in evaluation]
    shares = "each process's share from its gauge" if two_e.gauge else "gauge absent: every model in each process"
    return [
        fleet.Figure("ingest, samples/s accepted", f"{two_i.cell.rate:,.0f}", "-", f"{one_i.cell.rate:,.0f}", True),
        fleet.Figure(
            "ingest, p50 / p99 request latency",
            f"{two_i.cell.quantile(0.5):.1f} / {two_i.cell.quantile(0.99):.1f} ms",
            "-",
            f"{one_i.cell.quantile(0.5):.1f} / {one_i.cell.quantile(0.99):.1f} ms",
            True,
        ),
        fleet.Figure(
            "ingest, two processes / one",
            f"{ingest_ratio:.2f}×",
            f"≥ {TARGET_RATIO:g}×",
            "-",
            ingest_ratio >= TARGET_RATIO,
        ),
        fleet.Figure(
            f"evaluation, models/s of pass time ({shares})", f"{two_e.rate:,.0f}", "-", f"{one_e.rate:,.0f}", True
        ),
        fleet.Figure(
            "evaluation, two processes / one",
            f"{evaluation_ratio:.2f}×",
            f"≥ {TARGET_RATIO:g}×",
            "-",
            evaluation_ratio >= TARGET_RATIO,
        ),
        fleet.Figure(
            "mover rounds straddling a tick (ticks missed)",
            f"{two_e.straddled} of {two_e.rounds} ({sum(p.missed for p in two_e.per_process):g})",
            "0",
            f"{one_e.straddled} of {one_e.rounds} ({sum(p.missed for p in one_e.per_process):g})",
            two_e.straddled == one_e.straddled == 0,
        ),
        fleet.Figure(
            "exactly once: alert keys open twice, firing alerts without one Slack root row",
            f"{two_e.doubled_keys}, {two_e.roots_wrong} (of {two_e.firing})",
            "0, 0",
            f"{one_e.doubled_keys}, {one_e.roots_wrong} (of {one_e.firing})",
            two_e.doubled_keys == two_e.roots_wrong == one_e.doubled_keys == one_e.roots_wrong == 0
            and two_e.firing > 0,
        ),
        fleet.Figure(
            "errors (ingest requests, mover requests)",
            f"{two_i.cell.errors}, {two_e.mover_errors}",
            "0, 0",
            f"{one_i.cell.errors}, {one_e.mover_errors}",
            not any(errors),
        ),
        fleet.Figure(
            "tracebacks in the logs, processes alive",
            f"{sum(t for t, _ in logs)}, {'yes' if all(a for _, a in logs) else 'NO'}",
            "0, yes",
            "-",
            all(t == 0 and a for t, a in logs),
        ),
    ]


def report(
    args: argparse.Namespace, ingest: list[IngestRun], evaluation: list[EvaluationRun], load_before: tuple[float, ...]
) -> bool:
    table = figures(ingest, evaluation)
    loads = [" ".join(f"{x:.2f}" for x in load) for load in (load_before, os.getloadavg())]
    print(f"\nincident-bot replicas — {time.strftime('%Y-%m-%d %H:%M:%S')}, PostgreSQL; one serve against two")
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; load average before {loads[0]}, after {loads[1]}"
    )
    print(
        f"{args.models:,} models × {fleet.METRICS} metrics, 20 rules; ingest: {args.clients} closed-loop clients, "
        f"{BATCH} samples a request, {args.seconds:g} s; evaluation every {args.evaluation_interval:g} s, "
        f"{args.warmup} pass(es) left out, {args.passes} measured, one new value for every model before each"
    )
    for line in fleet.table(table, measured="two serves", peer="one serve"):
        print(line)
    for pushed in ingest:
        print(
            f"ingest, {pushed.processes} process(es): {len(pushed.cell.latencies):,} requests in "
            f"{pushed.cell.seconds:.1f} s, {pushed.cell.errors} errors; {pushed.cpu.line()}"
        )
    for run in evaluation:
        print(f"evaluation, {run.processes} process(es): {run.rate:,.0f} models/s summed; {run.cpu.line()}")
        for p in run.per_process:
            source = f"{SHARE_GAUGE} gauge" if p.share_from_gauge else f"{SHARE_GAUGE} absent: all configured models"
            evaluators = "absent" if p.evaluators is None else f"{p.evaluators:g}"
            print(
                f"  {p.name}: {p.passes:g} passes, mean {p.mean * 1000:,.0f} ms, share {p.share:,.0f} models "
                f"({source}; {EVALUATORS_GAUGE} {evaluators}) → {p.rate:,.0f} models/s; ticks missed {p.missed:g}"
            )
        pushes = run.mover_seconds
        print(
            f"  mover: {run.rounds} rounds of {args.models:,} samples, {max(pushes, default=0) * 1000:,.0f} ms at "
            f"most each, {run.mover_errors} errors; at the end {run.open_alerts:,} alerts open, {run.firing:,} "
            f"firing in {run.incidents:,} incidents; alert keys open twice {run.doubled_keys}; firing alerts "
            f"without exactly one Slack alert.fired row {run.roots_wrong}"
        )
    if not evaluation[1].gauge:
        print(
            f"note: no process exported {SHARE_GAUGE}, so each evaluated every model: two processes do the same "
            "passes twice, and their summed rate counts that duplicated work, not added throughput"
        )
    met = all(f.met for f in table)
    print(f"verdict: {'PASS' if met else 'FAIL'}")
    return met


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=32, help="closed-loop ingest clients")
    parser.add_argument("--seconds", type=float, default=20.0, help="ingest measurement, per process count")
    parser.add_argument(
        "--evaluation-interval",
        type=float,
        default=10.0,
        help="seconds; room for a pass and the mover's round (at 10,000 models on 2 busy cores, 3.5 s and 2.5 s)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="passes left out (the first opens the alerts)")
    parser.add_argument("--passes", type=int, default=4, help="passes measured per process")
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server to create scratch databases on",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=16)
    return parser.parse_args()


def main() -> int:
    args = arguments()
    load_before = os.getloadavg()
    print(f"replicas: load average {' '.join(f'{x:.2f}' for x in load_before)} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="ib-replicas-") as name, ExitStack() as stack:
        folder = Path(name)
        config_root = folder / "config"
        _config, _rules, _hot, values = fleet.fleet_workload(config_root, args.models, random.Random(args.seed))
        slack = interactions.start_emulator(folder / "slack.log")
        stack.callback(slack.stop)
        pagerduty = ChildServer([soak.__file__, "--role", "pagerduty"], folder / "pagerduty.log")
        stack.callback(pagerduty.stop)
        others = {"Slack emulator": slack.proc.pid, "PagerDuty emulator": pagerduty.proc.pid}
        env = fleet.bot_environment(args, "", config_root, slack.base_url, pagerduty.base_url)
        bodies = ingest_bodies(fleet.Batches(list(values), values, PER_REQUEST))
        ingest = []
        for count in (1, 2):
            ingest.append(measure_ingest(args, count, bodies, env, folder, others))
            cell = ingest[-1].cell
            print(
                f"replicas: ingest, {count} process(es): {cell.rate:,.0f} samples/s, p99 {cell.quantile(0.99):.1f} ms, "
                f"{cell.errors} errors",
                flush=True,
            )
        evaluation = []
        for count in (1, 2):
            evaluation.append(measure_evaluation(args, count, (config_root, values), env, folder, others))
            print(f"replicas: evaluation, {count} process(es): {evaluation[-1].rate:,.0f} models/s", flush=True)
    return 0 if report(args, ingest, evaluation, load_before) else 1


if __name__ == "__main__":
    sys.exit(main())
