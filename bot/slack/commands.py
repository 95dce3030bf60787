"""Slash commands: ``/runbook <model>``, ``/alerts [review [window]]``, ``/slo status [model] [window] [chart]``
and ``/changes [model] [window]``.

Slack gives a command 3 seconds. A reply that needs only the configuration (usage errors,
runbooks, an unknown model, a bad window) goes back in the acknowledgement itself; one that
reads the database is acknowledged first and answered through the ``response_url`` from the
after-ack worker (:class:`bot.slack.after_ack.AfterAck`), so a slow query never turns into
Slack's "operation_timeout" and never holds up another request's ack. Every reply is
ephemeral: it answers the person who asked. The one thing posted for the channel is the chart
of ``/slo status <model> chart`` (a file is shared, not whispered), uploaded with the files API
(``files.getUploadURLExternal`` + ``files.completeUploadExternal``, through slack_sdk's
``files_upload_v2``) to the channel the command was run in; the person then gets an ephemeral
"posted" or the reason it could not be.

``/slo status`` shows seed 000's dashboard (:mod:`bot.slo.dashboard`): without a model one line
per model, worst first; with one, the table (metric, target, current, error budget left, burn
rate, compliance, status) in a code block, so its columns stay aligned, and a context line with
the window and how much of it has data. ``/alerts review`` shows the weekly review of
:mod:`bot.review` in a code block, cut into sections of at most 3,000 characters.

The reply builders are pure functions of the configuration and data, tested on their output.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError

from bot.changes.events import changes_text
from bot.config.durations import is_duration, window_title
from bot.config.loader import Config
from bot.errors import MissingExtra
from bot.notify.slack_blocks import alerts_list
from bot.notify.slack_text import escape_mrkdwn, mrkdwn_context
from bot.review.weekly import WEEK
from bot.slack import messages
from bot.slack.context import Listeners, SlackContext
from bot.slack.payloads import Asked, command_text, parse_command
from bot.slack.replies import MAX_SECTIONS, Reply, code_block, parse_window, respond, sections
from bot.slack.runbooks import runbook_reply
from bot.slack.slo_replies import SloRequest, model_window, parse_slo_args, slo_reply

log = logging.getLogger(__name__)

Listener = Callable[..., Awaitable[None]]


def register(app: AsyncApp, context: SlackContext) -> None:
    """Attach the four commands to ``app``."""
    commands = Commands(context)
    table: list[tuple[str, Listener]] = [
        ("/runbook", commands.runbook_command),
        ("/alerts", commands.alerts_command),
        ("/slo", commands.slo_command),
        ("/changes", commands.changes_command),
    ]
    for name, listener in table:
        app.command(name)(listener)


class Commands(Listeners):
    """``/runbook``, ``/alerts``, ``/slo`` and ``/changes``. The configuration is read per request:
    a reload applies at once."""

    # ------------------------------------------------------------------ listeners

    async def runbook_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        reply = runbook_reply(self._context.config(), command_text(command))
        await ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")

    async def alerts_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        request = parse_alerts_args(command_text(command))
        if isinstance(request, Reply):
            await ack(text=request.text, blocks=request.blocks, response_type="ephemeral")
            return
        await ack()
        asked = parse_command(command)
        if request.review:
            current = self._context.config()
            await self._after_ack.submit(lambda: self._review(current, request.window, asked.response_url))
        else:
            await self._after_ack.submit(lambda: self._alerts(asked.response_url))

    async def slo_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        current = self._context.config()
        request = parse_slo_args(current, command_text(command))
        if isinstance(request, Reply):
            await ack(text=request.text, blocks=request.blocks, response_type="ephemeral")
            return
        await ack()
        asked = parse_command(command)
        if request.chart and request.model is not None:
            model = request.model
            await self._after_ack.submit(lambda: self._chart(current, model, request.window, asked))
        else:
            await self._after_ack.submit(lambda: self._slo(current, request, asked.response_url))

    async def changes_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        request = parse_changes_args(self._context.config(), command_text(command))
        if isinstance(request, Reply):
            await ack(text=request.text, blocks=request.blocks, response_type="ephemeral")
            return
        await ack()
        asked = parse_command(command)
        await self._after_ack.submit(lambda: self._changes(request, asked.response_url))

    # ------------------------------------------------------------------ after the ack

    async def _answer(self, response_url: str, what: str, build: Callable[[], Awaitable[Reply]]) -> None:
        """Answer through the ``response_url`` with what ``build`` makes, or "try again" if it fails."""
        try:
            reply = await build()
        except Exception:
            log.exception("%s failed", what)
            reply = Reply(messages.TRY_AGAIN)
        await respond(self._after_ack, response_url, reply)

    async def _alerts(self, response_url: str) -> None:
        async def build() -> Reply:
            alerts = await self._after_ack.db(self._context.queries.active_alerts)
            return Reply(*alerts_list(alerts, now=self._context.clock.now()))

        await self._answer(response_url, "/alerts", build)

    async def _review(self, current: Config, window: timedelta, response_url: str) -> None:
        async def build() -> Reply:
            now = self._context.clock.now()
            return review_reply(await self._after_ack.db(self._context.queries.weekly_review, current, now, window))

        await self._answer(response_url, "/alerts review", build)

    async def _slo(self, current: Config, request: SloRequest, response_url: str) -> None:
        async def build() -> Reply:
            now, queries = self._context.clock.now(), self._context.queries
            boards = await self._after_ack.db(queries.slo_dashboards, current, now, request.window, model=request.model)
            return slo_reply(boards, model=request.model, window=request.window, now=now)

        await self._answer(response_url, "/slo status", build)

    async def _changes(self, request: ChangesRequest, response_url: str) -> None:
        async def build() -> Reply:
            now = self._context.clock.now()
            found = await self._after_ack.db(self._context.queries.changes, request.model, now - request.window, now)
            text = changes_text(found, now, model=request.model, window=request.window)
            return Reply(escape_mrkdwn(text.splitlines()[0]), sections(code_block(text))[:MAX_SECTIONS])

        await self._answer(response_url, "/changes", build)

    async def _chart(self, current: Config, model: str, window: timedelta | None, asked: Asked) -> None:
        """Render the PNG (database and matplotlib: on the DB executor) and share it in the channel
        the command was run in."""
        channel, user = asked.channel_id or "", asked.user
        if not channel:  # without a channel the file would be uploaded unshared: say so instead
            await respond(self._after_ack, asked.response_url, Reply(messages.slo_chart_failed("channel_not_found")))
            return
        try:
            now = self._context.clock.now()
            png = await self._after_ack.db(self._context.queries.slo_chart, current, model, now, window)
            span = window_title(window or model_window(current, model)).lower()
            await self._after_ack.client.files_upload_v2(
                channel=channel,
                file=png,
                filename=f"slo-error-budget-{model}.png",
                title=f"Error budget — {model} ({span})",
                initial_comment=messages.slo_chart_comment(model, span, user),
            )
            reply = Reply(messages.slo_chart_posted(model, channel))
        except SlackApiError as exc:
            detail = str(exc.response.get("error") or "unknown_error")
            log.warning("/slo status %s chart: Slack refused the upload to %s: %s", model, channel, detail)
            reply = Reply(messages.slo_chart_failed(detail))
        except MissingExtra as exc:
            log.warning("/slo status %s chart: %s", model, exc)
            reply = Reply(messages.SLO_CHART_UNAVAILABLE)
        except Exception:
            log.exception("/slo status %s chart failed", model)
            reply = Reply(messages.TRY_AGAIN)
        await respond(self._after_ack, asked.response_url, reply)


# --------------------------------------------------------------------------- /alerts


@dataclass(frozen=True)
class AlertsRequest:
    review: bool = False
    window: timedelta = WEEK


def parse_alerts_args(text: str) -> AlertsRequest | Reply:
    """``/alerts`` or ``/alerts review [window]``; anything else is a usage reply."""
    args = text.split()
    if not args:
        return AlertsRequest()
    if args[0].lower() != "review" or len(args) > 2:
        return Reply(messages.ALERTS_USAGE)
    if len(args) == 1:
        return AlertsRequest(review=True)
    window = parse_window(args[1], messages.ALERTS_USAGE)
    return window if isinstance(window, Reply) else AlertsRequest(review=True, window=window)


def review_reply(review: str) -> Reply:
    """The review text (its first line is its title) as a code block in sections of ≤ 3,000 characters."""
    title = review.splitlines()[0] if review else "Alert review"
    blocks = sections(code_block(review))
    if len(blocks) > MAX_SECTIONS:
        blocks = [*blocks[:MAX_SECTIONS], mrkdwn_context(messages.REVIEW_TRUNCATED)]
    return Reply(escape_mrkdwn(title), blocks)


# --------------------------------------------------------------------------- /changes


@dataclass(frozen=True)
class ChangesRequest:
    model: str | None = None
    window: timedelta = timedelta(hours=24)


def parse_changes_args(config: Config, text: str) -> ChangesRequest | Reply:
    """``/changes``, ``/changes <model>``, ``/changes [model] <window>``: a first word that is neither
    a model nor a window is a mistyped model (answered with the close names); more is a usage reply."""
    args = text.split()
    if len(args) > 2:
        return Reply(messages.CHANGES_USAGE)
    model = args.pop(0) if args and args[0] in config.models else None
    if model is None and args and (len(args) == 2 or not is_duration(args[0])):
        typed, known = args[0], list(config.models)
        close = difflib.get_close_matches(typed, known, n=3, cutoff=0.5)
        return Reply(messages.unknown_model(typed, close=close, known=known))
    if not args:
        return ChangesRequest(model)
    window = parse_window(args[0], messages.CHANGES_USAGE)
    return window if isinstance(window, Reply) else ChangesRequest(model, window)
