"""Benchmark: escalation lateness and resident memory with 10,000 open alerts (SPEC §7: p99
lateness under 1 s, resident memory under 200 MB, on the 2-core reference machine).

Workload. 10,000 firing, unacknowledged alerts are written to a fresh database, each the one
alert of its incident (escalation climbs per incident), each incident on the shipped default
policy (P3 at 15 min, P2 at 30 min, P1 at 60 min) with one step falling due during the run: the
deadlines are spread uniformly over ``--spread`` seconds (60), about 170 steps a second. A third
of the incidents are due for each step, so a third of the steps reach P1 and page. They are
written by a child process (bulk inserts of :func:`bot.incidents.store.fields` and
:func:`bot.alerts.store.fields` rows, plus the alerts' "fired" events and the already sent Slack
post of each), so the measured process's peak memory is the bot's, not the set-up's.

Then this process runs what ``incident-bot serve`` runs, on the system clock: the real
APScheduler jobs from :func:`bot.jobs.build_scheduler` (evaluation every 30 s over the shipped
rules, escalation every 0.5 s, watchdog, silence release) and the delivery lanes around the real
:class:`~bot.service.AlertService` and :class:`~bot.notify.outbox.Outbox`. Only the notifiers
are null (``slack`` and ``pagerduty`` channels that accept and count), so notification I/O does
not dominate; the outbox bookkeeping stays in.

Lateness of a step, two ways:

* **recorded**: the escalation event's time (the sweep's ``now``) minus the step's deadline
  (the incident's ``opened_at`` + the step's ``after``) -- what the
  ``incident_bot_escalation_lateness_seconds`` histogram observes;
* **committed**: when the sweep that ran the step committed (its notifications are then in
  the outbox, visible to every replica) minus the deadline. This is the one the verdict uses.

Memory: ``VmRSS`` sampled every 0.25 s from ``/proc/self/status`` while the 10,000 alerts are
open, ``VmHWM`` and ``ru_maxrss`` (the process's peak) at the end.

    python bench/escalation.py [--alerts 10000] [--spread 60] [--lead 15] [--profile] [--database-url postgresql://…]

With ``--database-url`` the run uses a database created for it on that server and dropped
afterwards (the URL's user needs CREATEDB); nothing in the named database is touched.
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import io
import logging
import multiprocessing
import pstats
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from harness import scratch_database
from sqlalchemy import func, insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.alerts import store
from bot.alerts.lifecycle import Alert, AlertState, PolicyStep
from bot.clock import SystemClock
from bot.config.holder import ConfigHolder
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident, IncidentState, next_deadline
from bot.jobs import build_scheduler
from bot.notify.lanes import Lanes
from bot.notify.notifier import Notification
from bot.notify.outbox import Outbox
from bot.observability import Metrics
from bot.service import AlertService, every_channel
from bot.severity import Severity
from bot.storage.database import make_engine, migrate
from bot.storage.database import session as open_session
from bot.storage.tables import AlertEventRow, AlertRow, IncidentEventRow, IncidentRow, OutboxRow

REPO = Path(__file__).resolve().parent.parent
TARGET_P99_SECONDS = 1.0
TARGET_RSS_MB = 200.0
RULE = "significant_data_drift"
POLICY = (
    PolicyStep(timedelta(minutes=15), Severity.P3),
    PolicyStep(timedelta(minutes=30), Severity.P2),
    PolicyStep(timedelta(minutes=60), Severity.P1),
)


# ---------------------------------------------------------------------------- set-up (child process)


def populate(url: str, alerts: int, first_due: float, spread: float, seed: int) -> None:
    """Write ``alerts`` firing incidents of one alert each, whose next step falls due in
    ``[first_due, first_due + spread)`` (Unix seconds): incident ``i`` is due for step ``i % 3 + 1``,
    so it opened that step's ``after`` earlier. Escalation climbs per incident."""
    engine = make_engine(url)
    migrate(engine)
    rng = random.Random(seed)
    incidents, alerts_of = [], []
    for i in range(alerts):
        due = datetime.fromtimestamp(first_due + rng.uniform(0, spread), UTC)
        step = i % len(POLICY)
        fired = due - POLICY[step].after
        model = f"model-{i:05d}"
        incident = Incident(
            group_key=f"#ml-alerts|model={model}",
            channel="#ml-alerts",
            severity=Severity.P2,
            state=IncidentState.FIRING,
            opened_at=fired,
            title=f"Significant data drift: 9 features for {model}",
            labels={"model": model},
            policy=POLICY,
            escalation_step=step,
        )
        incident = replace(incident, next_escalation_at=next_deadline(incident))
        assert incident.next_escalation_at == due
        incidents.append({**incident_store.fields(incident), "version": 1})
        alert = Alert(
            rule=RULE,
            model=model,
            severity=Severity.P2,
            state=AlertState.FIRING,
            started_at=fired,
            fired_at=fired,
            title=incident.title,
            description="9/10 features show significant drift (PSI > 0.2). Top drifted: amount, merchant.",
            values={"drifted_feature_count": 9.0, "total_features": 10.0, "top_drifted_features": "amount,merchant"},
            policy=POLICY,
        )
        alerts_of.append((incident.group_key, alert, fired))
    with engine.begin() as connection:
        connection.execute(insert(IncidentRow), incidents)
        incident_ids = dict(connection.execute(select(IncidentRow.group_key, IncidentRow.id)).all())
        rows = [
            {**store.fields(alert), "incident_id": incident_ids[group], "paged_keys": [], "version": 1}
            for group, alert, _ in alerts_of
        ]
        connection.execute(insert(AlertRow), rows)
        ids: dict[str, int] = {key: i for key, i in connection.execute(select(AlertRow.dedup_key, AlertRow.id))}
        connection.execute(
            insert(AlertEventRow),
            [
                {"alert_id": ids[a.key], "kind": "fired", "actor": f"rule:{RULE}", "at": at, "detail": "", "data": {}}
                for _, a, at in alerts_of
            ],
        )
        # their root Slack posts went out when they fired (an alert with no notification at all
        # would be taken for one a silence kept quiet, and announced again)
        connection.execute(
            insert(OutboxRow),
            [
                {
                    "idempotency_key": f"slack:incident:{incident_ids[group]}:opened:1:",
                    "channel": "slack",
                    "kind": "incident.opened",
                    "alert_id": ids[a.key],
                    "incident_id": incident_ids[group],
                    "payload": {"event": "opened", "key": a.key},
                    "status": "sent",
                    "attempts": 1,
                    "not_before": at,
                    "created_at": at,
                    "sent_at": at,
                }
                for group, a, at in alerts_of
            ],
        )
    engine.dispose()


