"""One HTTP POST of a notification, and what its outcome means to the outbox.

Every notifier that speaks HTTP shares the retry table, so it is written once: PagerDuty's Events
API and outgoing webhooks post through :func:`post` and :func:`classify`; Slack's Web API client
(:mod:`bot.notify.slack_api`) reads its answers' status with :func:`retries` and
:func:`retry_after`. The table: 2xx is delivered; 429, 408, 425 and 5xx retry later (after the
server's ``Retry-After`` when it sends one); a timeout or a connection failure retries; any
other status (a 400, a 404, a redirect the client does not follow) is final, since sending the
same request again cannot succeed. The caller names the service and may add what the server
said and a hint for the operator; messages land in the outbox's ``last_error`` and the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from bot.clock import ensure_utc
from bot.errors import DeliveryError

RETRYABLE_STATUS = frozenset({408, 425, 429})
"""4xx statuses that say "later", not "never"."""


def post(client: httpx.Client, url: str, what: str, service: str, **request: Any) -> httpx.Response:
    """``client.post(url, **request)``, a transport failure raised as a retryable DeliveryError.

    The message names the exception's type only for a timeout (the server may have applied the
    request: a receiver must de-duplicate) and its text otherwise; neither carries the URL, which
    for a webhook may itself be a credential."""
    try:
        return client.post(url, **request)
    except httpx.TimeoutException as exc:
        raise DeliveryError(
            f"{what}: no answer in time ({type(exc).__name__}); it may or may not have been applied",
            retryable=True,
        ) from exc
    except httpx.HTTPError as exc:
        detail = str(exc).replace(url, "<url>")
        raise DeliveryError(f"{what}: cannot reach {service} ({type(exc).__name__}: {detail})", retryable=True) from exc


def classify(
    response: httpx.Response, what: str, service: str, *, said: str = "", hints: Mapping[int, str] | None = None
) -> DeliveryError:
    """The DeliveryError for a non-2xx answer (see the module docstring for the table)."""
    status = response.status_code
    if status == 429:
        return DeliveryError(
            f"{what}: rate limited by {service} (HTTP 429)", retryable=True, retry_after=retry_after(response.headers)
        )
    if retries(status):
        return DeliveryError(
            f"{what}: {service} answered HTTP {status}{said}",
            retryable=True,
            retry_after=retry_after(response.headers),
        )
    message = f"{what}: refused by {service} (HTTP {status}){said}"
    hint = (hints or {}).get(status)
    if hint:
        message += f" — {hint}"
    return DeliveryError(message, retryable=False)


def retries(status: int) -> bool:
    """Whether an HTTP status says "try again later": 5xx, 408, 425 and 429."""
    return status >= 500 or status in RETRYABLE_STATUS


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None when absent or unreadable.

    ``headers`` may be httpx's, or a plain mapping as slack_sdk gives (any case; a value may be
    the list of the header's values, of which the first counts)."""
    raw = next((value for name, value in headers.items() if name.lower() == "retry-after"), None)
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except (TypeError, ValueError):
        pass
    try:
        when = parsedate_to_datetime(str(raw))
    except (TypeError, ValueError):
        return None
    return max((ensure_utc(when) - datetime.now(UTC)).total_seconds(), 0.0)
