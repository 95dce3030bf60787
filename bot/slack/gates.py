"""The gates every request to ``POST /slack/events`` passes before a listener runs.

1. the body size (413 past :data:`MAX_BODY_BYTES`, decided on Content-Length or while streaming,
   so a huge body is never buffered);
2. the v0 signature and the 5-minute timestamp window (401 otherwise; 400 when either header is
   sent twice, since a check and the replay cache reading different copies of one header let a
   replay with a junk first copy through). This is checked here on
   the raw bytes *before* Bolt sees the request, because Bolt decodes and parses the body first,
   and a forged request with a non-UTF-8 body or a timestamp that is not a number would otherwise
   end as a 500. Bolt's own verification is switched off so the HMAC is computed once: this
   route is the only HTTP way into the app, and Socket Mode (:func:`running`) is authenticated by
   the app-level token that opened the websocket, not by signatures;
3. replays (401 "replayed request"): Slack's scheme alone accepts a captured request again for
   as long as its timestamp is within 5 minutes, so each accepted signature is remembered until
   its timestamp leaves the window (:class:`ReplayCache`) and a second request carrying it is
   refused. Requests with ``X-Slack-Retry-Num`` skip this gate: gate 6 acknowledges them
   without acting on them, so a replay dressed as a retry changes nothing either, and a genuine
   Slack retry is never refused, whether or not it carries the first delivery's signature
   (Slack's documentation does not say; a retry sent minutes later must carry a fresh timestamp
   to pass gate 2, but one sent at once might not);
4. the body's shape (400 otherwise): a signed request whose body Bolt cannot parse, or whose
   payload has the wrong types where Bolt or a listener indexes into it, is refused instead of
   crashing;
5. the workspace (403 otherwise): ``SLACK_TEAM_ID``, or when it is unset the workspace the bot
   token belongs to (``auth.test``, learned once; 503 while Slack cannot say). A command, click or
   event for another workspace (an app distributed to several workspaces shares one signing
   secret) is refused before anything reads it. :func:`only_workspace` applies the same rule
   inside Bolt, for Socket Mode;
6. Slack's Events API retries (``X-Slack-Retry-Num``) are acknowledged and dropped: the first
   delivery was already acted on, or its effect (an App Home refresh) is redone on the next open.

Every refusal is JSON ``{"error": "<reason>"}`` with ``X-Slack-No-Retry: 1``. The route that
applies them in this order is :func:`bot.slack.app.slack_routes`; this module holds the checks
and the state they keep (the replay cache, the workspace learned from ``auth.test``), apart from
the registration of listeners.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slack_bolt.request.internals import extract_content_type, extract_team_id, parse_body
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""Slack's payloads are a few kilobytes (a modal submission at most some hundreds); anything
bigger is not from Slack and is refused before it is buffered, signed or not."""


REPLAY_WINDOW = 300
"""Seconds either side of now within which Slack's scheme accepts a timestamp (slack_sdk's check)."""
REPLAY_CACHE_SIZE = 100_000
"""Signatures remembered at most: about 24 MB when full, reached only at 333 signed requests a second
for 5 minutes (a team's clicks and commands are a few a second); past it the oldest is forgotten early."""

AUTH_TEST_TIMEOUT = 5.0
"""Seconds one ``auth.test`` call (learning the workspace) may take."""
AUTH_TEST_RETRY = 5.0
"""Seconds between ``auth.test`` attempts while Slack cannot say which workspace the token is for."""
SIGNING_HEADERS = ("x-slack-request-timestamp", "x-slack-signature")


