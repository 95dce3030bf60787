"""Benchmark: the whole system under issue 16's fleet workload, in one run (issue 16, point 6).

Target workload (full size, the defaults): 10,000 models pushing 20 metrics every 30 s, that is
6,667 samples a second in requests of 200 samples (ten models each, as a metrics relay sends
them); 20 rules per model; 1% of the models breaching; 10,000 open incidents escalating; Slack
clicks at 20 a second. Everything runs on 127.0.0.1:

- ``python -m bot serve`` (or, with ``--split``, ``serve --web-only`` beside ``python -m bot
  worker --port``, or ``--workers`` of them, which share the evaluation, or with ``--halves`` a
  ``worker --only evaluation`` beside a ``worker --only delivery``), on a SQLite file or on
  a scratch database created on ``--database-url``'s PostgreSQL server and dropped afterwards;
  the Slack Web API and PagerDuty emulators (``tests/emulators``) in child processes, reached
  through ``SLACK_API_URL`` and ``PAGERDUTY_EVENTS_URL``;
- the peers, in the same run: Debian's Pushgateway (``/usr/bin/prometheus-pushgateway``, left
  out with a note when it is not installed or with ``--no-pushgateway``, which leaves the bot the
  cores Pushgateway would take) and a bare Bolt app that only acknowledges, with
  Bolt's defaults (``bench/interactions.py``'s baseline).

Before the bot starts, the database gets the configuration's latest samples of every model
(``bench/evaluate.py``'s 20 rules and model settings; 15 metrics of its workload plus 5 gauges no
rule reads; 1% of the models breaching, about half of their conditions true, the others all
healthy) and ``--alerts`` firing incidents of one alert each whose next escalation step falls due
during the run, spread uniformly over ``--seconds`` from ``--lead`` seconds after seeding
(``bench/escalation.py``'s seeding; those incidents are on models of their own, which the fleet's
rules do not evaluate, so only escalation and clicks touch them). The bot's first evaluation pass
after it starts therefore opens the breaching models' alerts, as a restart would.

Load, open loop (each request leaves at its scheduled time whether or not earlier ones were
answered, so a slow server shows as latency, not as a lower offered rate), from the end of the
first pass until ``--tail`` seconds after the last deadline; each target and its peer get the
same requests, the peer's half a period after the bot's, so both share the same machine:

- ingest: every model's 20 metrics once per ``--push-interval``, each value within 0.5% of the
  model's own (every model changes every push, as live metrics do), ``--batch`` samples per
  request, going round the fleet; the bot takes JSON at ``POST /api/v1/metrics``, Pushgateway
  the same samples in the text format at ``POST /metrics/job/fleet/instance/<batch>`` (a label
  value becomes an ``_info`` series with the value as a label);
- clicks: ``--click-rate`` a second, signed as Slack signs them: Acknowledge, Resolve and Runbook
  on the seeded incidents in turn (``bench/interactions.py``'s requests).

Figures, each beside its target and its peer:

- **evaluation, first pass**: the duration of the bot's first pass, which opens the breaching
  models' alerts (the count is printed), target under 0.5 s; **steady pass**: the longest of the
  passes during the load, target under 1 s. Both from the bot's own
  ``incident_bot_evaluation_seconds`` histogram, scraped from ``/metrics`` every second: a
  scrape that saw one more pass saw its duration as the growth of the histogram's sum. With
  several workers, each is scraped, and the first pass is the longest of their first passes;
- **ingest rate**: samples a second the bot accepted (``202``, its ``accepted`` count) over the
  load, against what Pushgateway accepted (``200``): at least as many; **ingest p99**: request
  latency, at most 2× Pushgateway's;
- **escalation lateness p99**: over every step that ran, the escalation event's time minus the
  step's deadline, read from the database at the end (what the bot's
  ``incident_bot_escalation_lateness_seconds`` histogram observes; its share of steps within 1 s
  is printed beside it), target under 1 s; steps still due at the end are counted and fail it;
- **RSS**: the bot process's peak ``VmHWM`` (with ``--split``, each process's), target 200 MB;
- **ack p99**: latency of the clicks' HTTP answers (Slack's ack), target under 100 ms and at most
  1.5× the bare Bolt app's p99 for the same clicks;
- **errors**: requests answered with another status or not at all, per target: must be 0. The
  load generator's own lateness (sends more than 50 ms behind schedule) is printed: when it is
  not 0, the offered load was lower than asked.

Scale it down with ``--models``, ``--alerts``, ``--seconds``, ``--push-interval``,
``--evaluation-interval``, ``--lead`` and ``--click-rate``: ``--models 200 --alerts 500 --seconds 8
--evaluation-interval 2 --lead 12 --push-interval 5`` takes about 30 s. The CPU time of every process
during the load is printed too: a peer that cannot keep up takes cores from the bot. Exit status 0
when every figure met its target. Figures go to ``bench/RESULTS.md`` ("Fleet"); this is not a
timed test.

    python bench/fleet.py [--models 10000] [--alerts 10000] [--seconds 60] [--split [--halves | --workers N]]
        [--database-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from math import nan
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import aiohttp
import escalation
import evaluate
import interactions
import soak
from harness import REPO, ChildServer, free_port, scratch_database, stop_all, wait_healthy
from ingest import PUSHGATEWAY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func
from sqlmodel import select

from bot.clock import SystemClock
from bot.config.loader import Config, load_config
from bot.service import AlertService, every_channel
from bot.storage.database import make_engine, migrate
from bot.storage.database import session as open_session
from bot.storage.tables import AlertRow, IncidentRow

METRICS = 20
"""Metrics each model pushes: the 15 of ``bench/evaluate.py``'s workload and these gauges."""
EXTRA_METRICS = tuple(f"fleet_gauge_{i}" for i in range(METRICS - 15))
BREACHING_SHARE = 0.5
"""Chance that a breaching model's metric lies past its threshold: about half its rules fire."""
JITTER = 0.005
TARGET_FIRST_PASS = 0.5
TARGET_STEADY_PASS = 1.0
TARGET_INGEST_P99_RATIO = 2.0
TARGET_LATENESS = 1.0
TARGET_RSS_MB = escalation.TARGET_RSS_MB
TARGET_ACK_MS = interactions.TARGET_P99_MS
TARGET_ACK_RATIO = interactions.TARGET_RATIO
CLICKS = len(interactions.ACTIONS)


