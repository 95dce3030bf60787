"""Scheduler wiring: APScheduler only ticks; the database decides who does the work (SPEC §5).
Notifications are not a job: each notifier channel has its own delivery lane (:mod:`bot.notify.lanes`).
The scheduler and the lanes run together (:func:`background_work`), in ``serve`` or in ``worker``;
``worker --only evaluation`` and ``worker --only delivery`` split them between two processes
(:class:`Work`).

Jobs never overlap themselves (``max_instances=1``) and missed ticks are coalesced, so a slow
database delays a pass instead of stacking them up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import SQLAlchemyError

from bot.notify.lanes import Lanes, announcing
from bot.service import AlertService

log = logging.getLogger(__name__)


class Work(StrEnum):
    """Half of the background work, for a worker that runs only it (``incident-bot worker --only``).

    An evaluation pass is pure Python for most of a second at 10,000 models; in one process it
    shares the interpreter's lock with the escalation sweeps and the delivery lanes, which at
    10,000 escalating incidents keep a third of a core busy, and took twice as long as alone.
    Split, each half has a process (and a core) of its own, and the evaluation's memory peak is
    not added to the deliveries'. The halves meet in the database: a pass's notifications are
    outbox rows, which the delivery process's lanes take."""

    EVALUATION = "evaluation"
    """Rule and SLO evaluation, the Prometheus pull and the evaluator heartbeat (only processes
    that evaluate take a share of the models: :mod:`bot.evaluation.shares`)."""
    DELIVERY = "delivery"
    """The delivery lanes, escalation, its watchdog, silences ending, reminders, the weekly
    review and sample retention."""


EVALUATION_JOBS = frozenset({"evaluation", "evaluator-heartbeat", "slo-evaluation", "prometheus"})
"""The scheduler's jobs that are :attr:`Work.EVALUATION`'s; ``memory-trim`` runs in both halves."""
EVERY_HALF = frozenset({"memory-trim"})


def runs_job(name: str, only: Work | None) -> bool:
    """Whether a process doing ``only`` (None: all the background work) schedules the job ``name``."""
    if only is None or name in EVERY_HALF:
        return True
    return (name in EVALUATION_JOBS) == (only is Work.EVALUATION)


KEPT_CLICKS_EVERY = 0.5
"""Seconds between a web-only process's looks at its journal of kept clicks: the escalation
tick's, which applies them in the all-in-one process."""


def build_scheduler(
    *,
    evaluate: Callable[[], object],
    escalate: Callable[[], object],
    watchdog: Callable[[], object],
    release: Callable[[], object],
    evaluation_interval: timedelta,
    evaluation_grid: datetime | None = None,
    escalation_interval: timedelta = timedelta(milliseconds=500),
    watchdog_interval: timedelta = timedelta(seconds=30),
    extra: Sequence[tuple[Callable[[], object], str, timedelta]] = (),
    only: Work | None = None,
) -> BackgroundScheduler:
    """Escalation ticks twice a second: a due step then runs within about half a second of its
    deadline, and a tick with nothing due is one indexed query. ``extra`` jobs (``(job, name,
    interval)``, e.g. the Prometheus pull) run under the same guard. ``only``: schedule only
    that half's jobs (:func:`runs_job`)."""
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    now = datetime.now(UTC)
    jobs = [
        (evaluate, "evaluation", evaluation_interval),
        (escalate, "escalation", escalation_interval),
        (watchdog, "watchdog", watchdog_interval),
        (release, "silence-release", timedelta(seconds=5)),
        *extra,
    ]
    for job, name, interval in jobs:
        if not runs_job(name, only):
            continue
        if name == "evaluation" and evaluation_grid is not None:
            # runs fall on the evaluation schedule's ticks (grid + k × interval), so each run is
            # close to the nominal time it evaluates as of; the first is the next tick after now
            seconds = interval.total_seconds()
            scheduler.add_job(_guarded(job, name), "interval", seconds=seconds, id=name, start_date=evaluation_grid)
            continue
        scheduler.add_job(_guarded(job, name), "interval", seconds=interval.total_seconds(), id=name, next_run_time=now)
    return scheduler


def _guarded(job: Callable[[], object], name: str) -> Callable[[], None]:
    """A failing pass (database restarting, a bug) is logged and retried on the next tick."""

    def run() -> None:
        try:
            job()
        except Exception:
            log.exception("%s job failed; it runs again on the next tick", name)

    run.__name__ = f"{name}_job"
    return run


@contextlib.contextmanager
def background_work(lanes: Lanes, scheduler: BackgroundScheduler, *, only: Work | None = None) -> Iterator[None]:
    """The scheduler's jobs and the delivery lanes, for as long as the block runs: in the
    all-in-one ``serve``'s lifespan, and for the whole life of ``incident-bot worker``. An
    evaluation-only worker runs no lanes: on PostgreSQL its commits wake the delivery worker's
    lanes (:func:`~bot.notify.lanes.announcing`), on SQLite their poll finds the rows."""
    with contextlib.ExitStack() as stack:
        if only is Work.EVALUATION:
            stack.enter_context(announcing(lanes.engine))
        else:
            lanes.start()
            stack.callback(lanes.stop)
        scheduler.start()
        try:
            yield
        finally:
            scheduler.shutdown(wait=True)  # no more evaluations, so nothing more to deliver


@contextlib.asynccontextmanager
async def applying_kept_clicks(service: AlertService, *, every: float = KEPT_CLICKS_EVERY) -> AsyncIterator[None]:
    """A web-only process applies its own journal of kept clicks (nobody else reads it) as soon
    as the database is back; a pass with nothing kept is a length check."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            if not service.pending:
                continue
            try:
                await asyncio.to_thread(service.apply_pending_actions)
            except SQLAlchemyError as exc:  # still away: the next pass tries again
                log.info("kept clicks wait for the database: %s", exc)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