# ---------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class Step:
    """One escalation step the database records: when it ran (the sweep's ``now``, the escalation
    event's time) against its deadline (the incident's ``opened_at`` + the step's ``after``)."""

    incident_id: int
    ran: datetime
    deadline: datetime

    @property
    def lateness(self) -> float:
        """Seconds past the deadline: what ``incident_bot_escalation_lateness_seconds`` observes."""
        return (self.ran - self.deadline).total_seconds()


def steps_still_due(s: Session, now: datetime) -> int:
    """Incidents whose next step is past due at ``now``: steps the sweeps missed."""
    due = (
        select(func.count())
        .select_from(IncidentRow)
        .where(IncidentRow.state == "firing", col(IncidentRow.next_escalation_at) <= now)
    )
    return int(s.exec(due).one())


def steps_run(s: Session) -> list[Step]:
    """Every escalation step recorded in the database, with its deadline."""
    opened = dict(s.exec(select(IncidentRow.id, IncidentRow.opened_at)).all())
    events = s.exec(select(IncidentEventRow).where(IncidentEventRow.kind == "escalated")).all()
    return [
        Step(e.incident_id, e.at, opened[e.incident_id] + timedelta(seconds=float(e.data["after_seconds"])))
        for e in events
    ]


class NullNotifier:
    """Accepts every notification and only counts it: the outbox's work stays, the I/O goes."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.sent = 0
        self._lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        with self._lock:
            self.sent += 1


@dataclass(frozen=True)
class Sweep:
    started: datetime
    ended: datetime
    ran: int


def timed_sweeps(escalate: Callable[[], int], sweeps: list[Sweep]) -> Callable[[], int]:
    def run() -> int:
        started = datetime.now(UTC)
        ran = escalate()
        sweeps.append(Sweep(started, datetime.now(UTC), ran))
        return ran

    return run


class JobClock:
    """Times every run of every scheduler job (and, with ``--profile``, profiles them), so a slow
    escalation sweep can be set beside what else the process was doing at that moment."""

    def __init__(self, profile: bool) -> None:
        self.runs: list[tuple[str, float, float]] = []
        self.profiles: dict[str, cProfile.Profile] = {}
        self._profile = profile
        self._lock = threading.Lock()

    def wrap(self, name: str, job: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            started = time.monotonic()
            try:
                if not self._profile:
                    return job()
                with self._lock:
                    profiler = self.profiles.setdefault(name, cProfile.Profile())
                return profiler.runcall(job)
            finally:
                with self._lock:
                    self.runs.append((name, started, time.monotonic()))

        return run

    def report(self, window: tuple[float, float]) -> None:
        """Per job, during ``window`` (monotonic): runs, total and longest time. Then the slowest
        escalation sweeps and the other jobs that ran while each of them did."""
        inside = [r for r in self.runs if r[2] >= window[0] and r[1] <= window[1]]
        span = window[1] - window[0]
        print(f"  scheduler jobs over the {span:.0f} s from the first deadline to the end:")
        for name in sorted({r[0] for r in inside}):
            took = [end - start for n, start, end in inside if n == name]
            print(
                f"    {name:<16} runs {len(took):4d}   busy {sum(took):6.1f} s ({sum(took) / span:4.0%})   "
                f"median {statistics.median(took) * 1000:6.0f} ms   max {max(took) * 1000:6.0f} ms"
            )
        slowest = sorted((r for r in inside if r[0] == "escalation"), key=lambda r: r[1] - r[2])[:5]
        for _name, start, end in slowest:
            beside = [
                f"{n} {(e - s) * 1000:.0f} ms" for n, s, e in inside if n != "escalation" and s < end and e > start
            ]
            print(f"    slow sweep {(end - start) * 1000:5.0f} ms, alongside: {', '.join(beside) or 'nothing'}")
        for name, profiler in sorted(self.profiles.items()):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(28)
            print(f"\n  ---- profile of the {name} job (cumulative) ----")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:9000])


class SkippedTicks(logging.Filter):
    """Counts APScheduler's "skipped: maximum number of running instances reached" per interval
    (0.5 s is the escalation job) instead of printing each: a tick is skipped when
    the previous run of its job has not finished."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "maximum number of running instances" not in message:
            return True
        self.counts[message.split("interval[", 1)[-1].split("]", 1)[0]] += 1
        return False


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class MemorySampler(threading.Thread):
    def __init__(self, every: float = 0.25) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.every = every
        self.samples: list[float] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(rss_mb())
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def describe(name: str, values: list[float]) -> str:
    return (
        f"  {name:<34} p50 {quantile(values, 0.50) * 1000:7.0f} ms   p90 {quantile(values, 0.90) * 1000:7.0f} ms   "
        f"p99 {quantile(values, 0.99) * 1000:7.0f} ms   max {max(values) * 1000:7.0f} ms"
    )