# ------------------------------------------------------------------ set-up
def breaching(models: list[str]) -> set[str]:
    """Every hundredth model: 1% of the fleet."""
    return set(models[::100])


def fleet_workload(
    config_root: Path, models: int, rng: random.Random
) -> tuple[Config, list[evaluate.RuleSpec], set[str], dict[str, dict[str, float | str]]]:
    """The fleet's configuration written to ``config_root`` (``bench/evaluate.py``'s 20 rules and
    model settings, ``models`` models, :data:`EXTRA_METRICS` in the catalogue) and read back; its
    rules, its breaching models, and every model's latest values: 15 metrics of
    ``bench/evaluate.py``'s workload and the gauges no rule reads."""
    config_root.mkdir()
    rules = evaluate.rule_set(20, windowed=False)
    evaluate.write_config(config_root, models, rules, rng, extra_metrics=EXTRA_METRICS)
    config = load_config(config_root)
    hot = breaching(list(config.models))
    values = evaluate.sample_values(config, rng, lambda model: BREACHING_SHARE if model in hot else 0.0)
    for metrics in values.values():
        metrics.update({name: round(rng.uniform(0, 100), 2) for name in EXTRA_METRICS})
    return config, rules, hot, values


def seed_samples(url: str, config_dir: Path, values: dict[str, dict[str, float | str]]) -> None:
    """Every model's latest values, stored through the ingest path before the bot starts."""
    engine = make_engine(url)
    config = load_config(config_dir)
    try:
        migrate(engine)
        service = AlertService(engine, SystemClock(), lambda: config, every_channel(["slack"]))
        evaluate.load_samples(service, values, datetime.now(UTC))
    finally:
        engine.dispose()


def seeded_incidents(url: str) -> list[str]:
    """The ids of the incidents :func:`escalation.populate` wrote (the only ones before the bot runs)."""
    engine = make_engine(url)
    try:
        with open_session(engine) as s:
            return [str(i) for i in s.exec(select(IncidentRow.id)).all()]
    finally:
        engine.dispose()


def jittered(base: dict[str, float | str], rng: random.Random) -> dict[str, float | str]:
    """Each number within :data:`JITTER` of the model's own: every push changes every model, as live
    metrics do, so no pass can skip a model as unchanged; a breach stays a breach."""
    return {k: v if isinstance(v, str) else round(v * rng.uniform(1 - JITTER, 1 + JITTER), 4) for k, v in base.items()}


