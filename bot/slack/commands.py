"""Slash commands: ``/runbook <model>``, ``/alerts [review [window]]`` and ``/slo status [model] [window] [chart]``.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError

from bot.clock import Clock
from bot.config import choices
from bot.config.durations import humanize, parse_duration, window_title
from bot.config.loader import Config
from bot.errors import MissingExtra
from bot.notify.slack_blocks import alerts_list, escape_mrkdwn, markdown_to_mrkdwn, slack_date, split_sections
from bot.queries import Queries
from bot.review.weekly import WEEK
from bot.slack import messages
from bot.slack.after_ack import AfterAck
from bot.slo.dashboard import ModelDashboard, overall_text, render_overview, render_table
from bot.slo.service import specs_of

log = logging.getLogger(__name__)

SECTION_LIMIT = 3000
"""Slack's limit on a section block's text."""
MAX_SECTIONS = 45
"""Stay under the 50 blocks of a message, leaving room for a header and a note."""
MAX_WINDOW = timedelta(days=90)
"""The longest window ``/slo status`` and ``/alerts review`` read: beyond it a command would
scan months of samples while Slack waits, and nobody keeps SLOs over a quarter in chat."""
MIN_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Reply:
    """An ephemeral answer: a plain-text fallback and optional blocks."""

    text: str
    blocks: list[dict[str, Any]] | None = None


def register(
    app: AsyncApp, *, queries: Queries, config: Callable[[], Config], clock: Clock, after_ack: AfterAck
) -> None:
    """Attach the three commands to ``app``. ``config`` is called per request, so a reload applies at once."""

    async def runbook_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        reply = runbook_reply(config(), command.get("text") or "")
        await ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")

    async def alerts_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        request = parse_alerts_args(command.get("text") or "")
        if isinstance(request, Reply):
            await ack(text=request.text, blocks=request.blocks, response_type="ephemeral")
            return
        await ack()
        response_url = str(command.get("response_url") or "")
        if request.review:
            current = config()
            await after_ack.submit(lambda: _review(current, request.window, response_url))
        else:
            await after_ack.submit(lambda: _alerts(response_url))

    async def _alerts(response_url: str) -> None:
        try:
            alerts = await after_ack.db(queries.active_alerts)
            text, blocks = alerts_list(alerts, now=clock.now())
            reply = Reply(text, blocks)
        except Exception:
            log.exception("/alerts failed")
            reply = Reply(messages.TRY_AGAIN)
        await _respond(after_ack, response_url, reply)

    async def _review(current: Config, window: timedelta, response_url: str) -> None:
        try:
            review = await after_ack.db(queries.weekly_review, current, clock.now(), window)
            reply = review_reply(review)
        except Exception:
            log.exception("/alerts review failed")
            reply = Reply(messages.TRY_AGAIN)
        await _respond(after_ack, response_url, reply)

    async def slo_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        current = config()
        request = parse_slo_args(current, command.get("text") or "")
        if isinstance(request, Reply):
            await ack(text=request.text, blocks=request.blocks, response_type="ephemeral")
            return
        await ack()
        response_url = str(command.get("response_url") or "")
        if request.chart and request.model is not None:
            channel, user = str(command.get("channel_id") or ""), str(command.get("user_id") or "")
            model = request.model
            await after_ack.submit(lambda: _chart(current, model, request.window, channel, user, response_url))
        else:
            await after_ack.submit(lambda: _slo(current, request, response_url))

    async def _slo(current: Config, request: SloRequest, response_url: str) -> None:
        try:
            now = clock.now()
            boards = await after_ack.db(queries.slo_dashboards, current, now, request.window, model=request.model)
            reply = slo_reply(boards, model=request.model, window=request.window, now=now)
        except Exception:
            log.exception("/slo status failed")
            reply = Reply(messages.TRY_AGAIN)
        await _respond(after_ack, response_url, reply)

    async def _chart(
        current: Config, model: str, window: timedelta | None, channel: str, user: str, response_url: str
    ) -> None:
        """Render the PNG (database and matplotlib: on the DB executor) and share it in ``channel``."""
        if not channel:  # without a channel the file would be uploaded unshared: say so instead
            await _respond(after_ack, response_url, Reply(messages.slo_chart_failed("channel_not_found")))
            return
        try:
            png = await after_ack.db(queries.slo_chart, current, model, clock.now(), window)
            span = window_title(window or _model_window(current, model)).lower()
            await after_ack.client.files_upload_v2(
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
        await _respond(after_ack, response_url, reply)

    app.command("/runbook")(runbook_command)
    app.command("/alerts")(alerts_command)
    app.command("/slo")(slo_command)


async def _respond(after_ack: AfterAck, response_url: str, reply: Reply) -> None:
    message: dict[str, Any] = {"text": reply.text, "response_type": "ephemeral", "replace_original": False}
    if reply.blocks is not None:
        message["blocks"] = reply.blocks
    try:
        await after_ack.respond(response_url, message)
    except Exception:  # an expired response_url or a Slack outage: the person retries the command
        log.warning("could not answer a slash command through its response_url", exc_info=True)


def parse_window(arg: str, usage: str) -> timedelta | Reply:
    """A window argument (``7d``, ``24h``, ``1h30m``) between :data:`MIN_WINDOW` and
    :data:`MAX_WINDOW`, else a reply saying how to write one."""
    try:
        window = parse_duration(arg)
    except ValueError:
        return Reply(messages.bad_window(arg, usage=usage))
    if window < MIN_WINDOW:
        return Reply(messages.bad_window(arg, usage=usage, reason="a window is at least `1m`, e.g. `24h` or `7d`"))
    if window > MAX_WINDOW:
        return Reply(messages.bad_window(arg, usage=usage, reason="a window is at most `90d`, e.g. `30d`"))
    return window


def _sections(mrkdwn: str) -> list[dict[str, Any]]:
    """Section blocks of at most 3,000 characters (a code block cut in two is closed and reopened)."""
    chunks = split_sections(mrkdwn, SECTION_LIMIT)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": chunk}} for chunk in chunks]


def code_block(plain: str) -> str:
    """Plain text as a mrkdwn code block; ``& < >`` escaped, as Slack asks even inside code."""
    return f"```\n{escape_mrkdwn(plain)}\n```"


def _context(mrkdwn: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn}]}


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
    blocks = _sections(code_block(review))
    if len(blocks) > MAX_SECTIONS:
        blocks = [*blocks[:MAX_SECTIONS], _context(messages.REVIEW_TRUNCATED)]
    return Reply(escape_mrkdwn(title), blocks)


# --------------------------------------------------------------------------- /runbook


def render_runbook(config: Config, model: str, *, rule: str | None = None) -> str | None:
    """The runbook text for ``model``, its ``{fields}`` filled from the model's settings.

    With ``rule`` (an alert's Runbook button), the rule's own runbook wins: it is written for
    that problem; otherwise the model's ``runbook:``, then ``runbooks/default.md``.
    """
    runbook = choices.alert_runbook(config, model, rule)
    if runbook is None:
        return None
    known = config.models.get(model)
    values: dict[str, object] = dict(known.settings) if known else {}
    values["model"] = model
    return runbook.render(values)


def runbook_reply(config: Config, text: str) -> Reply:
    """``/runbook <model>``: usage, a close-match error, or the model's rendered runbook."""
    args = text.split()
    if len(args) != 1:
        return Reply(messages.RUNBOOK_USAGE)
    model = resolve_model(config, args[0])
    if model is None:
        return Reply(_unknown_model(config, args[0]))
    rendered = render_runbook(config, model)
    if rendered is None:
        return Reply(messages.no_runbook(model))
    return Reply(f"Runbook for {model}", runbook_blocks(model, rendered))


def runbook_blocks(model: str, markdown: str) -> list[dict[str, Any]]:
    """The runbook as mrkdwn section blocks of at most 3,000 characters, cut at line ends."""
    chunks = split_sections(markdown_to_mrkdwn(markdown), SECTION_LIMIT) or ["_This runbook is empty._"]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": chunk}} for chunk in chunks[:MAX_SECTIONS]
    ]
    if len(chunks) > MAX_SECTIONS:
        note = {"type": "mrkdwn", "text": messages.runbook_truncated(model)}
        blocks.append({"type": "context", "elements": [note]})
    return blocks


