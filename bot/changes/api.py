"""``POST /api/v1/changes``: a deploy job tells the bot what shipped (:mod:`bot.changes`).

The same token, limits, content type and answers as the metrics ingest (:mod:`bot.metrics.api`):
401/403 without the token, 413 over ``INGEST_MAX_BYTES``, 415 for a body that is not JSON, 422
naming every problem (nothing stored), 503 when the database cannot take it (retry), 202 with
``{"accepted": n}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from bot.changes.events import Change, parse_changes
from bot.changes.log import ChangeLog
from bot.clock import Clock
from bot.config.loader import Config
from bot.metrics.api import push_route
from bot.settings import Settings

log = logging.getLogger(__name__)

PATH = "/api/v1/changes"


def change_routes(*, changes: ChangeLog, settings: Settings, config: Callable[[], Config], clock: Clock) -> list[Route]:
    """The change endpoint's route. ``config`` is called per request, so a reload's models apply."""

    def recorded(parsed: list[Change], count: int) -> None:
        for change in parsed:
            log.info("change recorded: %s %s at %s", change.model, change.said(), change.at.isoformat())

    route = push_route(
        path=PATH,
        name="record_changes",
        parse=parse_changes,
        store=lambda parsed: run_in_threadpool(changes.record, parsed),
        settings=settings,
        config=config,
        clock=clock,
        logger=log,
        failed="changes: storing %d change events failed",
        unavailable="the changes could not be stored right now; nothing was stored, retry later",
        stored=recorded,
    )
    return [route]