@dataclass
class Batches:
    """The ``n``-th ingest request's models and values, the same for the bot and for Pushgateway."""

    models: list[str]
    values: dict[str, dict[str, float | str]]
    per_request: int

    @property
    def per_round(self) -> int:
        """Requests in one round of the fleet: Pushgateway keeps one group per request of a round."""
        return -(-len(self.models) // self.per_request)

    def items(self, n: int) -> list[tuple[str, dict[str, float | str]]]:
        rng = random.Random(n)
        chosen = (self.models[(n * self.per_request + i) % len(self.models)] for i in range(self.per_request))
        return [(model, jittered(self.values[model], rng)) for model in chosen]

    def bot_body(self, n: int) -> bytes:
        """The bot's JSON: numbers under ``metrics``, text under ``labels``."""
        items = [
            {
                "model": model,
                "metrics": {k: v for k, v in values.items() if not isinstance(v, str)},
                "labels": {k: v for k, v in values.items() if isinstance(v, str)},
            }
            for model, values in self.items(n)
        ]
        return json.dumps(items).encode()

    def gateway_body(self, n: int) -> bytes:
        """The same samples in the text format; a label becomes an ``_info`` series carrying it."""
        lines = []
        for model, metrics in self.items(n):
            for name, value in metrics.items():
                if isinstance(value, str):
                    lines.append(f'fleet_{name}_info{{model="{model}",value="{value}"}} 1')
                else:
                    lines.append(f'fleet_{name}{{model="{model}"}} {value}')
        return ("\n".join(lines) + "\n").encode()


# ------------------------------------------------------------------ reading the bot's /metrics
@dataclass
class Scrapes:
    """The bot's evaluation histogram over time, and the processes' resident memory."""

    passes: list[float] = field(default_factory=list)
    """Duration of each pass seen after each process's first (a scrape that saw k > 1 new passes
    adds their mean k times)."""
    firsts: dict[str, float] = field(default_factory=dict)
    """Each evaluating process's first pass."""
    exact: bool = True
    seen: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Each process's histogram count and sum at its last scrape."""
    rss_kb: dict[str, int] = field(default_factory=dict)

    def add(self, exposition: str, source: str = "bot") -> None:
        """One scrape of ``source``: the passes finished since its last, each as the growth of the sum."""
        families = {f.name: f for f in text_string_to_metric_families(exposition)}
        samples = {s.name: s.value for s in families["incident_bot_evaluation_seconds"].samples}
        count, total = samples["incident_bot_evaluation_seconds_count"], samples["incident_bot_evaluation_seconds_sum"]
        last_count, last_total = self.seen.get(source, (0.0, 0.0))
        new = int(count - last_count)
        if new:
            self.exact = self.exact and new == 1
            passes = [(total - last_total) / new] * new
            if source not in self.firsts:
                self.firsts[source], passes = passes[0], passes[1:]
            self.passes += passes
        self.seen[source] = (count, total)

    @property
    def first(self) -> float:
        """The first pass: with several evaluators, the longest of their first passes (they run
        at the same tick, each over its share)."""
        return max(self.firsts.values())

    def watch_rss(self, pids: dict[str, int]) -> None:
        for name, pid in pids.items():
            self.rss_kb[name] = max(self.rss_kb.get(name, 0), soak.rss_kb(pid))


def lateness_histogram(expositions: Iterable[str]) -> tuple[float, float]:
    """Steps the lateness histograms of the processes that escalate counted, and how many of them within 1 s."""
    count = within = 0.0
    for exposition in expositions:
        family = next(
            f
            for f in text_string_to_metric_families(exposition)
            if f.name == "incident_bot_escalation_lateness_seconds"
        )
        count += next(s.value for s in family.samples if s.name.endswith("_count"))
        within += next(s.value for s in family.samples if s.name.endswith("_bucket") and float(s.labels["le"]) == 1.0)
    return count, within


def open_alert_count(url: str) -> int:
    """Alerts open (firing or pending): after the first pass, the seeded ones and those it opened."""
    engine = make_engine(url)
    try:
        with open_session(engine) as s:
            return int(s.exec(select(func.count()).select_from(AlertRow).where(AlertRow.state != "resolved")).one())
    finally:
        engine.dispose()


# ------------------------------------------------------------------ the run
@dataclass
class Targets:
    bot: str
    metrics: list[str]
    """Where the schedulers' ``/metrics`` are: the bot's, or with ``--split`` each worker's."""
    evaluating: list[str]
    """Those of the processes that evaluate (all but a delivery-only worker's)."""
    gateway: str | None
    bare: str
    pids: dict[str, int]


def click_body(workload: interactions.Workload, k: int) -> bytes:
    """The ``k``-th click: Acknowledge, Resolve, Runbook in turn (the clicks of the request mix)."""
    _kind, body = workload.body(len(interactions.KINDS) * (k // CLICKS) + k % CLICKS)
    return body


async def run_load(
    args: argparse.Namespace,
    targets: Targets,
    batches: Batches,
    workload: interactions.Workload,
    seconds: float,
    scrapes: Scrapes,
) -> tuple[soak.Results, dict[str, str]]:
    """The open-loop load for ``seconds``, scraping on into ``scrapes``; the results and each
    evaluating process's last exposition."""
    results = soak.Results()
    ingest_rate = len(batches.models) * METRICS / args.push_interval / args.batch
    ingest_headers = {"Authorization": f"Bearer {interactions.INGEST_TOKEN}", "Content-Type": "application/json"}
    gateway_headers = {"Content-Type": "text/plain; version=0.0.4"}

    def pusher(target: str) -> Callable[[float], tuple[str, str, bytes, dict[str, str]]]:
        count = iter(range(sys.maxsize))

        def make(_t: float) -> tuple[str, str, bytes, dict[str, str]]:
            n = next(count)
            if target == "bot":
                return f"{targets.bot}/api/v1/metrics", "ingest", batches.bot_body(n), ingest_headers
            url = f"{targets.gateway}/metrics/job/fleet/instance/b{n % batches.per_round}"
            return url, "pushgateway", batches.gateway_body(n), gateway_headers

        return make

    def clicker(url: str, kind: str) -> Callable[[float], tuple[str, str, bytes, dict[str, str]]]:
        count = iter(range(sys.maxsize))

        def make(_t: float) -> tuple[str, str, bytes, dict[str, str]]:
            body = click_body(workload, next(count))
            headers = {"Content-Type": "application/x-www-form-urlencoded", **interactions.sign(body)}
            return f"{url}/slack/events", kind, body, headers

        return make

    async def later(delay: float, work: Any) -> None:
        await asyncio.sleep(delay)
        await work

    tasks: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=soak.TIMEOUT)
    with_peer = targets.gateway is not None
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as pushers,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as gateway,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as slack,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as bare,
        aiohttp.ClientSession(timeout=timeout) as watcher,
    ):

        async def scrape() -> dict[str, str]:
            expositions = {}
            for url in targets.metrics:
                async with watcher.get(f"{url}/metrics") as answer:
                    expositions[url] = await answer.text()
                scrapes.add(expositions[url], url)
            return expositions

        async def watch() -> dict[str, str]:
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while True:
                expositions = await scrape()
                scrapes.watch_rss(targets.pids)
                if loop.time() >= end:
                    return expositions
                await asyncio.sleep(1.0)

        loads = [
            soak.steady(ingest_rate, seconds, pusher("bot"), pushers, results, tasks),
            soak.steady(args.click_rate, seconds, clicker(targets.bot, "ack"), slack, results, tasks),
            later(
                0.5 / args.click_rate,
                soak.steady(args.click_rate, seconds, clicker(targets.bare, "bare ack"), bare, results, tasks),
            ),
        ]
        if with_peer:
            loads.append(
                later(0.5 / ingest_rate, soak.steady(ingest_rate, seconds, pusher("gateway"), gateway, results, tasks))
            )
        await asyncio.gather(*loads, watch())
        if tasks:
            await asyncio.wait(set(tasks), timeout=soak.TIMEOUT + 5)
        expositions = await scrape()
    return results, expositions


def first_pass(metrics_urls: list[str], timeout: float) -> Scrapes:
    """Wait (up to ``timeout``) for every evaluating process's first pass: the scrapes then, each
    first pass's duration among them (exact unless a scrape already saw two)."""
    import httpx

    scrapes = Scrapes()
    deadline = time.monotonic() + timeout
    while len(scrapes.firsts) < len(metrics_urls):
        if time.monotonic() > deadline:
            raise SystemExit(f"no evaluation pass within {timeout:.0f} s")
        for url in metrics_urls:
            scrapes.add(httpx.get(f"{url}/metrics", timeout=10).text, url)
        time.sleep(0.2)
    return scrapes


def start(command: list[str], env: dict[str, str], log: Path, processes: list[subprocess.Popen[bytes]]) -> int:
    """Start a child with its output in ``log``; ``processes`` is what :func:`stop_all` stops."""
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    processes.append(proc)
    return proc.pid


@dataclass(frozen=True)
class Figure:
    name: str
    measured: str
    target: str
    peer: str
    met: bool


def table(figures: list[Figure], *, measured: str = "measured", peer: str = "peer") -> Iterator[str]:
    """A Markdown table of ``figures``; ``measured`` and ``peer`` name those columns."""
    header = Figure("figure", measured, "target", peer, True)
    widths = [max(len(getattr(f, k)) for f in [header, *figures]) for k in ("name", "measured", "target", "peer")]
    for i, f in enumerate([header, *figures]):
        met = "met?" if i == 0 else ("yes" if f.met else "NO")
        cells = [f.name, f.measured, f.target, f.peer]
        yield "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + f" | {met} |"
        if i == 0:
            yield "|" + "|".join("-" * (w + 2) for w in widths) + "|------|"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--alerts", type=int, default=10_000, help="open incidents escalating during the run")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds over which their steps fall due")
    parser.add_argument(
        "--lead",
        type=float,
        default=None,
        help="seconds from seeding to the first deadline "
        "(default: the evaluation interval + 20 s, room for the bot's start and first pass)",
    )
    parser.add_argument("--tail", type=float, default=5.0, help="seconds of load after the last deadline")
    parser.add_argument("--push-interval", type=float, default=30.0, help="seconds between a model's pushes")
    parser.add_argument("--batch", type=int, default=200, help=f"samples per ingest request (a multiple of {METRICS})")
    parser.add_argument("--click-rate", type=float, default=20.0, help="Slack clicks a second")
    parser.add_argument("--evaluation-interval", type=float, default=30.0, help="seconds")
    parser.add_argument("--split", action="store_true", help="serve --web-only + worker instead of one serve")
    parser.add_argument(
        "--workers", type=int, default=1, help="with --split: this many workers, which share the evaluation"
    )
    parser.add_argument(
        "--halves",
        action="store_true",
        help="with --split: worker --only evaluation beside worker --only delivery instead of --workers",
    )
    parser.add_argument(
        "--no-pushgateway", action="store_true", help="leave the peer out: the bot alone on the machine's cores"
    )
    parser.add_argument("--database-url", default=None, help="PostgreSQL server to create a scratch database on")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    if args.batch < METRICS or args.batch % METRICS:
        parser.error(f"--batch must be a multiple of {METRICS} (whole models)")
    if args.lead is None:
        args.lead = args.evaluation_interval + 20.0
    return args


