"""The Bolt app and its HTTP edge: ``POST /slack/events`` for commands, interactivity and events.

Built by a function, never at import time, so tests and the composition root each get their
own app wired to their own service, database and clock.

What arrives at ``/slack/events`` passes three gates before a listener runs:

1. the v0 signature and the 5-minute timestamp window (401 otherwise). This is checked here on
   the raw bytes *before* Bolt sees the request, because Bolt's Starlette adapter decodes and
   parses the body first, and a forged request with a non-UTF-8 body or a timestamp that is not
   a number would otherwise end as a 500. Bolt's own verification still runs behind it;
2. the body's shape (400 otherwise): a signed request whose body Bolt cannot parse, or whose
   payload has the wrong types where Bolt indexes into it, is refused instead of crashing;
3. Slack's Events API retries (``X-Slack-Retry-Num``) are acknowledged and dropped: the first
   delivery was already acted on, or its effect (an App Home refresh) is redone on the next open.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.internals import extract_content_type, parse_body
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message

from bot.clock import Clock
from bot.config.loader import Config
from bot.service import AlertService
from bot.settings import Settings
from bot.slack import actions, commands, home

log = logging.getLogger(__name__)

PATH = "/slack/events"
MAX_BODY_BYTES = 1024 * 1024
"""Slack's payloads are a few kilobytes (a modal submission at most some hundreds); anything
bigger is not from Slack and is refused before it is buffered, signed or not."""


class SlackApp(AsyncApp):
    """An :class:`AsyncApp` that keeps a verifier for its signing secret, for the HTTP edge."""

    def __init__(self, *, signing_secret: str, **kwargs: Any) -> None:
        super().__init__(signing_secret=signing_secret, **kwargs)
        self.request_verifier = SignatureVerifier(signing_secret)


def build_slack_app(
    *,
    settings: Settings,
    service: AlertService,
    engine: Engine,
    config: Callable[[], Config],
    clock: Clock,
) -> SlackApp:
    """The Bolt app with every listener registered.

    The bot token reaches Bolt through ``authorize`` rather than ``token=``: given a token,
    :class:`AsyncApp` calls ``auth.test`` on the first request and answers 500 while the Web API
    is unreachable (``AsyncApp`` has no ``token_verification_enabled`` switch). A single-workspace
    bot knows its token, so no request waits on Slack before it is acknowledged and start-up
    needs no network. The shared client carries only ``base_url``: Bolt gives each request its
    own client with the token from ``authorize`` (and warns at start-up if both are set).
    """
    if settings.slack_signing_secret is None or not settings.slack_signing_secret.get_secret_value().strip():
        raise ValueError("SLACK_SIGNING_SECRET is required to answer Slack over HTTP (POST /slack/events)")
    if settings.slack_bot_token is None or not settings.slack_bot_token.get_secret_value().strip():
        raise ValueError("SLACK_BOT_TOKEN is required for the Slack app (xoxb-…)")
    token = settings.slack_bot_token.get_secret_value()

    async def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=token)

    app = SlackApp(
        name="incident-bot",
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        client=AsyncWebClient(base_url=settings.slack_api_url),
        authorize=authorize,
        request_verification_enabled=True,
        process_before_response=False,
    )
    app.middleware(skip_slack_retries)
    actions.register(app, service=service, engine=engine, config=config)
    commands.register(app, engine=engine, config=config, clock=clock)
    home.register(app, engine=engine, config=config, clock=clock)
    return app


async def skip_slack_retries(
    req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[None]]
) -> BoltResponse | None:
    """Acknowledge Slack's Events API retries without acting on them a second time."""
    retry = req.headers.get("x-slack-retry-num")
    if retry:
        reason = (req.headers.get("x-slack-retry-reason") or ["unknown"])[0]
        log.info("Slack retry #%s (reason: %s) acknowledged and not processed again", retry[0], reason)
        return BoltResponse(status=200, body="")
    await next()
    return None