def resolve_model(config: Config, name: str) -> str | None:
    """The configured model ``name`` means: exact, else the one model equal ignoring case."""
    if name in config.models:
        return name
    folded = [m for m in config.models if m.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def _unknown_model(config: Config, name: str) -> str:
    close = difflib.get_close_matches(name, list(config.models), n=3, cutoff=0.6)
    return messages.unknown_model(name, close=close, known=config.models)


# --------------------------------------------------------------------------- /slo status


CHART = "chart"


@dataclass(frozen=True)
class SloRequest:
    model: str | None
    window: timedelta | None
    chart: bool = False


def _models_with_slos(config: Config) -> list[str]:
    return sorted({slo.model for slo in config.slos})


def _model_window(config: Config, model: str) -> timedelta:
    """The longest window among ``model``'s SLOs (the chart's span when no window is given)."""
    return max((spec.window for spec in specs_of(config, model=model)), default=WEEK)


def parse_slo_args(config: Config, text: str) -> SloRequest | Reply:
    """``status [model] [window] [chart]`` in any order after ``status``; every mistake gets a
    reply naming it: an unknown model (with close matches), a model without SLOs, a bad window
    (with an example), ``chart`` without a model, or the usage."""
    args = text.split()
    if not args or args[0].lower() != "status" or len(args) > 4:
        return Reply(messages.SLO_USAGE)
    model: str | None = None
    window: timedelta | None = None
    chart = False
    for arg in args[1:]:
        if arg.lower() == CHART and not chart and _resolve_slo_model(config, arg) is None:
            chart = True
        elif model is None and not arg[:1].isdigit():
            model = arg
        elif window is None:
            parsed = parse_window(arg, messages.SLO_USAGE)
            if isinstance(parsed, Reply):
                return parsed
            window = parsed
        else:
            return Reply(messages.SLO_USAGE)
    with_slos = _models_with_slos(config)
    if not with_slos:
        return Reply(messages.SLO_NONE_CONFIGURED)
    if model is not None:
        resolved = _resolve_slo_model(config, model)
        if resolved is None:
            known = sorted({*config.models, *with_slos})
            close = difflib.get_close_matches(model, known, n=3, cutoff=0.6)
            return Reply(messages.unknown_model(model, close=close, known=known))
        if resolved not in with_slos:
            return Reply(messages.no_slos_for(resolved, with_slos=with_slos))
        model = resolved
    if chart and model is None:
        return Reply(messages.slo_chart_needs_model(with_slos))
    return SloRequest(model, window, chart)


def _resolve_slo_model(config: Config, name: str) -> str | None:
    """A configured model, or one an SLO names: exact, else the one equal ignoring case."""
    known = {*config.models, *(slo.model for slo in config.slos)}
    if name in known:
        return name
    folded = [m for m in known if m.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def window_text(windows: Iterable[timedelta]) -> str:
    """``last 7 days`` when every SLO shown has one window, else ``each SLO's window``."""
    distinct = set(windows)
    return window_title(distinct.pop()).lower() if len(distinct) == 1 else "each SLO's window"


def _shown_window(boards: Sequence[ModelDashboard], window: timedelta | None) -> str:
    if window is not None:
        return window_title(window).lower()
    return window_text(row.window for board in boards for row in board.rows)


def slo_reply(
    boards: Sequence[ModelDashboard], *, model: str | None, window: timedelta | None, now: datetime
) -> Reply:
    """``/slo status``: the overview (no model) or one model's table."""
    if not boards:
        return Reply(messages.SLO_NONE_CONFIGURED)
    if model is None:
        return slo_overview_reply(boards, window=window, now=now)
    board = next((b for b in boards if b.model == model), boards[0])
    return slo_table_reply(board, window=window, now=now)


def slo_overview_reply(boards: Sequence[ModelDashboard], *, window: timedelta | None, now: datetime) -> Reply:
    """One line per model, worst first (emoji, model, compliance, worst SLO), and how to see more."""
    header = messages.slo_header(None, _shown_window(boards, window))
    lines = [escape_mrkdwn(line) for line in render_overview(boards)]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": header}}]
    blocks += _sections("\n".join(lines))[:MAX_SECTIONS]
    blocks.append(_context(f"{messages.SLO_OVERVIEW_HINT} · as of {slack_date(now)}"))
    return Reply("\n".join([header, *lines]), blocks)


def slo_table_reply(board: ModelDashboard, *, window: timedelta | None, now: datetime) -> Reply:
    """Seed 000's table in a code block (aligned columns), then the window and its data coverage."""
    header = messages.slo_header(board.model, _shown_window([board], window))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": header}}]
    blocks += _sections(code_block(render_table(board)))[:MAX_SECTIONS]
    blocks.append(_context(table_context(board, window=window, now=now)))
    return Reply(f"{header}\n{escape_mrkdwn(overall_text(board))}", blocks)


def table_context(board: ModelDashboard, *, window: timedelta | None, now: datetime) -> str:
    """``Window: last 7 days · burn rate over the last 1 h · as of …`` (how much of the window has
    data is the table's last line)."""
    parts = [f"Window: {_shown_window([board], window)}"]
    if board.rows:
        parts.append(f"burn rate over the last {humanize(board.rows[0].burn_lookback)}")
    parts.append(f"as of {slack_date(now)}")
    return " · ".join(parts)
