"""Scheduler wiring: APScheduler only ticks; the database decides who does the work (SPEC §5).

Jobs never overlap themselves (``max_instances=1``) and missed ticks are coalesced, so a slow
database delays a pass instead of stacking them up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)


def build_scheduler(
    *,
    evaluate: Callable[[], object],
    deliver: Callable[[], object],
    evaluation_interval: timedelta,
    delivery_interval: timedelta = timedelta(seconds=1),
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(
        _guarded(evaluate, "evaluation"),
        "interval",
        seconds=evaluation_interval.total_seconds(),
        id="evaluate",
        next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        _guarded(deliver, "delivery"), "interval", seconds=delivery_interval.total_seconds(), id="deliver"
    )
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
