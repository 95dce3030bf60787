"""The Bolt app and its HTTP edge: ``POST /slack/events`` for commands, interactivity and events.

Built by a function, never at import time, so tests and the composition root each get their
own app wired to their own service, database and clock.

What arrives at ``/slack/events`` passes the gates of :mod:`bot.slack.gates` (body size, signature
and timestamp, replays, the body's shape, the workspace, Slack's retries) before a listener runs;
:func:`slack_routes` applies them in that order. Bolt's own verification is switched off so the
HMAC is computed once: this route is the only HTTP way into the app, and Socket Mode
(:func:`running`) is authenticated by the app-level token that opened the websocket.

Listeners run before the response is sent (``process_before_response=True``): each one acks and
hands its slow part to :class:`~bot.slack.after_ack.AfterAck`, so the response goes out as soon
as the listener returns, without the background task and 10 ms polling that Bolt otherwise uses
to wait for ``ack()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from bot.clock import Clock
from bot.config.loader import Config
from bot.incident_response import IncidentResponse
from bot.incident_review import IncidentReview
from bot.queries import Queries
from bot.service import AlertService
from bot.settings import Settings
from bot.slack import (
    actions,
    commands,
    home,
    incident_commands,
    resolution_notes,
    room_buttons,
    silences,
    timeline_marks,
)
from bot.slack.after_ack import AfterAck
from bot.slack.context import SlackContext
from bot.slack.gates import (
    INVALID_SIGNATURE,
    MAX_BODY_BYTES,
    ReplayCache,
    Workspace,
    parse_payload,
    read_capped,
    refuse,
    signature_ok,
    signing_headers,
)

log = logging.getLogger(__name__)

PATH = "/slack/events"
SOCKET_MODE_CONNECT_WAIT = 10.0
"""Seconds start-up waits for the first Socket Mode connection before serving without it (the
client keeps retrying in the background, so an unreachable Slack never keeps /healthz down)."""
SOCKET_MODE_RETRY = 10.0
"""Seconds between Socket Mode connection attempts (slack_sdk's ``ping_interval``, also its ping period)."""
class OneLineRetries(logging.Filter):
    """slack_sdk logs every failed Socket Mode connection attempt as an ERROR with the whole
    traceback, every :data:`SOCKET_MODE_RETRY` seconds for as long as Slack is unreachable. Each
    attempt becomes one WARNING line saying why; the line slack_sdk logs before it about the same
    error (``Failed to retrieve WSS URL``, when Slack answers but refuses) is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Failed to retrieve WSS URL"):
            return False
        if message.startswith("Failed to connect") and record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = "Socket Mode cannot connect to Slack (%s: %s); trying again in %.0f s"
            record.args = (type(error).__name__, error, SOCKET_MODE_RETRY)
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
            record.exc_info, record.exc_text = None, None
        return True


socket_mode_log = logging.getLogger("bot.slack.socket_mode")
"""The Socket Mode client's logger (slack_sdk's would otherwise be the Bolt app's)."""
socket_mode_log.addFilter(OneLineRetries())


class SlackApp(AsyncApp):
    """An :class:`AsyncApp` that keeps its after-ack worker and, for the HTTP edge, a signature
    verifier, the replay cache and the one :class:`Workspace` it serves.

    ``request_verifier`` is None when no signing secret is configured (Socket Mode only): then
    :func:`slack_routes` refuses to build an HTTP route.
    """

    def __init__(self, *, signing_secret: str | None, after_ack: AfterAck, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(signing_secret=signing_secret or "", request_verification_enabled=False, **kwargs)
        self.request_verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self.replay_cache = ReplayCache()
        self.workspace = workspace
        self.after_ack = after_ack


def build_slack_app(
    *,
    settings: Settings,
    service: AlertService,
    queries: Queries,
    config: Callable[[], Config],
    clock: Clock,
) -> SlackApp:
    """The Bolt app with every listener registered.

    The bot token reaches Bolt through ``authorize`` rather than ``token=``: given a token,
    :class:`AsyncApp` calls ``auth.test`` on the first request and answers 500 while the Web API
    is unreachable (``AsyncApp`` has no ``token_verification_enabled`` switch). A single-workspace
    bot knows its token, so no request waits on Slack before it is acknowledged and start-up
    needs no network. The shared client carries only ``base_url``: Bolt gives each request its
    own client with the token from ``authorize`` (and warns at start-up if both are set); the
    listeners' Web API calls go through the after-ack worker's pooled client instead.

    A signing secret is needed for HTTP (``POST /slack/events``), an app-level token for Socket
    Mode; at least one of the two must be set.
    """
    signing_secret = _secret_text(settings.slack_signing_secret)
    if signing_secret is None and _secret_text(settings.slack_app_token) is None:
        raise ValueError("SLACK_SIGNING_SECRET (HTTP, POST /slack/events) or SLACK_APP_TOKEN (Socket Mode) is required")
    token = _secret_text(settings.slack_bot_token)
    if token is None:
        raise ValueError("SLACK_BOT_TOKEN is required for the Slack app (xoxb-…)")

    async def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=token)

    after_ack = AfterAck(token=token, base_url=settings.slack_api_url)
    team_id = (settings.slack_team_id or "").strip() or None
    workspace = Workspace(team_id, token=token, base_url=settings.slack_api_url)
    app = SlackApp(
        name="incident-bot",
        signing_secret=signing_secret,
        after_ack=after_ack,
        workspace=workspace,
        client=AsyncWebClient(base_url=settings.slack_api_url),
        authorize=authorize,
        process_before_response=True,
    )
    app.middleware(only_workspace(workspace))  # the HTTP edge refuses these first; this covers Socket Mode
    app.middleware(skip_slack_retries)
    review = IncidentReview(queries.engine, clock, config, service)
    context = SlackContext(
        service=service,
        queries=queries,
        config=config,
        clock=clock,
        after_ack=after_ack,
        review=review,
        rooms=IncidentResponse(service),
    )
    surfaces = (actions, commands, home, silences, incident_commands, room_buttons, resolution_notes, timeline_marks)
    for surface in surfaces:
        surface.register(app, context)
    return app


def _secret_text(value: SecretStr | None) -> str | None:
    text = value.get_secret_value().strip() if value is not None else ""
    return text or None


@contextlib.asynccontextmanager
async def running(slack_app: SlackApp, *, app_token: str | None) -> AsyncIterator[None]:
    """The Slack side of the ASGI lifespan: the after-ack worker, and Socket Mode when ``app_token`` is set.

    Socket Mode and HTTP are not exclusive: with both a signing secret and an app token, Slack
    may deliver over either (it uses the websocket while one is open). Start-up waits up to
    :data:`SOCKET_MODE_CONNECT_WAIT` seconds for the first connection; past that it serves
    anyway and the client keeps retrying. On shutdown the websocket closes first, so no new
    work arrives while the worker finishes what it has.
    """
    slack_app.after_ack.start()
    learning = asyncio.create_task(slack_app.workspace.team_id())  # so the first click need not wait for it
    handler: AsyncSocketModeHandler | None = None
    connecting: asyncio.Task[None] | None = None
    if app_token:
        handler = AsyncSocketModeHandler(slack_app, app_token, logger=socket_mode_log, ping_interval=SOCKET_MODE_RETRY)
        connecting = asyncio.create_task(handler.connect_async())  # type: ignore[no-untyped-call]
        try:
            await asyncio.wait_for(asyncio.shield(connecting), SOCKET_MODE_CONNECT_WAIT)
            log.info("Socket Mode connected")
        except TimeoutError:
            log.warning("Socket Mode did not connect within %.0f s; still trying", SOCKET_MODE_CONNECT_WAIT)
        except Exception:  # serve HTTP, the ingest API and the scheduler anyway; the log says why
            log.exception("Socket Mode could not connect")
    try:
        yield
    finally:
        for task in (connecting, learning):
            if task is not None and not task.done():
                task.cancel()
        if handler is not None:
            try:
                await handler.close_async()  # type: ignore[no-untyped-call]
            except Exception:
                log.warning("closing the Socket Mode connection failed", exc_info=True)
        await slack_app.after_ack.aclose()


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


def only_workspace(workspace: Workspace) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Bolt middleware: refuse (403) a request whose workspace is not ``workspace``'s (Socket Mode's gate 5)."""

    async def middleware(
        req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        refusal = await workspace.refusal(req.body)
        if refusal is not None:
            log.warning("Slack request refused: %s", refusal[1])
            return BoltResponse(status=refusal[0], body=json.dumps({"error": refusal[1]}))
        await next()
        return None

    return middleware


def slack_routes(slack_app: SlackApp) -> list[Route]:
    """``POST /slack/events``: the one URL Slack calls for commands, interactivity and events."""
    verifier = slack_app.request_verifier
    if verifier is None:
        raise ValueError("SLACK_SIGNING_SECRET is required to answer Slack over HTTP (POST /slack/events)")
    replays = slack_app.replay_cache
    workspace = slack_app.workspace

    async def slack_events(request: Request) -> Response:
        try:
            body = await read_capped(request, MAX_BODY_BYTES)
        except ClientDisconnect:
            return refuse(400, "the client disconnected before the body was complete")
        if body is None:
            return refuse(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        signed = signing_headers(request.headers)
        if isinstance(signed, str):
            log.warning("Slack request refused: %s", signed)
            return refuse(400, signed)
        if not signature_ok(verifier, body, signed):
            log.info("Slack request refused: bad signature or stale timestamp")
            return refuse(401, INVALID_SIGNATURE)
        if not request.headers.get("x-slack-retry-num") and not replays.first_use(
            signed["x-slack-signature"].strip(), signed["x-slack-request-timestamp"]
        ):
            log.warning("Slack request refused: a replay of a signature already used")
            return refuse(401, "replayed request: this signature was already used")
        payload, problem = parse_payload(body, request.headers.get("content-type"))
        if payload is None:
            log.info("signed Slack request refused as malformed: %s", problem)
            return refuse(400, problem or "malformed request")
        refusal = await workspace.refusal(payload)
        if refusal is not None:
            log.warning("Slack request refused: %s", refusal[1])
            return refuse(*refusal)

        # parse_payload() proved the body is UTF-8; Bolt gets it as text, as its Starlette adapter would pass it
        try:  # Bolt reads ids out of nested objects here (event.channel, view.team_id, ...)
            bolt_request = AsyncBoltRequest(
                body=body.decode("utf-8"), query=request.url.query, headers=dict(request.headers)
            )
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.info("signed Slack request refused: Bolt cannot read its payload (%s: %s)", type(exc).__name__, exc)
            return refuse(400, "a field of the payload has the wrong type (Slack sends an object or text there)")
        if "view" in bolt_request.body and bolt_request.body["view"] is None:
            del bolt_request.body["view"]  # Bolt's unhandled-request log reads view.get(); a null view says nothing
        return to_starlette_response(await slack_app.async_dispatch(bolt_request))

    return [Route(PATH, slack_events, methods=["POST"], name="slack_events")]


