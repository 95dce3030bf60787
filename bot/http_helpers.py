"""HTTP edge helpers shared by the bot's write APIs (push ingest, Alertmanager webhook).

Both endpoints are write paths into the alerting data, so both refuse requests the same way and
in the same order: authentication first, then content type and body size, so an unauthenticated
or oversized request is turned away before its body is read. Keeping one copy means a fix to the
token check or the body limit reaches every endpoint at once.

Every answer is JSON; errors are ``{"error": "<message for the sender>"}``. The bearer token is
compared in constant time and never logged.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.errors import RequestRefused
from bot.settings import Settings


def authenticate(request: Request, settings: Settings) -> Response | None:
    """None when the bearer token matches ``INGEST_TOKEN``; otherwise the refusal.

    With no ``INGEST_TOKEN`` configured the endpoint is closed (503), never open: an
    unauthenticated write path into the alerting data would let anyone fire or silence alerts.
    """
    expected = settings.ingest_token.get_secret_value() if settings.ingest_token is not None else ""
    if not expected:
        return error(503, "this API is disabled: INGEST_TOKEN is not set on the server")
    header = request.headers.get("authorization")
    if not header or not header.strip():
        return error(
            401,
            "missing bearer token: send the header 'Authorization: Bearer <INGEST_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error(
            401,
            "the Authorization header must be 'Bearer <INGEST_TOKEN>'",
            headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
        )
    # Header values arrive decoded as latin-1; compare bytes so any byte sequence is comparable.
    if not hmac.compare_digest(token.strip().encode("latin-1"), expected.encode("utf-8")):
        return error(
            401,
            "invalid bearer token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return None


def check_content_type(request: Request) -> Response | None:
    """JSON only (``application/json`` or a ``+json`` type), UTF-8, not compressed."""
    raw = request.headers.get("content-type", "")
    media, *params = (part.strip() for part in raw.split(";"))
    media = media.lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        shown = f"'{media}'" if media else "no Content-Type"
        return error(415, f"send the body as JSON with 'Content-Type: application/json' (got {shown})")
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return error(415, f"unsupported charset {value.strip()!r}; send UTF-8 JSON")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return error(415, f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit``.

    Content-Length is checked before reading anything; a chunked upload without one is counted
    while it streams and cut off at the limit, so a huge body never sits in memory.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise RequestRefused(400, f"invalid Content-Length {declared[:40]!r}") from None
        if length < 0:
            raise RequestRefused(400, f"invalid Content-Length {declared[:40]!r}")
        if length > limit:
            raise RequestRefused(413, _too_large(limit, f"Content-Length is {length} bytes"))
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise RequestRefused(413, _too_large(limit, f"more than {limit} bytes were sent"))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int, what: str) -> str:
    return f"body too large: {what}, the limit is {limit} bytes (INGEST_MAX_BYTES); split the batch"


def error(status: int, message: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