def slack_routes(slack_app: SlackApp) -> list[Route]:
    """``POST /slack/events``: the one URL Slack calls for commands, interactivity and events."""
    handler = AsyncSlackRequestHandler(slack_app)
    verifier = slack_app.request_verifier

    async def slack_events(request: Request) -> Response:
        try:
            body = await read_capped(request, MAX_BODY_BYTES)
        except ClientDisconnect:
            return _refuse(400, "the client disconnected before the body was complete")
        if body is None:
            return _refuse(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        if not signature_ok(verifier, body, request.headers):
            log.info("Slack request refused: bad signature or stale timestamp")
            return _refuse(401, "invalid request")
        problem = malformed(body, request.headers.get("content-type"))
        if problem is not None:
            log.info("signed Slack request refused as malformed: %s", problem)
            return _refuse(400, problem)

        async def replay() -> Message:  # the body was consumed above; Bolt's adapter reads it again
            return {"type": "http.request", "body": body, "more_body": False}

        return await handler.handle(Request(request.scope, replay))

    return [Route(PATH, slack_events, methods=["POST"], name="slack_events")]


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it grows past ``limit`` (never buffering more)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(status: int, message: str) -> Response:
    # X-Slack-No-Retry: resending the same bytes cannot succeed, so Slack should not try.
    return JSONResponse({"error": message}, status_code=status, headers={"X-Slack-No-Retry": "1"})


def signature_ok(verifier: SignatureVerifier, body: bytes, headers: Mapping[str, str]) -> bool:
    """Slack's v0 HMAC over ``v0:{timestamp}:{body}``, with the timestamp within 5 minutes.

    Garbage in either header (a non-numeric timestamp, non-ASCII in the signature) is a forgery
    like any other: False, never an exception.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    timestamp = lowered.get("x-slack-request-timestamp")
    signature = lowered.get("x-slack-signature")
    if not timestamp or not signature:
        return False
    try:
        return verifier.is_valid(body, timestamp.strip(), signature.strip())
    except (ValueError, TypeError, OverflowError):
        return False


_NONE = type(None)
_SHAPES: dict[str, tuple[type, ...]] = {
    "actions": (list,),
    "event": (dict,),
    "user": (dict, str),
    "channel": (dict, str, _NONE),
    "container": (dict, _NONE),
    "team": (dict, str, _NONE),
    "view": (dict, _NONE),
    "message": (dict, _NONE),
    "enterprise": (dict, str, _NONE),
    "authorizations": (list, _NONE),
}
"""The types Bolt assumes for payload keys it indexes into while routing a request."""


def malformed(body: bytes, content_type: str | None) -> str | None:
    """Why Bolt could not route this body, or None when it can. Pure: parses as Bolt does."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    headers: dict[str, Sequence[str]] = {"content-type": [content_type]} if content_type else {}
    try:
        payload = parse_body(text, extract_content_type(headers))
    except ValueError:
        return "the body is not valid JSON or form data"
    if not isinstance(payload, dict):
        return "the payload is not a JSON object"
    return payload_problem(payload)


def payload_problem(payload: dict[str, Any]) -> str | None:
    """Type errors in the keys Bolt reads (a list of action objects, an event object, …)."""
    for key, types in _SHAPES.items():
        if key in payload and not isinstance(payload[key], types):
            return f"{key!r} has the wrong type"
    for action in payload.get("actions") or []:
        if not isinstance(action, dict) or not isinstance(action.get("action_id", ""), str):
            return "'actions' must hold action objects"
    event = payload.get("event")
    if isinstance(event, dict) and not isinstance(event.get("type", ""), str):
        return "'event.type' must be text"
    if payload.get("type") == "block_actions" and not payload.get("actions"):
        return "a block_actions payload needs actions"
    if payload.get("type") == "event_callback" and not isinstance(event, dict):
        return "an event_callback payload needs an event"
    return None
