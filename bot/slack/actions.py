"""The alert message's buttons: Acknowledge, Resolve, Runbook.

Every handler acknowledges first (Slack shows an error after 3 seconds) and hands the rest of
the work to :class:`bot.slack.after_ack.AfterAck`, so the serving loop is free for the next
ack while the database and the Web API are busy with this one. The
state change itself belongs to :class:`bot.service.AlertService`: it refuses impossible
transitions with a readable reason, lets exactly one of two simultaneous clicks win, and
enqueues the notification that updates the alert message. This module only checks who may
click, calls the service off the event loop, and tells the clicker privately when nothing
changed (an ephemeral message), so the channel only ever sees the real state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.alerts import store
from bot.alerts.lifecycle import Alert
from bot.config.loader import Config
from bot.config.schema import Access
from bot.errors import ActionRefused
from bot.notify.slack_blocks import ACKNOWLEDGE_ACTION, RESOLVE_ACTION, RUNBOOK_ACTION, runbook_modal
from bot.service import AlertService
from bot.slack import messages
from bot.slack.after_ack import AfterAck
from bot.slack.commands import render_runbook
from bot.storage.database import session as open_session

log = logging.getLogger(__name__)

ACKNOWLEDGE = ACKNOWLEDGE_ACTION
RESOLVE = RESOLVE_ACTION
RUNBOOK = RUNBOOK_ACTION

VERBS = {ACKNOWLEDGE: "acknowledge", RESOLVE: "resolve"}
DATABASE_PATIENCE = 20.0
"""How long a click waits for an unavailable database before the clicker is told to try again."""

T = TypeVar("T")


async def patiently(call: Callable[[], Awaitable[T]], *, what: str, patience: float = DATABASE_PATIENCE) -> T:
    """Run ``call``, retrying while the database is unavailable -- a connection refused or lost
    (a restart), a SQLite file locked -- for up to ``patience`` seconds; then raise. A click is
    acknowledged before it is applied, so giving up at the first refused connection would
    lose it. (If a commit's answer was what got lost, the retry is refused as "already done".)"""
    deadline = time.monotonic() + patience
    delay = 0.25
    while True:
        try:
            return await call()
        except DBAPIError as exc:
            if not (isinstance(exc, OperationalError) or exc.connection_invalidated):
                raise
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s: the database is unavailable (%s); trying again in %.2fs", what, exc.orig or exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


@dataclass(frozen=True)
class Click:
    """The parts of a ``block_actions`` payload a button handler needs."""

    action_id: str
    value: str
    user: str
    channel: str | None
    trigger_id: str | None
    message_ts: str | None


async def clicked_alert(
    after_ack: AfterAck, click: Click, load: Callable[[int], T | None], *, why: str
) -> tuple[int, T] | None:
    """Read the alert a button names, or tell the person why not (a bad button value, a failed
    read, an alert that does not exist) and return ``None``."""
    alert_id = alert_id_of(click.value)
    if alert_id is None:
        await refuse(after_ack.client, click, messages.bad_button(click.value))
        return None
    try:
        found = await after_ack.db(load, alert_id)
    except Exception:
        log.exception("reading alert %s for its %s failed", alert_id, why)
        await tell(after_ack.client, click, messages.TRY_AGAIN)
        return None
    if found is None:
        await refuse(after_ack.client, click, messages.alert_not_found(alert_id))
        return None
    return alert_id, found


def parse_click(body: dict[str, Any]) -> Click:
    """Read a button click; clicks from the App Home carry no channel."""
    action = body["actions"][0]
    channel = body.get("channel") or {}
    container = body.get("container") or {}
    return Click(
        action_id=str(action.get("action_id", "")),
        value=str(action.get("value", "")),
        user=str((body.get("user") or {}).get("id", "")),
        channel=channel.get("id") or container.get("channel_id"),
        trigger_id=body.get("trigger_id"),
        message_ts=container.get("message_ts"),
    )


def alert_id_of(value: str) -> int | None:
    """The alert id a button carries (``str(alert.id)``), or None for anything else."""
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


class MembershipCache:
    """Who is in a channel or user group, remembered for ``ttl`` seconds.

    A burst of clicks during an incident must not turn into a burst of ``conversations.members``
    calls (Slack rate-limits them); a minute is short enough for a newly invited responder.
    """

    def __init__(self, *, ttl: float = 60.0, timer: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._timer = timer
        self._entries: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, key: str, fetch: Callable[[], Awaitable[frozenset[str]]]) -> frozenset[str]:
        now = self._timer()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        users = await fetch()
        self._entries[key] = (now, users)
        return users


async def access_refusal(
    client: AsyncWebClient, access: Access, cache: MembershipCache, *, user: str, channel: str | None, verb: str
) -> str | None:
    """None when ``user`` may act under the ``access:`` policy, else the message saying why not.

    Fails closed: if Slack cannot tell us who is a member, nobody is let through.
    """
    if access.allow == "anyone":
        return None
    try:
        if access.allow == "usergroup":
            group = str(access.usergroup)
            users = await cache.members(f"usergroup:{group}", lambda: _usergroup_users(client, group))
            return None if user in users else messages.not_allowed_usergroup(verb, group)
        if channel is None:
            return messages.no_channel_to_check(verb)
        users = await cache.members(f"channel:{channel}", lambda: _channel_members(client, channel))
        return None if user in users else messages.not_allowed_channel(verb, channel)
    except SlackApiError as exc:
        log.warning("access check for %s failed: %s", user, exc.response.get("error"))
        return messages.access_check_failed(verb, str(exc.response.get("error", "error")))
    except Exception as exc:  # Slack unreachable: refuse rather than let anyone through
        log.warning("access check for %s failed", user, exc_info=True)
        return messages.access_check_failed(verb, type(exc).__name__)


async def _channel_members(client: AsyncWebClient, channel: str) -> frozenset[str]:
    users: set[str] = set()
    cursor: str | None = None
    while True:
        page = await client.conversations_members(channel=channel, limit=1000, cursor=cursor)
        users.update(page.get("members") or [])
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return frozenset(users)


async def _usergroup_users(client: AsyncWebClient, usergroup: str) -> frozenset[str]:
    page = await client.usergroups_users_list(usergroup=usergroup)
    return frozenset(page.get("users") or [])


async def refuse(client: AsyncWebClient, click: Click, text: str) -> None:
    """Tell the clicker why the click changed nothing, and log it: the click's one line."""
    log.info("%s's %s click (value %r) changed nothing: %s", click.user, click.action_id, click.value[:40], text)
    await tell(client, click, text)


async def tell(client: AsyncWebClient, click: Click, text: str) -> None:
    """Say something to the clicker alone: ephemeral in the channel, or a DM from the App Home."""
    try:
        if click.channel:
            await client.chat_postEphemeral(channel=click.channel, user=click.user, text=text)
        else:
            await client.chat_postMessage(channel=click.user, text=text)
    except Exception:  # the click was handled; failing to explain it must not look like a crash
        log.warning("could not tell %s: %s", click.user, text, exc_info=True)


def register(
    app: AsyncApp,
    *,
    service: AlertService,
    engine: Engine,
    config: Callable[[], Config],
    after_ack: AfterAck,
    membership: MembershipCache | None = None,
) -> None:
    """Attach the three button handlers to ``app``; each only parses the click and acks."""
    cache = membership or MembershipCache()

    async def change_state(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = parse_click(body)
        await after_ack.submit(lambda: _change_state(click))

    async def _change_state(click: Click) -> None:
        client = after_ack.client
        verb = VERBS[click.action_id]
        alert_id = alert_id_of(click.value)
        if alert_id is None:
            await refuse(client, click, messages.bad_button(click.value))
            return
        access = config().access
        channel = None
        if access.allow == "channel_members":  # the alert's own channel: the click's is the clicker's word
            try:
                channel = await after_ack.db(_alert_channel, engine, alert_id)
            except Exception:
                log.exception("finding the channel of alert %s failed", alert_id)
                await tell(client, click, messages.TRY_AGAIN)
                return
        refusal = await access_refusal(client, access, cache, user=click.user, channel=channel, verb=verb)
        if refusal is not None:
            await refuse(client, click, refusal)
            return
        act = service.acknowledge if click.action_id == ACKNOWLEDGE else service.resolve
        try:  # a repeat click is refused after one read by primary key, with no write
            # done, the service logs the change ("alert 7 acknowledged … by U…"): the click's one line
            await patiently(lambda: after_ack.db(act, alert_id, actor=click.user), what=f"{verb} {alert_id}")
        except ActionRefused as exc:
            await refuse(client, click, messages.refused(str(exc)))
        except LookupError:
            await refuse(client, click, messages.alert_not_found(alert_id))
        except store.ConcurrentChange:
            await refuse(client, click, messages.KEEPS_CHANGING)
        except Exception:
            log.exception("%s of alert %s by %s failed", verb, alert_id, click.user)
            await tell(client, click, messages.TRY_AGAIN)

    async def open_runbook(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = parse_click(body)
        await after_ack.submit(lambda: _open_runbook(click))

    async def _open_runbook(click: Click) -> None:
        client = after_ack.client
        clicked = await clicked_alert(after_ack, click, lambda alert_id: _load_alert(engine, alert_id), why="runbook")
        if clicked is None:
            return
        alert_id, alert = clicked
        text = render_runbook(config(), alert.model, rule=alert.rule)
        if text is None:
            await refuse(client, click, messages.no_runbook(alert.model))
            return
        try:  # the trigger_id expires 3 s after the click: nothing slow may come before this call
            await client.views_open(trigger_id=click.trigger_id, view=runbook_modal(alert.model, text))
        except Exception:
            log.warning("views.open for the runbook of alert %s failed", alert_id, exc_info=True)
            await tell(client, click, messages.TRY_AGAIN)
            return
        log.info("runbook of alert %s (%s) opened for %s", alert_id, alert.model, click.user)

    app.action(ACKNOWLEDGE)(change_state)
    app.action(RESOLVE)(change_state)
    app.action(RUNBOOK)(open_runbook)


def _load_alert(engine: Engine, alert_id: int) -> Alert | None:
    with open_session(engine) as s:
        return store.get(s, alert_id)


def _alert_channel(engine: Engine, alert_id: int) -> str | None:
    """Where the alert's root message lives: the channel whose members the ``channel_members``
    policy lets act on it. Never the channel a click names: that is where the clicked copy of the
    message is (a shared copy's buttons work in any channel the clicker picked), so a non-member
    could act by clicking in a channel of his own."""
    with open_session(engine) as s:
        where = store.slack_message(s, alert_id)
    return where[0] if where else None
