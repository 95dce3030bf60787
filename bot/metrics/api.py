"""The push-ingest HTTP endpoint, ``POST /api/v1/metrics`` (SPEC §2 metric sources, §6).

This module is the edge: authentication, body limits and content negotiation, in that order, so
an unauthenticated or oversized request is turned away before its body is read. Parsing is
delegated to the pure :func:`bot.metrics.ingest.parse_batch`, which validates the whole batch
before :meth:`AlertService.ingest` stores it in one transaction: a rejected request stores nothing.

Every answer is JSON; errors are ``{"error": "<message for the sender>"}``. The bearer token is
compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
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


def _authenticate(request: Request, settings: Settings) -> Response | None:
    """None when the bearer token matches; otherwise the refusal.

    With no ``INGEST_TOKEN`` configured the endpoint is closed (503), never open: an
    unauthenticated write path into the alerting data would let anyone fire or silence alerts.
    """
    expected = settings.ingest_token.get_secret_value() if settings.ingest_token is not None else ""
    if not expected:
        return _error(503, "the ingest API is disabled: INGEST_TOKEN is not set on the server")
    header = request.headers.get("authorization")
    if not header or not header.strip():
        return _error(
            401,
            "missing bearer token: send the header 'Authorization: Bearer <INGEST_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(
            401,
            "the Authorization header must be 'Bearer <INGEST_TOKEN>'",
            headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
        )
    # Header values arrive decoded as latin-1; compare bytes so any byte sequence is comparable.
    if not hmac.compare_digest(token.strip().encode("latin-1"), expected.encode("utf-8")):
        return _error(
            401,
            "invalid bearer token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return None


def _check_content_type(request: Request) -> Response | None:
    """JSON only (``application/json`` or a ``+json`` type), UTF-8, not compressed."""
    raw = request.headers.get("content-type", "")
    media, *params = (part.strip() for part in raw.split(";"))
    media = media.lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        shown = f"'{media}'" if media else "no Content-Type"
        return _error(415, f"send the body as JSON with 'Content-Type: application/json' (got {shown})")
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return _error(415, f"unsupported charset {value.strip()!r}; send UTF-8 JSON")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return _error(415, f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
    return None


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit``.

    Content-Length is checked before reading anything; a chunked upload without one is counted
    while it streams and cut off at the limit, so a huge body never sits in memory.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise IngestError(400, f"invalid Content-Length {declared[:40]!r}") from None
        if length < 0:
            raise IngestError(400, f"invalid Content-Length {declared[:40]!r}")
        if length > limit:
            raise IngestError(413, _too_large(limit, f"Content-Length is {length} bytes"))
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise IngestError(413, _too_large(limit, f"more than {limit} bytes were sent"))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int, what: str) -> str:
    return f"body too large: {what}, the limit is {limit} bytes (INGEST_MAX_BYTES); split the batch"


def _error(status: int, message: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
