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

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from sqlalchemy.exc import SQLAlchemyError

from bot.alerts.lifecycle import Alert
from bot.errors import ActionRefused, ConcurrentChange
from bot.notify.slack_blocks import (
    ACKNOWLEDGE_ACTION,
    ALERT_MENU_ACTION,
    INCIDENT_ACKNOWLEDGE_ACTION,
    INCIDENT_RELEASE_ACTION,
    INCIDENT_RESOLVE_ACTION,
    INCIDENT_RUNBOOK_ACTION,
    INCIDENT_STILL_ON_IT_ACTION,
    RESOLVE_ACTION,
    RUNBOOK_ACTION,
    runbook_modal,
)
from bot.notify.slack_links import LINK_ACTION
from bot.pending_actions import PendingAction, Subject, Verb
from bot.slack import messages
from bot.slack.access import access_refusal
from bot.slack.clicks import clicked, patiently, refuse, tell
from bot.slack.context import Listeners, SlackContext
from bot.slack.payloads import Click, alert_id_of, menu_choice
from bot.slack.resolution_notes import ResolutionNotes
from bot.slack.runbooks import render_runbook

log = logging.getLogger(__name__)

ACKNOWLEDGE = ACKNOWLEDGE_ACTION
RESOLVE = RESOLVE_ACTION
RUNBOOK = RUNBOOK_ACTION

VERBS = {ACKNOWLEDGE: "acknowledge", RESOLVE: "resolve"}
INCIDENT_VERBS: dict[str, Verb] = {
    INCIDENT_ACKNOWLEDGE_ACTION: "acknowledge",
    INCIDENT_RESOLVE_ACTION: "resolve",
    INCIDENT_STILL_ON_IT_ACTION: "still_on_it",
    INCIDENT_RELEASE_ACTION: "release",
}

Listener = Callable[..., Awaitable[None]]


def register(app: AsyncApp, context: SlackContext) -> None:
    """Attach the button and menu listeners to ``app``; each only parses the click and acks."""
    buttons = AlertButtons(context)
    table: list[tuple[str | re.Pattern[str], Listener]] = [
        (ACKNOWLEDGE, buttons.change_state),
        (RESOLVE, buttons.change_state),
        (RUNBOOK, buttons.open_runbook),
        (INCIDENT_ACKNOWLEDGE_ACTION, buttons.change_incident),
        (INCIDENT_RESOLVE_ACTION, buttons.change_incident),
        (INCIDENT_STILL_ON_IT_ACTION, buttons.change_incident),
        (INCIDENT_RELEASE_ACTION, buttons.change_incident),
        (INCIDENT_RUNBOOK_ACTION, buttons.open_incident_runbook),
        (ALERT_MENU_ACTION, buttons.alert_menu),
        (re.compile(f"^{re.escape(LINK_ACTION)}_"), open_link),
    ]
    for action_id, listener in table:
        app.action(action_id)(listener)


async def open_link(ack: AsyncAck) -> None:
    """A link button (a dashboard) opens in the browser; Slack still sends the click, which
    needs only its acknowledgement (unanswered, Slack marks the button with a warning)."""
    await ack()


