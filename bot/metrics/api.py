"""The push-ingest HTTP endpoint, ``POST /api/v1/metrics`` (SPEC §2 metric sources, §6).

This module is the edge: authentication, body limits and content negotiation, in that order, so
an unauthenticated or oversized request is turned away before its body is read. Parsing is
delegated to the pure :func:`bot.metrics.ingest.parse_batch`, which validates the whole batch
before :meth:`AlertService.ingest` stores it in one transaction: a rejected request stores nothing.

Every answer is JSON; errors are ``{"error": "<message for the sender>"}``. The refusal helpers
(bearer token, content type, body limit) live in :mod:`bot.http_helpers`, shared with the
Alertmanager webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.clock import Clock
from bot.config.loader import Config
from bot.http_helpers import authenticate as _authenticate
from bot.http_helpers import check_content_type as _check_content_type
from bot.http_helpers import error as _error
from bot.http_helpers import read_body as _read_body
from bot.metrics.ingest import IngestError, parse_batch
from bot.metrics.store import Point
from bot.settings import Settings

log = logging.getLogger(__name__)

PATH = "/api/v1/metrics"


class Ingestor(Protocol):
    """What the endpoint needs of :class:`bot.service.AlertService` (kept narrow for tests)."""

    def ingest(self, points: list[Point]) -> int: ...


def metric_routes(*, service: Ingestor, settings: Settings, config: Callable[[], Config], clock: Clock) -> list[Route]:
    """The ingest API's routes. ``config`` is called per request so a reload's models apply at once."""

    async def ingest_metrics(request: Request) -> Response:
        refused = _authenticate(request, settings)
        if refused is not None:
            return refused
        refused = _check_content_type(request)
        if refused is not None:
            return refused
        try:
            body = await _read_body(request, settings.ingest_max_bytes)
            current = config()
            points = parse_batch(
                body,
                known_models=list(current.models),
                accept_unknown=current.settings.accept_unknown_models,
                now=clock.now(),
            )
        except IngestError as exc:
            return _error(exc.status, exc.message)
        except ClientDisconnect:
            log.info("ingest: client disconnected before sending the whole body")
            return _error(400, "the client disconnected before the body was complete")
        try:
            stored = await run_in_threadpool(service.ingest, points)
        except SQLAlchemyError:
            log.exception("ingest: storing %d samples failed", len(points))
            return _error(503, "the samples could not be stored right now; nothing was stored, retry later")
        log.debug("ingest: stored %d samples", stored)
        return JSONResponse({"accepted": stored}, status_code=202)

    return [Route(PATH, ingest_metrics, methods=["POST"], name="ingest_metrics")]