def bot_environment(
    args: argparse.Namespace, url: str, config_root: Path, slack: str, pagerduty: str
) -> dict[str, str]:
    return {
        **os.environ,
        "SLACK_BOT_TOKEN": interactions.TOKEN,
        "SLACK_SIGNING_SECRET": interactions.SECRET,
        "SLACK_API_URL": slack,
        "SLACK_TEAM_ID": interactions.TEAM,
        "PAGERDUTY_ROUTING_KEY": soak.ROUTING_KEY,
        "PAGERDUTY_EVENTS_URL": f"{pagerduty.rstrip('/')}/v2/enqueue",
        "INGEST_TOKEN": interactions.INGEST_TOKEN,
        "DATABASE_URL": url,
        "BOT_CONFIG_DIR": str(config_root),
        "EVALUATION_INTERVAL": f"{args.evaluation_interval:g}s",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }


DELIVERY_WORKER = "delivery worker"


def worker_kinds(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The workers beside ``serve --web-only`` (none without ``--split``), each with its options."""
    if not args.split:
        return []
    if args.halves:
        return [("evaluation worker", ["--only", "evaluation"]), (DELIVERY_WORKER, ["--only", "delivery"])]
    return [("worker" if args.workers == 1 else f"worker {n + 1}", []) for n in range(args.workers)]


def start_system(
    args: argparse.Namespace, env: dict[str, str], folder: Path, processes: list[subprocess.Popen[bytes]]
) -> tuple[Targets, dict[str, int], dict[str, Path]]:
    """The bot (one ``serve``, or ``serve --web-only`` and ``--workers`` workers), the bare Bolt app and
    Pushgateway (when installed), each answering: the targets, the peers' pids and the bot's logs."""
    bot = [sys.executable, "-m", "bot"]
    bot_port, bare_port = free_port(), free_port()
    bot_url, bare_url = f"http://127.0.0.1:{bot_port}", f"http://127.0.0.1:{bare_port}"
    logs = {"serve": folder / "serve.log"}
    serve = [*bot, "serve", "--host", "127.0.0.1", "--port", str(bot_port)]
    pids = {"serve": start(serve + (["--web-only"] if args.split else []), env, logs["serve"], processes)}
    urls = {"serve": bot_url}
    for name, only in worker_kinds(args):
        worker_port = free_port()
        logs[name] = folder / f"{name.replace(' ', '-')}.log"
        worker = [*bot, "worker", "--host", "127.0.0.1", "--port", str(worker_port), *only]
        pids[name] = start(worker, env, logs[name], processes)
        urls[name] = f"http://127.0.0.1:{worker_port}"
    bare = [sys.executable, interactions.__file__, "--role", "bare", "--port", str(bare_port)]
    peers = {"bare Bolt": start(bare, env, folder / "bare.log", processes)}
    waits = [(bare_url, "bare Bolt", folder / "bare.log", "/healthz")]
    gateway_url = None
    if PUSHGATEWAY.exists() and not args.no_pushgateway:
        gateway_port = free_port()
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        gateway = [str(PUSHGATEWAY), f"--web.listen-address=127.0.0.1:{gateway_port}"]
        peers["Pushgateway"] = start(gateway, env, folder / "pushgateway.log", processes)
        waits.append((gateway_url, "Pushgateway", folder / "pushgateway.log", "/-/ready"))
    by_pid = {proc.pid: proc for proc in processes}
    for name, log in logs.items():
        wait_healthy(urls[name], by_pid[pids[name]], log, timeout=120.0)
    for url, name, log, path in waits:
        wait_healthy(url, by_pid[peers[name]], log, path=path)
    schedulers = [url for name, url in urls.items() if name != "serve"] or [bot_url]
    evaluating = [url for name, url in urls.items() if name not in ("serve", DELIVERY_WORKER)] or [bot_url]
    targets = Targets(bot_url, schedulers, evaluating, gateway_url, bare_url, pids)
    return targets, peers, logs


@dataclass
class Run:
    """What one run measured, for the report."""

    backend: str
    models: int
    breaching: int
    rules: int
    incidents: int
    opened: int
    first: float
    first_exact: bool
    scrapes: Scrapes
    results: soak.Results
    expositions: dict[str, str]
    seconds: float
    """How long the load was sent."""
    wall: float
    """How long it took, the wait for the last answers included."""
    cpu: dict[str, float]
    hwm_kb: dict[str, int]
    alive: bool
    steps: list[escalation.Step]
    still_due: int
    states: dict[str, int]
    bot_log: str
    with_gateway: bool


def measure(args: argparse.Namespace, folder: Path, stack: ExitStack) -> Run:
    """Seed, start everything, wait for the first pass, run the load and read the books."""
    rng = random.Random(args.seed)
    config_root = folder / "config"
    config, rules, hot, values = fleet_workload(config_root, args.models, rng)

    url = stack.enter_context(scratch_database(args.database_url, folder / "fleet.db", prefix="ib_fleet"))
    started = time.perf_counter()
    seed_samples(url, config_root, values)
    first_due = time.time() + args.lead
    escalation.populate(url, args.alerts, first_due, args.seconds, args.seed)
    incident_ids = seeded_incidents(url)
    backend = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(
        f"fleet: {backend}; {args.models:,} models' samples and {len(incident_ids):,} escalating incidents "
        f"seeded in {time.perf_counter() - started:.1f} s",
        flush=True,
    )

    slack = interactions.start_emulator(folder / "slack.log")
    stack.callback(slack.stop)
    pagerduty = ChildServer([soak.__file__, "--role", "pagerduty"], folder / "pagerduty.log")
    stack.callback(pagerduty.stop)
    processes: list[subprocess.Popen[bytes]] = []
    stack.callback(stop_all, processes)
    env = bot_environment(args, url, config_root, slack.base_url, pagerduty.base_url)
    targets, peers, logs = start_system(args, env, folder, processes)

    scrapes = first_pass(targets.evaluating, timeout=args.evaluation_interval + 120.0)
    first, first_exact = scrapes.first, scrapes.exact
    opened = open_alert_count(url) - len(incident_ids)
    seconds = first_due + args.seconds + args.tail - time.time()
    if time.time() > first_due - 1:
        raise SystemExit(
            f"the bot was ready {time.time() - first_due + 1:.0f} s too late: raise --lead above {args.lead:g}"
        )
    workload = interactions.Workload(
        incident_ids=incident_ids,
        channel=slack.ask("channel", "#ml-alerts"),
        response_urls=[slack.ask("response_url") for _ in range(8)],
    )
    batches = Batches(list(config.models), values, args.batch // METRICS)
    print(
        f"fleet: first pass {first * 1000:.0f} ms opened {opened:,} alerts; load for {seconds:.0f} s: "
        f"ingest {args.models * METRICS / args.push_interval:,.0f} samples/s in requests of {args.batch}, "
        f"clicks {args.click_rate:g}/s, steps falling due from {first_due - time.time():.0f} s in",
        flush=True,
    )
    watched = targets.pids | peers | {"Slack emulator": slack.proc.pid, "PagerDuty emulator": pagerduty.proc.pid}

    def cpu_now() -> dict[str, float]:
        return {name: soak.cpu_seconds(pid) for name, pid in watched.items()} | {"load generator": sum(os.times()[:2])}

    cpu, wall = cpu_now(), time.perf_counter()
    results, expositions = asyncio.run(run_load(args, targets, batches, workload, seconds, scrapes))
    wall = time.perf_counter() - wall
    cpu = {name: used - cpu[name] for name, used in cpu_now().items()}
    hwm = {name: soak.hwm_kb(pid) for name, pid in targets.pids.items()}
    alive = all(p.poll() is None for p in processes)
    engine = make_engine(url)
    try:
        with open_session(engine) as s:
            steps = escalation.steps_run(s)
            still_due = escalation.steps_still_due(s, datetime.now(UTC))
            states = dict(s.exec(select(IncidentRow.state, func.count()).group_by(IncidentRow.state)).all())
    finally:
        engine.dispose()
    return Run(
        backend=backend,
        models=args.models,
        breaching=len(hot),
        rules=len(rules),
        incidents=len(incident_ids),
        opened=opened,
        first=first,
        first_exact=first_exact,
        scrapes=scrapes,
        results=results,
        expositions=expositions,
        seconds=seconds,
        wall=wall,
        cpu=cpu,
        hwm_kb=hwm,
        alive=alive,
        steps=steps,
        still_due=still_due,
        states=states,
        bot_log="".join(log.read_text(errors="replace") for log in logs.values()),
        with_gateway=targets.gateway is not None,
    )


def figures_of(args: argparse.Namespace, run: Run) -> list[Figure]:
    """Each figure beside its target and peer."""
    lateness = [step.lateness for step in run.steps]
    steady = run.scrapes.passes
    latencies, errors = run.results.latencies, run.results.errors
    figures = [
        Figure(
            f"evaluation, first pass (opened {run.opened:,} alerts){'' if run.first_exact else ', a mean'}",
            f"{run.first * 1000:,.0f} ms",
            f"< {TARGET_FIRST_PASS * 1000:.0f} ms",
            "-",
            run.first < TARGET_FIRST_PASS,
        ),
        Figure(
            f"evaluation, steady pass: longest of {len(steady)}",
            f"{max(steady, default=nan) * 1000:,.0f} ms",
            f"< {TARGET_STEADY_PASS * 1000:,.0f} ms",
            "-",
            bool(steady) and max(steady) < TARGET_STEADY_PASS,
        ),
    ]
    bot_rate = run.results.accepted / run.seconds  # over the sending, not the wait for the last answers
    ingest_p99 = soak.quantile(latencies["ingest"], 0.99)
    if run.with_gateway:
        answered = len(latencies["pushgateway"]) - errors["pushgateway"]
        gateway_rate = answered * args.batch / run.seconds
        gateway_p99 = soak.quantile(latencies["pushgateway"], 0.99)
        figures += [
            Figure(
                "ingest, samples/s accepted",
                f"{bot_rate:,.0f}",
                "≥ Pushgateway",
                f"{gateway_rate:,.0f}",
                bot_rate >= gateway_rate - args.batch / run.seconds,
            ),
            Figure(
                f"ingest, request p99 ({len(latencies['ingest']):,} requests)",
                f"{ingest_p99:,.1f} ms",
                f"≤ {TARGET_INGEST_P99_RATIO:g}× Pushgateway",
                f"{gateway_p99:,.1f} ms",
                ingest_p99 <= TARGET_INGEST_P99_RATIO * gateway_p99,
            ),
        ]
    else:
        figures.append(
            Figure(
                "ingest, samples/s accepted",
                f"{bot_rate:,.0f}",
                "≥ Pushgateway",
                "not run (--no-pushgateway)" if args.no_pushgateway else f"not installed ({PUSHGATEWAY})",
                False,
            )
        )
    late_p99 = soak.quantile(lateness, 0.99)
    figures.append(
        Figure(
            f"escalation lateness p99 ({len(run.steps):,} steps, {run.still_due} still due)",
            f"{late_p99:,.0f} ms",
            f"< {TARGET_LATENESS * 1000:,.0f} ms",
            "-",
            late_p99 < TARGET_LATENESS * 1000 and not run.still_due and bool(run.steps),
        )
    )
    for name, kb in run.hwm_kb.items():
        figures.append(
            Figure(
                f"RSS peak (VmHWM), {name}",
                f"{kb / 1024:,.0f} MB",
                f"< {TARGET_RSS_MB:.0f} MB",
                "-",
                kb / 1024 < TARGET_RSS_MB,
            )
        )
    ack_p99, bare_p99 = soak.quantile(latencies["ack"], 0.99), soak.quantile(latencies["bare ack"], 0.99)
    figures.append(
        Figure(
            f"ack p99 ({len(latencies['ack']):,} clicks)",
            f"{ack_p99:,.1f} ms",
            f"< {TARGET_ACK_MS:.0f} ms, ≤ {TARGET_ACK_RATIO:g}× bare Bolt",
            f"{bare_p99:,.1f} ms",
            ack_p99 < TARGET_ACK_MS and ack_p99 <= TARGET_ACK_RATIO * bare_p99,
        )
    )
    bot_errors = errors["ingest"] + errors["ack"]
    peer_errors = errors["pushgateway"] + errors["bare ack"]
    figures.append(Figure("errors (bot: ingest + clicks)", f"{bot_errors}", "0", f"{peer_errors}", bot_errors == 0))
    tracebacks = run.bot_log.count("Traceback")
    figures.append(
        Figure(
            "bot tracebacks in its log, bot alive",
            f"{tracebacks}, {'yes' if run.alive else 'NO'}",
            "0, yes",
            "-",
            tracebacks == 0 and run.alive,
        )
    )

    return figures


def report(args: argparse.Namespace, run: Run, load_before: tuple[float, float, float]) -> bool:
    """Print the table and what explains it; whether every figure met its target."""
    figures = figures_of(args, run)
    scrapes, results, lateness = run.scrapes, run.results, [step.lateness for step in run.steps]
    latencies, seconds, wall = results.latencies, run.seconds, run.wall
    histogram_steps, within_1s = lateness_histogram(run.expositions.values())
    processes = " + ".join(["serve --web-only", *(name for name, _ in worker_kinds(args))])
    print(
        f"\nincident-bot fleet — {time.strftime('%Y-%m-%d %H:%M:%S')}, {run.backend}, "
        f"{processes if args.split else 'one serve process'}"
    )
    loads = [" ".join(f"{x:.2f}" for x in load) for load in (load_before, os.getloadavg())]
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; load average before {loads[0]}, after {loads[1]}"
    )
    print(
        f"{run.models:,} models × {METRICS} metrics every {args.push_interval:g} s ({run.breaching} breaching), "
        f"{run.rules} rules, evaluation every {args.evaluation_interval:g} s; {run.incidents:,} incidents "
        f"escalating over {args.seconds:g} s; clicks {args.click_rate:g}/s; load sent for {seconds:.1f} s, "
        f"its last answers {wall - seconds:.1f} s later"
    )
    for line in table(figures):
        print(line)
    print(
        f"evaluation passes after the first (ms): {', '.join(f'{x * 1000:.0f}' for x in scrapes.passes)}"
        f"{'' if scrapes.exact else ' (a scrape saw several passes: their mean)'}"
    )
    print(
        f"escalation: the bot's histogram counted {histogram_steps:,.0f} steps, {within_1s:,.0f} within 1 s; "
        f"lateness p50 {soak.quantile(lateness, 0.5):,.0f} ms, max {max(lateness, default=0) * 1000:,.0f} ms; "
        f"incidents at the end by state (clicks acknowledge and resolve some first): {run.states}"
    )
    print(
        f"ingest p50 {soak.quantile(latencies['ingest'], 0.5):.1f} ms; ack p50 "
        f"{soak.quantile(latencies['ack'], 0.5):.1f} ms, bare Bolt p50 {soak.quantile(latencies['bare ack'], 0.5):.1f} "
        "ms; RSS sampled every second, highest: "
        + ", ".join(f"{name} {kb / 1024:.0f} MB" for name, kb in scrapes.rss_kb.items())
    )
    print(
        "CPU seconds during the load (all share the machine's cores): "
        + ", ".join(f"{name} {used:.1f} ({used / wall:.0%} of a core)" for name, used in run.cpu.items())
    )
    print(
        f"load generator: {results.late_sends} sends more than 50 ms behind schedule, worst "
        f"{results.worst_send_lag * 1000:.0f} ms"
    )
    for sample in results.error_samples:
        print(f"  error: {sample}")
    for line, count in soak.failures(run.bot_log):
        print(f"  bot log: {count} × {line[:160]}")
    met = all(f.met for f in figures)
    print(f"verdict: {'PASS' if met else 'FAIL'}")
    return met


def main() -> int:
    args = arguments()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ib-fleet-") as folder, ExitStack() as stack:
        run = measure(args, Path(folder), stack)
    return 0 if report(args, run, load_before) else 1


if __name__ == "__main__":
    sys.exit(main())
