"""``POST /api/v1/changes``: a deploy job tells the bot what shipped (:mod:`bot.changes`).

The same token, limits, content type and answers as the metrics ingest (:mod:`bot.metrics.api`):
401/403 without the token, 413 over ``INGEST_MAX_BYTES``, 415 for a body that is not JSON, 422
naming every problem (nothing stored), 503 when the database cannot take it (retry), 202 with
``{"accepted": n}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.changes.events import parse_changes
from bot.changes.log import ChangeLog
from bot.clock import Clock
from bot.config.loader import Config
from bot.errors import RequestRefused
from bot.http_helpers import authenticate, check_content_type, error, read_body
from bot.settings import Settings

log = logging.getLogger(__name__)

PATH = "/api/v1/changes"


def change_routes(*, changes: ChangeLog, settings: Settings, config: Callable[[], Config], clock: Clock) -> list[Route]:
    """The change endpoint's route. ``config`` is called per request, so a reload's models apply."""

    async def record_changes(request: Request) -> Response:
        refused = authenticate(request, settings) or check_content_type(request)
        if refused is not None:
            return refused
        try:
            body = await read_body(request, settings.ingest_max_bytes)
            current = config()
            parsed = parse_changes(
                body,
                known_models=list(current.models),
                accept_unknown=current.settings.accept_unknown_models,
                now=clock.now(),
            )
        except RequestRefused as exc:
            return error(exc.status, exc.message)
        except ClientDisconnect:
            return error(400, "the client disconnected before the body was complete")
        try:
            stored = await run_in_threadpool(changes.record, parsed)
        except SQLAlchemyError:
            log.exception("changes: storing %d change events failed", len(parsed))
            return error(503, "the changes could not be stored right now; nothing was stored, retry later")
        for change in parsed:
            log.info("change recorded: %s %s at %s", change.model, change.said(), change.at.isoformat())
        return JSONResponse({"accepted": stored}, status_code=202)

    return [Route(PATH, record_changes, methods=["POST"], name="record_changes")]
