"""``GET /healthz``: what keeps the bot from doing its job, named for the person on call.

Kept out of the composition root (:mod:`bot.app`), which only wires: the answer's rules (what
counts as "degraded", how long the database probe may take) are logic of their own and are read
and changed here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.notify.outbox import Outbox
from bot.service import AlertService

log = logging.getLogger(__name__)

HEALTH_PROBE_TIMEOUT = 3.0
"""Seconds ``/healthz`` waits for ``SELECT 1`` before it calls the database unreachable."""


def health_routes(
    *,
    service: AlertService,
    engine: Engine,
    scheduler: BackgroundScheduler | None,
    outbox: Outbox | None,
    sources: Callable[[], Mapping[str, Any]] | None = None,
) -> list[Route]:
    """The ``/healthz`` route over the parts it reports on (``scheduler`` None: a web-only
    process, whose answer has no ``scheduler`` key since the jobs run in ``incident-bot worker``;
    ``outbox`` None: no delivery detail; ``sources``: each Prometheus query's health, by name)."""

    async def healthz(_request: Request) -> JSONResponse:
        """An unreachable database, rules that failed in the latest pass, notifications that
        failed for good (until ``incident-bot outbox retry`` or ``drop``), paused delivery and
        clicks kept for later make the status "degraded" and are named. The code stays 200: a
        restart would mend none of them (and a liveness probe would restart), and a readiness
        probe taking every replica out while the database is away would turn away the clicks the
        bot can still keep."""
        detail: dict[str, Any] = {}
        failing = service.rule_errors.failing()
        if failing:
            detail["rule_errors"] = failing
        if service.pending:
            detail["pending_actions"] = len(service.pending)
        queries = sources() if sources is not None else {}
        failing = {name: q for name, q in queries.items() if not q.get("ok", True)}
        if failing:
            detail["metric_sources_failing"] = failing
        unreachable = await database_problem(engine)
        if unreachable is not None:
            detail["database"] = unreachable
        elif outbox is not None:
            detail |= await asyncio.to_thread(delivery_health, outbox)
        body: dict[str, Any] = {"status": "degraded" if detail else "ok"}
        if scheduler is not None:
            body["scheduler"] = scheduler.running
        body |= detail
        if queries:
            body["metric_sources"] = queries
        return JSONResponse(body)

    return [Route("/healthz", healthz, methods=["GET"])]


async def database_problem(engine: Engine) -> str | None:
    """None when the database answers ``SELECT 1`` within :data:`HEALTH_PROBE_TIMEOUT`, else
    what went wrong ("unreachable: …"). A probe left waiting ends with the engine's call deadline."""

    def probe() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(probe), HEALTH_PROBE_TIMEOUT)
    except TimeoutError:
        return f"unreachable: no answer within {HEALTH_PROBE_TIMEOUT:g} s"
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        return f"unreachable: {type(cause).__name__}"
    return None


def delivery_health(outbox: Outbox) -> dict[str, Any]:
    """``/healthz``'s delivery detail: failed notifications by channel, and paused channels with
    why; empty when there is nothing to say. A database that cannot be read adds nothing here."""
    detail: dict[str, Any] = {}
    try:
        failed = outbox.failed_counts()
    except SQLAlchemyError as exc:
        log.warning("GET /healthz: cannot count failed notifications: %s", exc)
        failed = {}
    if failed:
        detail["notifications_failed"] = failed
    paused = outbox.pauses()
    if paused:
        detail["delivery_paused"] = {channel: pause.reason for channel, pause in paused.items()}
    return detail