class AlertButtons(Listeners):
    """Acknowledge, Resolve and Runbook: the incident root's buttons, the alert menus, and the
    per-alert buttons of messages posted before incidents."""

    # ------------------------------------------------------------------ listeners

    async def change_state(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await self._hand_over(ack, body, lambda c: self._change_alert(c, VERBS[c.action_id], alert_id_of(c.value)))

    async def change_incident(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await self._hand_over(ack, body, self._change_incident)

    async def alert_menu(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await self._hand_over(ack, body, self._alert_menu)

    async def open_runbook(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await self._hand_over(ack, body, lambda c: self._open_runbook(c, alert_id_of(c.value)))

    async def open_incident_runbook(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await self._hand_over(ack, body, self._open_incident_runbook)

    # ------------------------------------------------------------------ after the ack

    async def _alert_menu(self, click: Click) -> None:
        choice = menu_choice(click.value)
        if choice is None:
            await refuse(self._after_ack.client, click, messages.bad_menu_choice(click.value))
            return
        verb, alert_id = choice
        if verb == "runbook":
            await self._open_runbook(click, alert_id)
        else:
            await self._change_alert(click, verb, alert_id)

    async def _channel_to_check(self, find: Callable[[int], str | None], subject: int) -> str | None:
        """The channel ``access: channel_members`` checks: where the incident's root lives (from the
        database), never the channel the click names: that is the clicker's word, and a non-member
        could act by clicking a copy in a channel of his own. No message yet: ``None``, refused."""
        if self._context.config().access.allow != "channel_members":
            return None
        return await self._after_ack.read(find, subject)

    async def _allowed(
        self, click: Click, find: Callable[[int], str | None], target: int, *, verb: str, what: Subject
    ) -> bool:
        """Whether the clicker may ``verb`` the alert or incident ``target``; if not, they are told why."""
        client = self._after_ack.client
        try:
            channel = await self._channel_to_check(find, target)
        except Exception:
            log.exception("finding the channel of %s %s failed", what, target)
            await tell(client, click, messages.TRY_AGAIN)
            return False
        access, cache = self._context.config().access, self._context.membership
        refusal = await access_refusal(client, access, cache, user=click.user, channel=channel, verb=verb, what=what)
        if refusal is not None:
            await refuse(client, click, refusal)
            return False
        return True

    async def _change_alert(self, click: Click, verb: str, alert_id: int | None) -> None:
        if alert_id is None:
            await refuse(self._after_ack.client, click, messages.bad_button(click.value))
            return
        if await self._allowed(click, self._context.queries.alert_channel, alert_id, verb=verb, what="alert"):
            await self._apply(click, "alert", alert_id, "acknowledge" if verb == "acknowledge" else "resolve")

    async def _change_incident(self, click: Click) -> None:
        verb = INCIDENT_VERBS[click.action_id]
        incident_id = alert_id_of(click.value)
        if incident_id is None:
            await refuse(self._after_ack.client, click, messages.bad_button(click.value))
            return
        find = self._context.queries.incident_channel
        if not await self._allowed(click, find, incident_id, verb=verb.replace("_", " "), what="incident"):
            return
        if verb == "resolve" and await self._asks_for_note(click, incident_id):
            return
        await self._apply(click, "incident", incident_id, verb)

    async def _asks_for_note(self, click: Click, incident_id: int) -> bool:
        """Resolve of an open incident whose severity is in ``settings.resolution_note_required``
        opens the note modal, whose submission resolves (:mod:`bot.slack.resolution_notes`); so does
        Resolve of a declared incident, with the note optional (its room writes the postmortem)."""
        required = self._context.config().settings.resolution_note_required
        try:
            incident = await self._after_ack.read(self._context.queries.incident, incident_id)
        except Exception:
            if not required:  # the resolve goes on, kept for later if the database is away
                return False
            log.exception("reading incident %s for its resolution note failed", incident_id)
            await tell(self._after_ack.client, click, messages.TRY_AGAIN)
            return True
        if incident is None or not incident.state.is_open:
            return False
        needed = incident.severity in required
        if not needed and incident.declared_at is None:
            return False
        await ResolutionNotes(self._context).open_for_resolve(click, incident, required=needed)
        return True

    async def _apply(self, click: Click, subject: Subject, target: int, verb: Verb) -> None:
        """Apply the click through the service, or say why not. The loser of two clicks at once is
        refused with what happened ("Already acknowledged by …"); a click the database cannot take
        within :data:`~bot.slack.clicks.DATABASE_PATIENCE` is kept and applied when it is back (never dropped)."""
        client, after_ack, service = self._after_ack.client, self._after_ack, self._context.service
        clicked_at = self._context.clock.now()
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

    async def _open_incident_runbook(self, click: Click) -> None:
        lead = self._context.queries.incident_lead
        found = await clicked(self._after_ack, click, lead, subject="incident", why="runbook")
        if found is not None:
            await self._show_runbook(click, found[1][1], what=f"incident {found[0]}")

    async def _open_runbook(self, click: Click, alert_id: int | None) -> None:
        if alert_id is None:
            await refuse(self._after_ack.client, click, messages.bad_button(click.value))
            return
        named = replace(click, value=str(alert_id))
        found = await clicked(self._after_ack, named, self._context.queries.alert, subject="alert", why="runbook")
        if found is not None:
            await self._show_runbook(click, found[1], what=f"alert {found[0]}")

    async def _show_runbook(self, click: Click, alert: Alert, *, what: str) -> None:
        client = self._after_ack.client
        text = render_runbook(self._context.config(), alert.model, rule=alert.rule)
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
