"""What every button listener does around its own work: read what was clicked, wait out a
database restart, and tell the clicker privately when nothing changed.

Shared by :mod:`bot.slack.actions` and :mod:`bot.slack.silence_buttons`, so a refused click
reads (and logs, one line per click) the same whichever button it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.pending_actions import Subject
from bot.slack import messages
from bot.slack.after_ack import AfterAck
from bot.slack.payloads import Click, alert_id_of

log = logging.getLogger(__name__)

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
        found = await after_ack.db(load, target)  # an incident's lead reads all its alerts: a storm's thousands
    except Exception:
        log.exception("reading %s %s for its %s failed", subject, target, why)
        await tell(after_ack.client, click, messages.TRY_AGAIN)
        return None
    if found is None:
        missing = messages.alert_not_found if subject == "alert" else messages.incident_not_found
        await refuse(after_ack.client, click, missing(target))
        return None
    return target, found


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