class ReplayCache:
    """The signatures of accepted requests, each kept until its timestamp leaves Slack's window.

    A v0 signature is an HMAC over ``v0:{timestamp}:{body}``, so it names one request exactly;
    Slack puts a fresh ``trigger_id``, ``action_ts`` or ``event_id`` in every request, so two
    genuine requests never share one. A signature with timestamp ``ts`` passes the 5-minute check
    until ``ts + window``; it is remembered until then (and forgotten after, when it could no
    longer pass anyway).

    Bounded: at ``capacity`` entries the oldest is forgotten early (logged), so a flood of signed
    requests costs at most ``capacity`` entries of memory and never refuses new ones. Per
    process: with several replicas behind a load balancer, a replay that reaches another replica
    within the window is not caught here; what it would do is then refused downstream (a repeated
    Acknowledge or Resolve is "Already acknowledged", an Events API retry is dropped, commands only
    read). Thread-safe, and never awaits, so check-and-record is one step.
    """

    def __init__(
        self, *, window: int = REPLAY_WINDOW, capacity: int = REPLAY_CACHE_SIZE, timer: Callable[[], float] = time.time
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.window = window
        self.capacity = capacity
        self._timer = timer
        self._expiry: OrderedDict[str, float] = OrderedDict()  # signature -> when it can no longer pass
        self._lock = threading.Lock()
        self.forgotten_early = 0

    def __len__(self) -> int:
        return len(self._expiry)

    def first_use(self, signature: str, timestamp: str) -> bool:
        """True the first time a (verified) signature is seen within its window, False on a replay."""
        try:
            expires = int(timestamp.strip()) + self.window + 1
        except ValueError:  # signature_ok() refuses these first; never remember what cannot pass
            return False
        with self._lock:
            now = self._timer()
            self._expire(now)
            if signature in self._expiry:
                return False
            if len(self._expiry) >= self.capacity:
                self._expiry.popitem(last=False)
                self.forgotten_early += 1
                if self.forgotten_early == 1 or self.forgotten_early % 10_000 == 0:
                    log.warning(
                        "Slack replay cache full (%d signatures in %d s): %d forgotten before their window ended",
                        self.capacity,
                        self.window,
                        self.forgotten_early,
                    )
            self._expiry[signature] = expires
            return True

    def _expire(self, now: float) -> None:
        # insertion order is arrival order, which is close to timestamp order; an entry stuck
        # behind a later-expiring one is dropped with it, and the capacity bounds them all
        while self._expiry:
            signature, expires = next(iter(self._expiry.items()))
            if expires > now:
                return
            del self._expiry[signature]


class Workspace:
    """The one Slack workspace this bot serves: ``SLACK_TEAM_ID``, or else the bot token's own,
    asked of ``auth.test`` on first need (and at start, by :func:`running`) and then kept.

    Unset is never "any workspace": an app distributed to several workspaces shares one signing
    secret, so a signed request proves only that it came from Slack. While ``auth.test`` fails,
    :meth:`team_id` is None and requests naming a workspace are refused (fail closed); it is asked
    again at most every :data:`AUTH_TEST_RETRY` seconds.
    """

    def __init__(
        self,
        team_id: str | None,
        *,
        token: str,
        base_url: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = "SLACK_TEAM_ID" if team_id else "auth.test"
        self._team_id = team_id
        self._client = AsyncWebClient(token=token, base_url=base_url, timeout=int(AUTH_TEST_TIMEOUT))
        self._monotonic = monotonic
        self._next_try = 0.0
        self._asking: asyncio.Future[str | None] | None = None
        self.problem: str | None = None
        """Why the workspace is not known yet (the last ``auth.test`` failure), for the refusal."""

    async def team_id(self) -> str | None:
        """The workspace's ID, or None while ``auth.test`` cannot tell it. Callers during one
        ``auth.test`` call all wait for its answer (the first click may arrive during start's)."""
        if self._team_id is not None:
            return self._team_id
        if self._asking is None or (self._asking.done() and self._monotonic() >= self._next_try):
            self._asking = asyncio.ensure_future(self._ask())
        return await asyncio.shield(self._asking)

    async def _ask(self) -> str | None:
        try:
            answer = await asyncio.wait_for(self._client.auth_test(), AUTH_TEST_TIMEOUT)
            team = answer.get("team_id")
            if not isinstance(team, str) or not team:
                raise ValueError("auth.test named no team_id")
        except Exception as exc:  # any failure leaves the workspace unknown, and says why
            self.problem = f"auth.test failed ({type(exc).__name__}: {str(exc)[:200]})"
            log.warning("cannot learn the bot's Slack workspace: %s; retrying in %.0f s", self.problem, AUTH_TEST_RETRY)
            self._next_try = self._monotonic() + AUTH_TEST_RETRY
            return None
        self._team_id, self.problem = team, None
        log.info("serving Slack workspace %s (learned from auth.test; set SLACK_TEAM_ID to fix it)", team)
        return team

    async def refusal(self, payload: dict[str, Any]) -> tuple[int, str] | None:
        """(status, why) when ``payload`` is not for this workspace, None when it is or names none."""
        team = self._team_id
        if team is None and names_workspace(payload):
            team = await self.team_id()
            if team is None:
                return 503, f"the bot's Slack workspace is not known yet: {self.problem}"
        problem = team_problem(payload, team, source=self.source)
        return (403, problem) if problem is not None else None


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


INVALID_SIGNATURE = (
    "invalid request: the X-Slack-Signature does not match the body under the signing secret, "
    "or X-Slack-Request-Timestamp is missing or more than 5 minutes away"
)


def refuse(status: int, message: str) -> Response:
    # X-Slack-No-Retry: resending the same bytes cannot succeed, so Slack should not try.
    return JSONResponse({"error": message}, status_code=status, headers={"X-Slack-No-Retry": "1"})


def signing_headers(headers: Headers) -> dict[str, str] | str:
    """The one ``X-Slack-Request-Timestamp`` and one ``X-Slack-Signature`` (absent: empty), or why
    not: either sent twice. The signature check and the replay cache both read what this returns,
    so a replay cannot pass one copy to the check and a fresh junk copy to the cache."""
    signed: dict[str, str] = {}
    for name in SIGNING_HEADERS:
        values = headers.getlist(name)
        if len(values) > 1:
            return f"the request carries {len(values)} {name} headers; Slack sends one"
        signed[name] = values[0] if values else ""
    return signed


def signature_ok(verifier: SignatureVerifier, body: bytes, headers: Mapping[str, str]) -> bool:
    """Slack's v0 HMAC over ``v0:{timestamp}:{body}``, with the timestamp within 5 minutes.

    What ``verifier.is_valid`` checks, computed over the raw bytes: slack_sdk decodes the body as
    UTF-8 first, so a correctly signed body that is not UTF-8 would pass for a forgery there; here
    it passes the signature and is refused as malformed (400), which is what it is. Garbage in
    either header (a non-numeric timestamp, non-ASCII in the signature) is a forgery like any
    other: False, never an exception.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    timestamp = (lowered.get("x-slack-request-timestamp") or "").strip()
    signature = (lowered.get("x-slack-signature") or "").strip()
    if not timestamp or not signature:
        return False
    try:
        if abs(verifier.clock.now() - int(timestamp)) > REPLAY_WINDOW:
            return False
        base = b"v0:" + timestamp.encode("ascii") + b":" + body
        expected = "v0=" + hmac.new(verifier.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode("ascii"))
    except (ValueError, TypeError, OverflowError):  # UnicodeEncodeError is a ValueError
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
    return parse_payload(body, content_type)[1]


def parse_payload(body: bytes, content_type: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The payload as Bolt will parse it and None, or None and why Bolt could not route it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None, "the body is not UTF-8"
    headers: dict[str, Sequence[str]] = {"content-type": [content_type]} if content_type else {}
    try:
        payload = parse_body(text, extract_content_type(headers))
    except ValueError:
        return None, "the body is not valid JSON or form data"
    except RecursionError:  # json's C decoder stops at the recursion limit: cheap, but not a ValueError
        return None, "the body's JSON is nested too deeply"
    if not isinstance(payload, dict):
        return None, "the payload is not a JSON object"
    problem = payload_problem(payload)
    return (None, problem) if problem is not None else (payload, None)


def team_problem(payload: dict[str, Any], team_id: str | None, *, source: str = "SLACK_TEAM_ID") -> str | None:
    """Why a request is not for workspace ``team_id`` (None: it is, or no workspace is configured).

    The workspace is the one Bolt authorizes the request for (``extract_team_id``): a command's
    ``team_id`` field, an interaction's ``team.id``, an event's ``authorizations[0].team_id`` or
    ``team_id``. A request naming no workspace at all (``url_verification``, ``ssl_check``) passes.
    Not checked against real Slack for Slack Connect channels: should a click there name the
    clicking person's own workspace, such clicks would be refused too.
    """
    if team_id is None:
        return None
    try:
        theirs = extract_team_id(payload)
    except (AttributeError, TypeError, KeyError, IndexError):
        return "the request's workspace (team) cannot be read"
    if theirs is None or theirs == team_id:
        return None
    shown = str(theirs)[:40]
    return f"this bot serves Slack workspace {team_id} only ({source}); the request is for workspace {shown!r}"


def names_workspace(payload: dict[str, Any]) -> bool:
    """Whether the request names a workspace (or one that cannot be read): only those need ours."""
    try:
        return extract_team_id(payload) is not None
    except (AttributeError, TypeError, KeyError, IndexError):
        return True


def payload_problem(payload: dict[str, Any]) -> str | None:
    """Type errors in the keys Bolt reads (a list of action objects, an event object, …)."""
    for key, types in _SHAPES.items():
        if key in payload and not isinstance(payload[key], types):
            return f"{key!r} has the wrong type"
    for action in payload.get("actions") or []:
        if not isinstance(action, dict) or not isinstance(action.get("action_id", ""), str):
            return "'actions' must hold action objects"
    for authorization in payload.get("authorizations") or []:
        if not isinstance(authorization, dict):
            return "'authorizations' must hold objects"
    event = payload.get("event")
    if isinstance(event, dict) and not isinstance(event.get("type", ""), str):
        return "'event.type' must be text"
    if "command" in payload and not all(isinstance(value, str) for value in payload.values()):
        return "a slash command's fields must be text (Slack sends them form-encoded)"
    if payload.get("type") in ("block_actions", "interactive_message") and not payload.get("actions"):
        return f"a {payload['type']} payload needs actions"
    if payload.get("type") == "block_actions":
        if not all(isinstance(action.get("action_id"), str) for action in payload["actions"]):
            return "every action of a block_actions payload needs an action_id"
        for key in ("user", "channel"):  # objects in a click (a string is only valid elsewhere)
            if not isinstance(payload.get(key), (dict, _NONE)):
                return f"a block_actions payload's {key!r} must be an object"
    if payload.get("type") == "event_callback" and not isinstance(event, dict):
        return "an event_callback payload needs an event"
    if payload.get("type") in ("view_submission", "view_closed"):  # Bolt's listener matching reads view["type"]
        view = payload.get("view")
        if not isinstance(view, dict) or not isinstance(view.get("type"), str):
            return f"a {payload['type']} payload needs a 'view' object with a text 'view.type'"
    return None
