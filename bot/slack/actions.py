"""The incident message's buttons and menus: Acknowledge, Resolve, Runbook.

The root's buttons name the *incident* (``incident_acknowledge`` and friends, value the incident
id) and act on the whole of it through :meth:`AlertService.acknowledge_incident` /
:meth:`~AlertService.resolve_incident`; the overflow menu on an alert's section acts on that alert
alone (``acknowledge:<id>``, ``resolve:<id>``, ``runbook:<id>``). Buttons of messages posted before
incidents carry an alert id (``alert_acknowledge`` …) and still work. Under ``access: allow:
channel_members`` the channel checked is the incident's own (where its root lives), not whatever
channel the click payload claims.

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
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from bot.alerts.lifecycle import Alert
from bot.clock import Clock
from bot.config.loader import Config
from bot.config.schema import Access
from bot.errors import ActionRefused, ConcurrentChange
from bot.notify.slack_blocks import (
    ACKNOWLEDGE_ACTION,
    ALERT_MENU_ACTION,
    INCIDENT_ACKNOWLEDGE_ACTION,
    INCIDENT_RESOLVE_ACTION,
    INCIDENT_RUNBOOK_ACTION,
    RESOLVE_ACTION,
    RUNBOOK_ACTION,
    runbook_modal,
)
from bot.pending_actions import PendingAction, Subject, Verb
from bot.queries import Queries
from bot.service import AlertService
from bot.slack import messages
from bot.slack.after_ack import AfterAck
from bot.slack.commands import render_runbook

log = logging.getLogger(__name__)

ACKNOWLEDGE = ACKNOWLEDGE_ACTION
RESOLVE = RESOLVE_ACTION
RUNBOOK = RUNBOOK_ACTION

VERBS = {ACKNOWLEDGE: "acknowledge", RESOLVE: "resolve"}
INCIDENT_VERBS = {INCIDENT_ACKNOWLEDGE_ACTION: "acknowledge", INCIDENT_RESOLVE_ACTION: "resolve"}
MENU_VERBS = ("acknowledge", "resolve", "runbook")
DATABASE_PATIENCE = 10.0
"""How long a click waits for an unavailable database before it is kept for later
(:mod:`bot.pending_actions`) and the clicker told so."""

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


async def clicked(
    after_ack: AfterAck, click: Click, load: Callable[[int], T | None], *, subject: Subject, why: str
) -> tuple[int, T] | None:
    """Read the alert or incident a button names, or tell the person why not (a bad button value,
    a failed read, one that does not exist) and return ``None``."""
    target = alert_id_of(click.value)
    if target is None:
        await refuse(after_ack.client, click, messages.bad_button(click.value))
        return None
    try:
        found = await after_ack.db(load, target)
    except Exception:
        log.exception("reading %s %s for its %s failed", subject, target, why)
        await tell(after_ack.client, click, messages.TRY_AGAIN)
        return None
    if found is None:
        missing = messages.alert_not_found if subject == "alert" else messages.incident_not_found
        await refuse(after_ack.client, click, missing(target))
        return None
    return target, found


def parse_click(body: dict[str, Any]) -> Click:
    """Read a button click or an overflow menu choice (its value is the chosen option's); clicks
    from the App Home carry no channel."""
    action = body["actions"][0]
    channel = body.get("channel") or {}
    container = body.get("container") or {}
    chosen = action.get("selected_option")
    value = chosen.get("value", "") if isinstance(chosen, dict) else action.get("value", "")
    return Click(
        action_id=str(action.get("action_id", "")),
        value=str(value),
        user=str((body.get("user") or {}).get("id", "")),
        channel=channel.get("id") or container.get("channel_id"),
        trigger_id=body.get("trigger_id"),
        message_ts=container.get("message_ts"),
    )


def alert_id_of(value: str) -> int | None:
    """The alert (or incident) id a button carries (``str(alert.id)``), or None for anything else."""
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def menu_choice(value: str) -> tuple[str, int] | None:
    """``("resolve", 7)`` from an alert menu's ``resolve:7``, or None for anything else."""
    verb, _, rest = value.partition(":")
    alert_id = alert_id_of(rest)
    return (verb, alert_id) if verb in MENU_VERBS and alert_id is not None else None


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
    client: AsyncWebClient,
    access: Access,
    cache: MembershipCache,
    *,
    user: str,
    channel: str | None,
    verb: str,
    what: str = "alert",
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
            return None if user in users else messages.not_allowed_usergroup(verb, group, what=what)
        if channel is None:
            return messages.no_channel_to_check(verb, what=what)
        users = await cache.members(f"channel:{channel}", lambda: _channel_members(client, channel))
        return None if user in users else messages.not_allowed_channel(verb, channel, what=what)
    except SlackApiError as exc:
        log.warning("access check for %s failed: %s", user, exc.response.get("error"))
        return messages.access_check_failed(verb, str(exc.response.get("error", "error")), what=what)
    except Exception as exc:  # Slack unreachable: refuse rather than let anyone through
        log.warning("access check for %s failed", user, exc_info=True)
        return messages.access_check_failed(verb, type(exc).__name__, what=what)


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
    queries: Queries,
    config: Callable[[], Config],
    clock: Clock,
    after_ack: AfterAck,
    membership: MembershipCache | None = None,
) -> None:
    """Attach the button and menu handlers to ``app``; each only parses the click and acks."""
    cache = membership or MembershipCache()

    async def change_state(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = parse_click(body)
        await after_ack.submit(lambda: _change_alert(click, VERBS[click.action_id], alert_id_of(click.value)))

    async def change_incident(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = parse_click(body)
        await after_ack.submit(lambda: _change_incident(click))

    async def alert_menu(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = parse_click(body)
        await after_ack.submit(lambda: _alert_menu(click))

    async def _alert_menu(click: Click) -> None:
        choice = menu_choice(click.value)
        if choice is None:
            await refuse(after_ack.client, click, messages.bad_menu_choice(click.value))
            return
        verb, alert_id = choice
        if verb == "runbook":
            await _open_runbook(click, alert_id)
        else:
            await _change_alert(click, verb, alert_id)

    async def _channel_to_check(click: Click, find: Callable[[int], str | None], subject: int) -> str | None:
        """The channel ``access: channel_members`` checks: where the incident's root lives (from the
        database), never the channel the click names: that is the clicker's word, and a non-member
        could act by clicking a copy in a channel of his own. No message yet: ``None``, refused."""
        if config().access.allow != "channel_members":
            return None
        return await after_ack.db(find, subject)

    async def _change_alert(click: Click, verb: str, alert_id: int | None) -> None:
        client = after_ack.client
        if alert_id is None:
            await refuse(client, click, messages.bad_button(click.value))
            return
        try:
            channel = await _channel_to_check(click, queries.alert_channel, alert_id)
        except Exception:
            log.exception("finding the channel of alert %s failed", alert_id)
            await tell(client, click, messages.TRY_AGAIN)
            return
        refusal = await access_refusal(client, config().access, cache, user=click.user, channel=channel, verb=verb)
        if refusal is not None:
            await refuse(client, click, refusal)
            return
        await _apply(click, "alert", alert_id, "acknowledge" if verb == "acknowledge" else "resolve")

    async def _change_incident(click: Click) -> None:
        client = after_ack.client
        verb = INCIDENT_VERBS[click.action_id]
        incident_id = alert_id_of(click.value)
        if incident_id is None:
            await refuse(client, click, messages.bad_button(click.value))
            return
        try:
            channel = await _channel_to_check(click, queries.incident_channel, incident_id)
        except Exception:
            log.exception("finding the channel of incident %s failed", incident_id)
            await tell(client, click, messages.TRY_AGAIN)
            return
        access = config().access
        refusal = await access_refusal(
            client, access, cache, user=click.user, channel=channel, verb=verb, what="incident"
        )
        if refusal is not None:
            await refuse(client, click, refusal)
            return
        await _apply(click, "incident", incident_id, "acknowledge" if verb == "acknowledge" else "resolve")

    async def _apply(click: Click, subject: Subject, target: int, verb: Verb) -> None:
        """Apply the click through the service, or say why not. The loser of two clicks at once is
        refused with what happened ("Already acknowledged by …"); a click the database cannot take
        within :data:`DATABASE_PATIENCE` is kept and applied when it is back (never dropped)."""
        client = after_ack.client
        clicked_at = clock.now()
        try:  # done, the service logs the change ("alert 7 acknowledged … by U…"): the click's one line
            await patiently(
                lambda: after_ack.db(service.apply, subject, target, verb, actor=click.user),
                what=f"{verb} {subject} {target}",
            )
        except ActionRefused as exc:
            await refuse(client, click, messages.refused(str(exc)))
        except LookupError:
            missing = messages.alert_not_found if subject == "alert" else messages.incident_not_found
            await refuse(client, click, missing(target))
        except ConcurrentChange:
            changing = messages.KEEPS_CHANGING if subject == "alert" else messages.INCIDENT_KEEPS_CHANGING
            await refuse(client, click, changing)
        except SQLAlchemyError:
            kept = PendingAction(subject, target, verb, click.user, clicked_at)
            try:
                await after_ack.db(service.keep_for_later, kept)
            except OSError:
                log.exception("keeping the %s failed", kept.describe())
                await tell(client, click, messages.TRY_AGAIN)
                return
            await tell(client, click, messages.kept_for_later(verb, f"{subject} {target}"))
        except Exception:
            log.exception("%s of %s %s by %s failed", verb, subject, target, click.user)
            await tell(client, click, messages.TRY_AGAIN)

    async def open_runbook(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = parse_click(body)
        await after_ack.submit(lambda: _open_runbook(click, alert_id_of(click.value)))

    async def open_incident_runbook(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = parse_click(body)
        await after_ack.submit(lambda: _open_incident_runbook(click))

    async def _open_incident_runbook(click: Click) -> None:
        found = await clicked(after_ack, click, queries.incident_lead, subject="incident", why="runbook")
        if found is not None:
            await _show_runbook(click, found[1][1], what=f"incident {found[0]}")

    async def _open_runbook(click: Click, alert_id: int | None) -> None:
        if alert_id is None:
            await refuse(after_ack.client, click, messages.bad_button(click.value))
            return
        found = await clicked(
            after_ack, replace(click, value=str(alert_id)), queries.alert, subject="alert", why="runbook"
        )
        if found is not None:
            await _show_runbook(click, found[1], what=f"alert {found[0]}")

    async def _show_runbook(click: Click, alert: Alert, *, what: str) -> None:
        client = after_ack.client
        text = render_runbook(config(), alert.model, rule=alert.rule)
        if text is None:
            await refuse(client, click, messages.no_runbook(alert.model))
            return
        try:  # the trigger_id expires 3 s after the click: nothing slow may come before this call
            await client.views_open(trigger_id=click.trigger_id, view=runbook_modal(alert.model, text))
        except Exception:
            log.warning("views.open for the runbook of %s failed", what, exc_info=True)
            await tell(client, click, messages.TRY_AGAIN)
            return
        log.info("runbook of %s (%s) opened for %s", what, alert.model, click.user)

    app.action(ACKNOWLEDGE)(change_state)
    app.action(RESOLVE)(change_state)
    app.action(RUNBOOK)(open_runbook)
    app.action(INCIDENT_ACKNOWLEDGE_ACTION)(change_incident)
    app.action(INCIDENT_RESOLVE_ACTION)(change_incident)
    app.action(INCIDENT_RUNBOOK_ACTION)(open_incident_runbook)
    app.action(ALERT_MENU_ACTION)(alert_menu)
