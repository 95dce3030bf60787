"""Slash commands: ``/runbook <model>``, ``/alerts`` and ``/slo status [model] [window]``.

Slack gives a command 3 seconds. A reply that needs only the configuration (usage errors,
runbooks) goes back in the acknowledgement itself; one that reads the database is acknowledged
first and answered through the ``response_url`` from the after-ack worker
(:class:`bot.slack.after_ack.AfterAck`), so a slow query never turns into Slack's
"operation_timeout" and never holds up another request's ack. Every reply is ephemeral: it
answers the person who asked.

The reply builders are pure functions of the configuration and data, tested on their output.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from sqlalchemy.engine import Engine

from bot.alerts import store
from bot.alerts.lifecycle import Alert
from bot.clock import Clock
from bot.config.durations import format_duration, parse_duration
from bot.config.loader import Config
from bot.config.schema import Slo
from bot.metrics import store as metric_store
from bot.metrics.samples import Sample
from bot.notify.slack_blocks import alerts_list, escape_mrkdwn, markdown_to_mrkdwn, split_sections
from bot.slack import messages
from bot.slack.after_ack import AfterAck
from bot.storage.database import session as open_session

log = logging.getLogger(__name__)

SECTION_LIMIT = 3000
"""Slack's limit on a section block's text."""
MAX_SECTIONS = 45
"""Stay under the 50 blocks of a message, leaving room for a note."""

Latest = Mapping[str, Mapping[str, Sample]]


@dataclass(frozen=True)
class Reply:
    """An ephemeral answer: a plain-text fallback and optional blocks."""

    text: str
    blocks: list[dict[str, Any]] | None = None


def register(app: AsyncApp, *, engine: Engine, config: Callable[[], Config], clock: Clock, after_ack: AfterAck) -> None:
    """Attach the three commands to ``app``. ``config`` is called per request, so a reload applies at once."""

    async def runbook_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        reply = runbook_reply(config(), command.get("text") or "")
        await ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")

    async def alerts_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        args = (command.get("text") or "").split()
        if args:
            text = messages.ALERTS_REVIEW_NOT_YET if args[0].lower() == "review" else messages.ALERTS_USAGE
            await ack(text=text, response_type="ephemeral")
            return
        await ack()
        await after_ack.submit(lambda: _alerts(str(command.get("response_url") or "")))

    async def _alerts(response_url: str) -> None:
        try:
            alerts = await after_ack.db(_active_alerts, engine)
            text, blocks = alerts_list(alerts, now=clock.now())
            reply = Reply(text, blocks)
        except Exception:
            log.exception("/alerts failed")
            reply = Reply(messages.TRY_AGAIN)
        await _respond(after_ack, response_url, reply)

    async def slo_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        current = config()
        request = parse_slo_args(current, command.get("text") or "")
        if isinstance(request, Reply):
            await ack(text=request.text, blocks=request.blocks, response_type="ephemeral")
            return
        await ack()
        await after_ack.submit(lambda: _slo(current, request, str(command.get("response_url") or "")))

    async def _slo(current: Config, request: SloRequest, response_url: str) -> None:
        try:
            latest = await after_ack.db(_latest_samples, engine)
            reply = slo_reply(current, latest, model=request.model, window=request.window, now=clock.now())
        except Exception:
            log.exception("/slo status failed")
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


def _active_alerts(engine: Engine) -> list[Alert]:
    with open_session(engine) as s:
        return store.active(s)


def _latest_samples(engine: Engine) -> Latest:
    with open_session(engine) as s:
        return metric_store.latest(s)


# --------------------------------------------------------------------------- /runbook


def render_runbook(config: Config, model: str, *, rule: str | None = None) -> str | None:
    """The runbook text for ``model``, its ``{fields}`` filled from the model's settings.

    With ``rule`` (an alert's Runbook button), the rule's own runbook wins: it is written for
    that problem; otherwise the model's ``runbook:``, then ``runbooks/default.md``.
    """
    runbook = None
    named = config.rule(rule) if rule else None
    if named is not None and named.runbook:
        runbook = config.runbooks.get(named.runbook)
    runbook = runbook or config.runbook_for_model(model)
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


class SloState(Enum):
    """Worst first; ``rank`` orders the dashboard."""

    CRITICAL = (0, "🔴", "critical")
    WARNING = (1, "⚠️", "warning")
    OFF_TARGET = (2, "⚠️", "off target")
    NO_DATA = (3, "⚪", "no data")
    OK = (4, "✅", "ok")

    @property
    def rank(self) -> int:
        return int(self.value[0])

    @property
    def emoji(self) -> str:
        return str(self.value[1])

    @property
    def label(self) -> str:
        return str(self.value[2])


@dataclass(frozen=True)
class SloRequest:
    model: str | None
    window: timedelta | None


def parse_slo_args(config: Config, text: str) -> SloRequest | Reply:
    """``status [model] [window]``; anything else is a usage reply."""
    args = text.split()
    if not args or args[0].lower() != "status" or len(args) > 3:
        return Reply(messages.SLO_USAGE)
    model: str | None = None
    window: timedelta | None = None
    for arg in args[1:]:
        if model is None and window is None and not _looks_like_window(arg):
            model = arg
        else:
            try:
                window = parse_duration(arg)
            except ValueError:
                return Reply(messages.bad_window(arg))
    if model is not None:
        resolved = resolve_model(config, model)
        if resolved is None:
            return Reply(_unknown_model(config, model))
        model = resolved
    if model is not None and not any(slo.model == model for slo in config.slos):
        return Reply(messages.no_slos_for(model))
    return SloRequest(model, window)


def _looks_like_window(arg: str) -> bool:
    return arg[:1].isdigit()


def slo_state(slo: Slo, value: float) -> SloState:
    """Where ``value`` stands: meeting the objective, past warning, past critical, or in between.

    Compared as "badness" (the value itself for ``below`` objectives, its negation for ``above``),
    so one set of comparisons serves both directions.
    """
    sign = 1.0 if slo.objective.direction == "below" else -1.0
    bad = sign * value
    if bad <= sign * slo.objective.target:
        return SloState.OK
    if bad >= sign * slo.critical:
        return SloState.CRITICAL
    if bad >= sign * slo.warning:
        return SloState.WARNING
    return SloState.OFF_TARGET


def slo_lines(config: Config, latest: Latest, *, now: datetime, model: str | None = None) -> list[str]:
    """One line per SLO (of ``model``, or all), worst first; stale samples count as no data.

    Lines use mrkdwn emphasis but are not escaped: the App Home builder escapes what it is given,
    and :func:`slo_reply` escapes for the command reply.
    """
    rows: list[tuple[int, str, str, str]] = []
    for slo in config.slos:
        if model is not None and slo.model != model:
            continue
        sample = latest.get(slo.model, {}).get(slo.metric)
        state, current = SloState.NO_DATA, "no data"
        if sample is not None and not isinstance(sample.value, str):
            age = now - sample.at
            current = f"{sample.value:g} ({format_duration(age)} ago)"
            state = SloState.NO_DATA if age > config.settings.stale_after else slo_state(slo, float(sample.value))
            if state is SloState.NO_DATA:
                current += ", stale"
        objective = f"{slo.objective.direction} {slo.objective.target:g}"
        line = (
            f"{state.emoji} *{slo.model}* · `{slo.metric}` = "
            f"{current} · objective {objective} (warning {slo.warning:g}, critical {slo.critical:g}) · {state.label}"
        )
        rows.append((state.rank, slo.model, slo.metric, line))
    return [line for *_, line in sorted(rows)]


def slo_reply(
    config: Config, latest: Latest, *, model: str | None, window: timedelta | None = None, now: datetime
) -> Reply:
    """The ``/slo status`` dashboard (first version: latest values, no windowed compliance yet)."""
    lines = slo_lines(config, latest, now=now, model=model)
    if not lines:
        return Reply(messages.SLO_NONE_CONFIGURED)
    header = messages.slo_header(model)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": header}}]
    blocks += [
        {"type": "section", "text": {"type": "mrkdwn", "text": chunk}}
        for chunk in split_sections("\n".join(escape_mrkdwn(line) for line in lines), SECTION_LIMIT)[:MAX_SECTIONS]
    ]
    if window is not None:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": messages.SLO_LATEST_ONLY}]})
    return Reply("\n".join([header, *(escape_mrkdwn(line) for line in lines)]), blocks)
