"""The Silence 1h buttons: the incident root's (``incident_silence``) and, on messages posted
before incidents, the per-alert one (``alert_silence``).

The incident's button mutes what the incident groups: its ``group_by`` labels (the model, by
default), or a storm's rule; the per-alert button mutes its rule on its model. Who may click
follows the ``access:`` policy of Acknowledge and Resolve, checked against the channel the
message lives in. The silence is noted in the message's thread through the outbox (retried,
sent once, after the root it answers).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck

from bot.alerts.lifecycle import Alert
from bot.incidents.incident import Incident
from bot.notify.notifier import ThreadNote
from bot.notify.slack_replies import named
from bot.silences.silence import Silence
from bot.slack import messages
from bot.slack.access import access_refusal
from bot.slack.clicks import clicked, patiently, refuse, tell
from bot.slack.context import Listeners
from bot.slack.payloads import Click
from bot.slack.silence_args import BUTTON_DURATION, VERB
from bot.slack.silence_replies import already_silenced_reply, button_reply, thread_reply

log = logging.getLogger(__name__)


class SilenceButtons(Listeners):
    """An hour's silence of what the clicked incident (or alert) is about."""

    async def alert_button(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await self._hand_over(ack, body, self._silence_alert)

    async def incident_button(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await self._hand_over(ack, body, self._silence_incident)

    def _wanted(self, rule: str | None, model: str | None, click: Click, *, what: str) -> Silence:
        """An hour's silence of ``rule`` on ``model`` by the clicker, its reason naming the button."""
        now = self._context.clock.now()
        reason = f"Silence 1h button on {what}"
        return Silence(
            rule=rule, model=model, starts_at=now, ends_at=now + BUTTON_DURATION, created_by=click.user, reason=reason
        )

    async def _silence_alert(self, click: Click) -> None:
        load = self._context.queries.alert_and_message
        found = await clicked(self._after_ack, click, load, subject="alert", why="silence")
        if found is None:
            return
        alert_id, (alert, where, grouped) = found
        wanted = self._wanted(alert.rule, alert.model, click, what=f"alert #{alert_id}")
        note = named(alert, thread_reply(click.user)) if grouped else thread_reply(click.user)
        await self._silence(click, wanted, where, note, what=f"alert {alert_id}", alert_id=alert_id)

    async def _silence_incident(self, click: Click) -> None:
        load = self._context.queries.incident_and_lead
        found = await clicked(self._after_ack, click, load, subject="incident", why="silence")
        if found is None:
            return
        incident_id, (incident, where, lead) = found
        rule, model = incident_target(incident, lead)
        wanted = self._wanted(rule, model, click, what=f"incident #{incident_id}")
        note = thread_reply(click.user)
        await self._silence(click, wanted, where, note, what=f"incident {incident_id}", incident_id=incident_id)

    async def _silence(
        self,
        click: Click,
        wanted: Silence,
        where: tuple[str, str] | None,
        note: str,
        *,
        what: str,
        alert_id: int | None = None,
        incident_id: int | None = None,
    ) -> None:
        """Silence, and note it in the message's thread through the outbox (retried, sent once,
        after the root it answers): the message's own location, else the clicked one."""
        client, after_ack, queries = self._after_ack.client, self._after_ack, self._context.queries
        channel = where[0] if where else None  # the message's own channel, never the one the click names
        access, cache = self._context.config().access, self._context.membership
        refusal = await access_refusal(client, access, cache, user=click.user, channel=channel, verb=VERB)
        if refusal is not None:
            await refuse(client, click, refusal)
            return
        try:
            covering = await after_ack.read(queries.covering_silence, wanted)
            if covering is not None:  # a second click (or a colleague's) adds nothing
                await refuse(client, click, already_silenced_reply(covering))
                return
            thread = where or ((click.channel, click.message_ts) if click.channel and click.message_ts else None)
            said = ThreadNote(*thread, note, incident_id=incident_id, alert_id=alert_id) if thread else None
            silence = await patiently(
                lambda: after_ack.db(self._context.service.silence, wanted, note=said), what=f"silence {what}"
            )
        except Exception:
            log.exception("silencing %s for %s failed", what, click.user)
            await tell(client, click, messages.TRY_AGAIN)
            return
        log.info("silence #%s of %s by %s (button on %s)", silence.id, silence.describe(), click.user, what)
        await tell(client, click, button_reply(silence))


def incident_target(incident: Incident, lead: Alert) -> tuple[str | None, str | None]:
    """What the incident's Silence button mutes: ``(rule, model)`` from its group labels (a storm:
    its rule), else -- an incident grouped by nothing -- its lead alert's rule on its model."""
    rule = incident.storm_rule or incident.labels.get("rule")
    model = None if incident.storm_rule else incident.labels.get("model")
    return (rule, model) if rule or model else (lead.rule, lead.model)
