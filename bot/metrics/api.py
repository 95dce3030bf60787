"""The push-ingest HTTP endpoint, ``POST /api/v1/metrics`` (SPEC §2 metric sources, §6).

This module is the edge: authentication, body limits and content negotiation, in that order, so
an unauthenticated or oversized request is turned away before its body is read. Parsing is
delegated to the pure :func:`bot.metrics.ingest.parse_batch`, which validates the whole batch
before :meth:`AlertService.ingest` stores it in one transaction: a rejected request stores nothing.

Every answer is JSON; errors are ``{"error": "<message for the sender>"}``. The refusal helpers
(bearer token, content type, body limit) live in :mod:`bot.http_helpers`, shared with the
Alertmanager webhook. :func:`push_route` is the whole push pipeline, shared with the change
endpoint (:mod:`bot.changes.api`) so the two cannot drift apart in what they answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Protocol, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.clock import Clock
from bot.config.loader import Config
from bot.errors import RequestRefused
from bot.http_helpers import authenticate, check_content_type, error, read_body
from bot.metrics.group_commit import GroupCommit
from bot.metrics.ingest import parse_batch
from bot.metrics.store import Point
from bot.settings import Settings

log = logging.getLogger(__name__)

PATH = "/api/v1/metrics"

Item = TypeVar("Item")


class Ingestor(Protocol):
    """What the endpoint needs of :class:`bot.service.AlertService` (kept narrow for tests)."""

    def ingest(self, points: list[Point]) -> int: ...


class Parser(Protocol[Item]):
    """A pure body parser (:func:`~bot.metrics.ingest.parse_batch`, ``parse_changes``): all or
    nothing, :class:`~bot.errors.RequestRefused` naming every problem."""

    def __call__(
        self, body: bytes, *, known_models: Collection[str], accept_unknown: bool, now: datetime
    ) -> list[Item]: ...


def push_route(
    *,
    path: str,
    name: str,
    parse: Parser[Item],
    store: Callable[[list[Item]], Awaitable[int]],
    settings: Settings,
    config: Callable[[], Config],
    clock: Clock,
    logger: logging.Logger,
    failed: str,
    unavailable: str,
    disconnected: str | None = None,
    stored: Callable[[list[Item], int], None] | None = None,
) -> Route:
    """A ``POST`` endpoint that authenticates, reads, parses and stores a pushed JSON batch.

    One pipeline for every push API, so they share the token, the limits and every answer: 401/403
    without the token, 415, 413, 422 from ``parse``, 400 on a disconnect, 503 (``unavailable``)
    when ``store`` (awaited: it hands the blocking write to a thread) hits the database, else 202
    ``{"accepted": n}``. ``config`` is called per request so a reload's models apply at once. The
    log lines stay the caller's (``failed`` is a ``%d`` format of the item count; ``disconnected``
    and ``stored`` are optional), so each endpoint's logs still say which endpoint spoke.
    """

    async def endpoint(request: Request) -> Response:
        refused = authenticate(request, settings) or check_content_type(request)
        if refused is not None:
            return refused
        try:
            body = await read_body(request, settings.ingest_max_bytes)
            current = config()
            items = parse(
                body,
                known_models=current.models.keys(),  # a view: a fleet configures 10,000 names
                accept_unknown=current.settings.accept_unknown_models,
                now=clock.now(),
            )
        except RequestRefused as exc:
            return error(exc.status, exc.message)
        except ClientDisconnect:
            if disconnected is not None:
                logger.info(disconnected)
            return error(400, "the client disconnected before the body was complete")
        try:
            count = await store(items)
        except SQLAlchemyError:
            logger.exception(failed, len(items))
            return error(503, unavailable)
        if stored is not None:
            stored(items, count)
        return JSONResponse({"accepted": count}, status_code=202)

    return Route(path, endpoint, methods=["POST"], name=name)


def metric_routes(*, service: Ingestor, settings: Settings, config: Callable[[], Config], clock: Clock) -> list[Route]:
    """The ingest API's routes. ``config`` is called per request so a reload's models apply at once."""

    def stored(points: list[Point], count: int) -> None:
        log.debug("ingest: stored %d samples", count)

    route = push_route(
        path=PATH,
        name="ingest_metrics",
        parse=parse_batch,
        store=GroupCommit(service.ingest).stored,
        settings=settings,
        config=config,
        clock=clock,
        logger=log,
        failed="ingest: storing %d samples failed",
        unavailable="the samples could not be stored right now; nothing was stored, retry later",
        disconnected="ingest: client disconnected before sending the whole body",
        stored=stored,
    )
    return [route]