def run(args: argparse.Namespace, url: str) -> bool:
    backend = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    first_due = time.time() + args.lead
    started = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(
        target=populate, args=(url, args.alerts, first_due, args.spread, args.seed)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"set-up failed (exit {child.exitcode})")
    setup = time.perf_counter() - started
    if time.time() > first_due - 2:
        raise SystemExit(f"set-up took {setup:.1f}s, past the first deadline: raise --lead above {setup + 5:.0f}")
    lead = first_due - time.time()
    print(f"{backend}: {args.alerts:,} open alerts written in {setup:.1f}s; first step due in {lead:.1f}s")

    base_rss = rss_mb()
    engine: Engine = make_engine(url)
    clock = SystemClock()
    holder = ConfigHolder(REPO)
    metrics = Metrics(engine)
    notifiers = {"slack": NullNotifier("slack"), "pagerduty": NullNotifier("pagerduty")}
    metrics.watch_channels(notifiers)
    service = AlertService(engine, clock, holder, every_channel(list(notifiers)), metrics=metrics)
    outbox = Outbox(engine, clock, notifiers, metrics=metrics)
    lanes = Lanes(outbox, engine)
    sweeps: list[Sweep] = []
    jobs = JobClock(profile=args.profile)
    skipped = SkippedTicks()
    for handler in logging.getLogger().handlers:
        handler.addFilter(skipped)
    scheduler = build_scheduler(
        evaluate=jobs.wrap("evaluation", service.evaluate_once),
        escalate=jobs.wrap("escalation", timed_sweeps(service.escalate_due, sweeps)),
        watchdog=jobs.wrap("watchdog", service.overdue_escalations),
        release=jobs.wrap("silence-release", service.release_unmuted),
        evaluation_interval=holder().settings.evaluation_interval,
    )
    sampler = MemorySampler()
    sampler.start()
    lanes.start()
    scheduler.start()
    end = first_due + args.spread + args.tail
    window = (time.monotonic() + first_due - time.time(), time.monotonic() + end - time.time())
    while time.time() < end:
        time.sleep(0.5)
    scheduler.shutdown(wait=True)
    lanes.stop()
    sampler.stop()
    peak_rss, hwm = max(sampler.samples), rss_mb("VmHWM")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    with open_session(engine) as s:
        steps = steps_run(s)
        fired: dict[int, datetime] = {i: at for i, at in s.exec(select(IncidentRow.id, IncidentRow.opened_at)) if i}
        still_due = steps_still_due(s, clock.now())
        queue = Counter(s.exec(select(OutboxRow.channel, OutboxRow.status)).all())
        escalated = s.exec(
            select(OutboxRow.incident_id, OutboxRow.status, OutboxRow.sent_at, OutboxRow.payload).where(
                OutboxRow.kind == "incident.escalated"
            )
        ).all()
    starts = [w.started for w in sweeps]
    recorded, committed = [], []
    for step in steps:
        sweep = sweeps[bisect.bisect_right(starts, step.ran) - 1]
        assert sweep.started <= step.ran <= sweep.ended
        recorded.append(step.lateness)
        committed.append((sweep.ended - step.deadline).total_seconds())
    busy = [w for w in sweeps if w.ran]
    took = [(w.ended - w.started).total_seconds() for w in busy]
    per_alert = Counter(step.incident_id for step in steps)
    print(
        f"  steps run {len(steps):,} of {args.alerts:,} due; run twice: {sum(n > 1 for n in per_alert.values())}; "
        f"still due: {still_due}"
    )
    print(
        f"  sweeps {len(sweeps)} ({len(busy)} with work), steps per busy sweep median "
        f"{statistics.median(w.ran for w in busy):.0f} max {max(w.ran for w in busy)}; "
        f"busy sweep duration median {statistics.median(took) * 1000:.0f} ms max {max(took) * 1000:.0f} ms"
    )
    print(describe("lateness, recorded (event time)", recorded))
    print(describe("lateness, committed (sweep end)", committed))
    delivered = [
        (
            sent_at - fired[incident_id] - timedelta(seconds=float(payload["escalation"]["after_seconds"]))
        ).total_seconds()
        for incident_id, status, sent_at, payload in escalated
        if status == "sent" and sent_at is not None and incident_id is not None
    ]
    if delivered:
        print(describe(f"delivered to a null notifier ({len(delivered):,} of {len(escalated):,})", delivered))
    print(
        f"  notifications delivered: slack {notifiers['slack'].sent:,}, pagerduty {notifiers['pagerduty'].sent:,}; "
        f"outbox at the end: {dict(sorted(queue.items()))}"
    )
    print(
        f"  memory: RSS {base_rss:.0f} MB before building the bot, {peak_rss:.0f} MB peak sampled with "
        f"{args.alerts:,} open alerts; VmHWM {hwm:.0f} MB, ru_maxrss {maxrss:.0f} MB"
    )
    jobs.report(window)
    print(f"  ticks skipped because the job was still running, by interval: {dict(skipped.counts) or 'none'}")
    p99 = quantile(committed, 0.99)
    ok = p99 < TARGET_P99_SECONDS and maxrss < TARGET_RSS_MB and not still_due and len(steps) == args.alerts
    print(
        f"  verdict: {'PASS' if ok else 'FAIL'} — committed lateness p99 {p99 * 1000:.0f} ms (target < 1,000 ms), "
        f"peak RSS {maxrss:.0f} MB (target < {TARGET_RSS_MB:.0f} MB)"
    )
    engine.dispose()
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which the steps fall due")
    parser.add_argument("--lead", type=float, default=15.0, help="seconds from start to the first deadline")
    parser.add_argument("--tail", type=float, default=8.0, help="seconds to keep running after the last deadline")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="profile each scheduler job (slows them down)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL server to create a scratch database on")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with (
        tempfile.TemporaryDirectory(prefix="ib-bench-") as folder,
        scratch_database(args.database_url, Path(folder) / "bot.db") as url,
    ):
        ok = run(args, url)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
