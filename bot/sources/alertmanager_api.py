"""``POST /api/v1/alertmanager``: Alertmanager's webhook receiver (SPEC §2 source c).

Alertmanager retries a notification on a 5xx and gives up on a 4xx, so the status codes are
chosen by one question: would sending the same request again help?

* 401 / 413 / 415 / 422 (wrong token, too large, not JSON, not a v4 payload): no, the request
  itself is wrong; the message says what to fix in ``alertmanager.yml``;
* 503 (database unavailable, a race lost three times, ``INGEST_TOKEN`` unset): yes, nothing was
  recorded and a retry will be;
* 200 ``{"fired": n, "resolved": m}`` otherwise, also when the notification changed nothing
  (a duplicate from an HA peer, a ``repeat_interval`` reminder, a resolve for an unknown alert).

Authentication, the body limit and content negotiation are :mod:`bot.http_helpers`, shared with
the push-ingest API and in the same order: an unauthenticated request is refused before its body
is read. The token is ``INGEST_TOKEN``, sent by Alertmanager's ``http_config.authorization``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.alerts.lifecycle import Transition
from bot.alerts.store import ConcurrentChange
from bot.clock import Clock
from bot.errors import RequestRefused
from bot.http_helpers import authenticate, check_content_type, error, read_body
from bot.service import ExternalPlan
from bot.settings import Settings
from bot.sources.alertmanager import PayloadError, parse_notification, plan, resolved_since, summary

log = logging.getLogger(__name__)

PATH = "/api/v1/alertmanager"


class ExternalAlerts(Protocol):
    """What the endpoint needs of :class:`bot.service.AlertService` (kept narrow for tests)."""

    def apply_external(self, plan: ExternalPlan, *, resolved_since: datetime) -> list[Transition]: ...


def alertmanager_routes(*, service: ExternalAlerts, settings: Settings, clock: Clock) -> list[Route]:
    async def receive(request: Request) -> Response:
        refused = authenticate(request, settings) or check_content_type(request)
        if refused is not None:
            return refused
        try:
            notification = parse_notification(await read_body(request, settings.ingest_max_bytes))
        except RequestRefused as exc:
            return error(exc.status, exc.message)
        except PayloadError as exc:
            log.warning("alertmanager webhook: refused a payload: %s", exc.message)
            return error(422, exc.message)
        except ClientDisconnect:
            return error(400, "the client disconnected before the body was complete")
        if notification.truncatedAlerts:
            log.warning(
                "alertmanager webhook: group %s left out %d alerts (max_alerts in alertmanager.yml); "
                "those alerts are not seen here",
                notification.groupKey,
                notification.truncatedAlerts,
            )
        decide: Callable[..., list[Transition]] = functools.partial(plan, notification)
        try:
            changes = await run_in_threadpool(
                service.apply_external, decide, resolved_since=resolved_since(notification, clock.now())
            )
        except (SQLAlchemyError, ConcurrentChange):
            log.exception("alertmanager webhook: recording group %s failed; asking for a retry", notification.groupKey)
            return error(503, "the alerts could not be recorded right now; nothing was recorded, retry later")
        counts = summary(changes)
        if changes:
            log.info("alertmanager webhook: group %s: %s", notification.groupKey, counts)
        return JSONResponse(counts)

    return [Route(PATH, receive, methods=["POST"], name="alertmanager_webhook")]
