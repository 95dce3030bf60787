"""Silences from Slack: the ``/silence`` command and the alert message's ``Silence 1h`` button.

``/silence <rule|model|rule:model> <duration> [reason]`` mutes a rule, a model or one rule on one
model; ``/silence list`` shows the active silences with their ids; ``/silence end <id>`` ends one
early. A silenced alert is still recorded (and listed by ``/alerts``) but notifies nobody; when
the silence ends, an alert that is still firing is announced once
(:meth:`bot.service.AlertService.release_unmuted`, run by the scheduler every few seconds).

The arguments are parsed against the configuration inside the acknowledgement, so a typo is
answered at once (usage, close matches, a bad duration); the silence itself is written by the
after-ack worker (:class:`bot.slack.after_ack.AfterAck`) and confirmed through the
``response_url``. Every reply is ephemeral.

The incident root's ``Silence 1h`` button (``incident_silence``, value the incident id) mutes what
the incident groups: its ``group_by`` labels (the model, by default), or a storm's rule; a message
posted before incidents has a per-alert button that mutes its rule on its model.

Who may silence follows the ``access:`` policy of Acknowledge and Resolve. A button checks the
incident's channel, as they do. A command has no alert: under ``channel_members`` it must be run in
a channel the target's alerts are posted to, by a member of that channel -- otherwise anyone could
run it from a channel of their own (or a DM with the bot) and mute someone else's alerts.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.config.loader import Config
from bot.notify.slack_blocks import INCIDENT_SILENCE_ACTION, SILENCE_ACTION
from bot.silences.silence import Silence
from bot.slack import messages
from bot.slack.access import access_refusal
from bot.slack.after_ack import AfterAck
from bot.slack.clicks import patiently
from bot.slack.context import Listeners, SlackContext
from bot.slack.payloads import Asked, command_text, parse_command
from bot.slack.silence_args import (
    COMMAND,
    VERB,
    EndRequest,
    ListRequest,
    Request,
    SilenceRequest,
    parse_silence_args,
    target_channels,
)
from bot.slack.silence_buttons import SilenceButtons
from bot.slack.silence_replies import ended_reply, list_reply, not_found_reply, silenced_reply, wrong_channel_reply

log = logging.getLogger(__name__)


def register(app: AsyncApp, context: SlackContext) -> None:
    """Attach ``/silence`` and the ``Silence 1h`` buttons to ``app``."""
    buttons = SilenceButtons(context)
    app.command(COMMAND)(SilenceCommand(context).listener)
    app.action(SILENCE_ACTION)(buttons.alert_button)
    app.action(INCIDENT_SILENCE_ACTION)(buttons.incident_button)


class SilenceCommand(Listeners):
    """``/silence``: parsed in the acknowledgement, done by the after-ack worker, answered
    through the ``response_url``."""

    async def listener(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        current = self._context.config()
        request = parse_silence_args(current, command_text(command))
        if isinstance(request, str):
            await ack(text=request, response_type="ephemeral")
            return
        await ack()
        asked = parse_command(command)
        await self._after_ack.submit(lambda: self._command(current, request, asked))

    async def _command(self, current: Config, request: Request, asked: Asked) -> None:
        try:
            if isinstance(request, ListRequest):
                now = self._context.clock.now()
                text = list_reply(await self._after_ack.read(self._context.queries.active_silences, now), now=now)
            elif isinstance(request, EndRequest):
                text = await self._end(current, request, asked)
            else:
                text = await self._add(current, request, asked)
        except Exception:
            log.exception("/silence failed for %s", asked.user)
            text = messages.TRY_AGAIN
        await _respond(self._after_ack, asked.response_url, text)

    async def _add(self, current: Config, request: SilenceRequest, asked: Asked) -> str:
        target = request.target
        refusal = await self._refusal(current, asked, target.rule, target.model)
        if refusal is not None:
            return refusal
        now = self._context.clock.now()
        wanted = Silence(
            rule=target.rule,
            model=target.model,
            starts_at=now,
            ends_at=now + request.duration,
            created_by=asked.user,
            reason=request.reason,
        )
        service = self._context.service
        silence = await patiently(lambda: self._after_ack.db(service.silence, wanted), what=f"/silence by {asked.user}")
        log.info("silence #%s of %s by %s until %s", silence.id, silence.describe(), asked.user, silence.ends_at)
        return silenced_reply(silence, note=target.note)

    async def _end(self, current: Config, request: EndRequest, asked: Asked) -> str:
        active = await self._after_ack.read(self._context.queries.active_silences, self._context.clock.now())
        found = next((s for s in active if s.id == request.silence_id), None)
        if found is None:
            return not_found_reply(request.silence_id)
        refusal = await self._refusal(current, asked, found.rule, found.model)
        if refusal is not None:
            return refusal
        unsilence = self._context.service.unsilence
        ended = await patiently(
            lambda: self._after_ack.db(unsilence, request.silence_id), what=f"/silence end by {asked.user}"
        )
        if not ended:  # it expired, or someone else ended it, since we looked
            return not_found_reply(request.silence_id)
        log.info("silence #%s of %s ended early by %s", found.id, found.describe(), asked.user)
        return ended_reply(found)

    async def _refusal(self, current: Config, asked: Asked, rule: str | None, model: str | None) -> str | None:
        access = current.access
        if access.allow == "channel_members":
            channels = target_channels(current, rule, model)
            here = {asked.channel_id, f"#{asked.channel_name}" if asked.channel_name else None} - {None}
            if not here & channels:
                log.info("/silence by %s refused: run outside the alerts' channels %s", asked.user, channels)
                return wrong_channel_reply(channels)
        cache = self._context.membership
        return await access_refusal(
            self._after_ack.client, access, cache, user=asked.user, channel=asked.channel_id, verb=VERB
        )


async def _respond(after_ack: AfterAck, response_url: str, text: str) -> None:
    try:
        await after_ack.respond(response_url, {"text": text, "response_type": "ephemeral", "replace_original": False})
    except Exception:  # an expired response_url or a Slack outage: the person runs the command again
        log.warning("could not answer /silence through its response_url", exc_info=True)
