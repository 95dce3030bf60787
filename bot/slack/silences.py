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

import difflib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.alerts.lifecycle import Alert
from bot.clock import Clock
from bot.config import choices
from bot.config.durations import DURATION_HINT, humanize, parse_duration
from bot.config.loader import Config
from bot.incidents.incident import Incident
from bot.notify.notifier import ThreadNote
from bot.notify.slack_blocks import INCIDENT_SILENCE_ACTION, SILENCE_ACTION, escape_mrkdwn, mention, slack_date
from bot.notify.slack_incident import named
from bot.queries import Queries
from bot.service import AlertService
from bot.silences.silence import Silence
from bot.slack import messages
from bot.slack.actions import (
    Click,
    MembershipCache,
    access_refusal,
    clicked,
    parse_click,
    patiently,
    refuse,
    tell,
)
from bot.slack.after_ack import AfterAck

log = logging.getLogger(__name__)

COMMAND = "/silence"
VERB = "silence"
BUTTON_DURATION = timedelta(hours=1)
MIN_DURATION = timedelta(minutes=1)
MAX_DURATION = timedelta(days=7)
MAX_REASON = 500
MAX_LISTED = 40
ANY = "*"
"""``*:model`` silences a model on every rule, ``rule:*`` a rule on every model."""

USAGE = (
    "Usage: `/silence <rule|model|rule:model> <duration> [reason]` mutes alerts for a while "
    f"(at most {humanize(MAX_DURATION)}), e.g. `/silence latency_spike:fraud-detector-v2 2h deploying v3`. "
    "`/silence list` shows the active silences; `/silence end <id>` ends one early."
)


# --------------------------------------------------------------------------- parsing (pure)


@dataclass(frozen=True)
class Target:
    """What a silence covers: ``None`` on either side means "every"."""

    rule: str | None
    model: str | None
    note: str = ""
    """Said with the confirmation (a name that is both a rule and a model)."""


@dataclass(frozen=True)
class SilenceRequest:
    target: Target
    duration: timedelta
    reason: str


@dataclass(frozen=True)
class ListRequest:
    pass


@dataclass(frozen=True)
class EndRequest:
    silence_id: int


Request = SilenceRequest | ListRequest | EndRequest


def known_models(config: Config) -> list[str]:
    return sorted({*config.models, *(slo.model for slo in config.slos)})


def parse_silence_args(config: Config, text: str) -> Request | str:
    """The request ``text`` asks for, or the (escaped) sentence that says what is wrong with it."""
    args = text.split()
    if not args:
        return USAGE
    verb = args[0].lower()
    if verb == "list":
        return ListRequest() if len(args) == 1 else USAGE
    if verb == "end":
        if len(args) != 2:
            return USAGE
        number = args[1].removeprefix("#")
        if not (number.isascii() and number.isdigit() and len(number) < 19):
            return f"`{escape_mrkdwn(args[1][:100])}` is not a silence id; `/silence list` shows them.\n{USAGE}"
        return EndRequest(int(number))
    if len(args) < 2:
        return f"Say for how long, e.g. `/silence {escape_mrkdwn(args[0][:100])} 1h`.\n{USAGE}"
    target = resolve_target(config, args[0])
    if isinstance(target, str):
        if _is_duration(args[0]):
            return f"Name what to silence first, then for how long: `/silence <rule|model> {escape_mrkdwn(args[0])}`."
        return target
    duration = _duration(args[1])
    if isinstance(duration, str):
        return duration
    parts = text.strip().split(maxsplit=2)
    reason = parts[2].strip() if len(parts) > 2 else ""
    return SilenceRequest(target, duration, reason[:MAX_REASON])


def resolve_target(config: Config, name: str) -> Target | str:
    """``name`` as a rule, a model, or ``rule:model`` (``*`` for "every"), or why it is none of these.

    A name that is both a rule and a model silences the rule, and says so.
    """
    rules, models = config.alert_rules(), known_models(config)
    if name in rules:
        note = ""
        if name in models:
            note = (
                f"`{escape_mrkdwn(name)}` is both a rule and a model: this silences the rule. "
                f"To silence the model instead, use `*:{escape_mrkdwn(name)}`."
            )
        return Target(rule=name, model=None, note=note)
    if name in models:
        return Target(rule=None, model=name)
    if ":" not in name:
        return unknown_name(name, rules=rules, models=models)
    # rule names may hold a colon themselves (slo:availability), so try every split
    splits = [(name[:i], name[i + 1 :]) for i, char in enumerate(name) if char == ":"]
    for rule, model in splits:
        rule_ok, model_ok = rule in rules or rule == ANY, model in models or model == ANY
        if rule_ok and model_ok:
            if rule == ANY and model == ANY:
                return "`*:*` would silence everything; name a rule or a model."
            return Target(rule=None if rule == ANY else rule, model=None if model == ANY else model)
    for left, right in splits:  # the rule half is right: the model half is the typo
        if left in rules or left == ANY:
            return unknown_name(right, rules=[], models=models, whole=name)
    for left, right in splits:
        if right in models or right == ANY:
            return unknown_name(left, rules=rules, models=[], whole=name)
    return unknown_name(splits[0][0], rules=rules, models=[], whole=name)


def unknown_name(name: str, *, rules: Sequence[str], models: Sequence[str], whole: str | None = None) -> str:
    """A helpful error: what was typed, the likely intended names, and the valid ones."""
    kind = "rule or model" if rules and models else ("rule" if rules else "model")
    text = f"Unknown {kind} `{escape_mrkdwn(name[:100])}`"
    text += f" in `{escape_mrkdwn(whole[:200])}`." if whole else "."
    close = difflib.get_close_matches(name, [*rules, *models], n=3, cutoff=0.6)
    if close:
        text += f" Did you mean: {_names(close)}?"
    if rules:
        text += f" Rules: {_names(rules)}."
    if models:
        text += f" Models: {_names(models)}."
    if not rules and not models:
        text += " Nothing is configured to silence."
    return text + "\nWrite `rule:model` to silence one rule on one model."


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"`{escape_mrkdwn(n)}`" for n in names)


def _is_duration(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError:
        return False
    return True


def _duration(text: str) -> timedelta | str:
    try:
        duration = parse_duration(text)
    except ValueError:
        return f"`{escape_mrkdwn(text[:100])}` is not a duration: {DURATION_HINT}.\n{USAGE}"
    if duration < MIN_DURATION or duration > MAX_DURATION:
        return (
            f"A silence lasts between {humanize(MIN_DURATION)} and {humanize(MAX_DURATION)} "
            f"(`{escape_mrkdwn(text)}` is {humanize(duration)})."
        )
    return duration


def target_channels(config: Config, rule: str | None, model: str | None) -> set[str]:
    """The channels the alerts a silence covers are posted to (``#name``s or IDs, as configured)."""
    return choices.silence_channels(config, rule, model)


# --------------------------------------------------------------------------- replies (pure)


def describe(rule: str | None, model: str | None) -> str:
    if rule is not None and model is not None:
        return f"rule `{escape_mrkdwn(rule)}` on model `{escape_mrkdwn(model)}`"
    if rule is not None:
        return f"rule `{escape_mrkdwn(rule)}` (every model)"
    if model is not None:
        return f"model `{escape_mrkdwn(model)}` (every rule)"
    return "every alert"


def silenced_reply(silence: Silence, *, note: str = "") -> str:
    span = humanize(silence.ends_at - silence.starts_at)
    text = f"🔕 Silenced {describe(silence.rule, silence.model)} for {span}, until {slack_date(silence.ends_at)}."
    if silence.reason:
        text += f"\nReason: {escape_mrkdwn(silence.reason)}"
    if note:
        text += f"\n{note}"
    text += (
        "\nIts alerts are still recorded and listed by `/alerts`, but nobody is notified. "
        f"Silence #{silence.id} — end it early with `/silence end {silence.id}`."
    )
    return text


def list_reply(silences: Sequence[Silence], *, now: datetime) -> str:
    if not silences:
        return "No active silences. `/silence <rule|model|rule:model> <duration>` adds one."
    shown = sorted(silences, key=lambda s: (s.ends_at, s.id or 0))
    lines = [f"*{len(shown)} active silence{'s' if len(shown) != 1 else ''}*"]
    for s in shown[:MAX_LISTED]:
        line = (
            f"#{s.id} · {describe(s.rule, s.model)} · until {slack_date(s.ends_at)} "
            f"({humanize(s.ends_at - now)} left) · by {mention(s.created_by)}"
        )
        if s.reason:
            line += f" · {escape_mrkdwn(s.reason[:200])}"
        lines.append(line)
    if len(shown) > MAX_LISTED:
        lines.append(f"…and {len(shown) - MAX_LISTED} more")
    lines.append("End one early with `/silence end <id>`.")
    return "\n".join(lines)


def ended_reply(silence: Silence) -> str:
    return (
        f"🔔 Silence #{silence.id} of {describe(silence.rule, silence.model)} ended. "
        "Alerts it kept quiet that are still firing are announced within seconds."
    )


def not_found_reply(silence_id: int) -> str:
    return f"There is no active silence #{silence_id}. `/silence list` shows the active ones."


def wrong_channel_reply(channels: Iterable[str]) -> str:
    where = ", ".join(_channel_link(c) for c in sorted(channels))
    return (
        ":no_entry_sign: Only members of an alert's channel may silence it: run `/silence` in the channel "
        f"these alerts are posted to ({where})."
    )


def already_silenced_reply(silence: Silence) -> str:
    return (
        f"🔕 {_capital(describe(silence.rule, silence.model))} is already silenced until "
        f"{slack_date(silence.ends_at)} (silence #{silence.id} by {mention(silence.created_by)}); nothing was added."
    )


def button_reply(silence: Silence) -> str:
    return (
        f"🔕 Silenced {describe(silence.rule, silence.model)} for {humanize(BUTTON_DURATION)}, "
        f"until {slack_date(silence.ends_at)}. End it early with `/silence end {silence.id}`."
    )


def thread_reply(user: str) -> str:
    return f"🔕 Silenced for 1 h by {mention(user)}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _channel_link(channel: str) -> str:
    return f"<#{channel}>" if channel[:1] in "CG" and channel.isalnum() else escape_mrkdwn(channel)


# --------------------------------------------------------------------------- listeners


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
    """Attach ``/silence`` and the ``Silence 1h`` button to ``app``."""
    cache = membership or MembershipCache()

    async def silence_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        current = config()
        request = parse_silence_args(current, str(command.get("text") or ""))
        if isinstance(request, str):
            await ack(text=request, response_type="ephemeral")
            return
        await ack()
        asked = Asked(
            user=str(command.get("user_id") or ""),
            channel_id=str(command.get("channel_id") or "") or None,
            channel_name=str(command.get("channel_name") or "") or None,
            response_url=str(command.get("response_url") or ""),
        )
        await after_ack.submit(lambda: _command(current, request, asked))

    async def _command(current: Config, request: Request, asked: Asked) -> None:
        try:
            if isinstance(request, ListRequest):
                text = list_reply(await after_ack.db(queries.active_silences, clock.now()), now=clock.now())
            elif isinstance(request, EndRequest):
                text = await _end(current, request, asked)
            else:
                text = await _add(current, request, asked)
        except Exception:
            log.exception("/silence failed for %s", asked.user)
            text = messages.TRY_AGAIN
        await _respond(after_ack, asked.response_url, text)

    async def _add(current: Config, request: SilenceRequest, asked: Asked) -> str:
        target = request.target
        refusal = await _command_refusal(current, asked, target.rule, target.model)
        if refusal is not None:
            return refusal
        now = clock.now()
        wanted = Silence(
            rule=target.rule,
            model=target.model,
            starts_at=now,
            ends_at=now + request.duration,
            created_by=asked.user,
            reason=request.reason,
        )
        silence = await patiently(lambda: after_ack.db(service.silence, wanted), what=f"/silence by {asked.user}")
        log.info("silence #%s of %s by %s until %s", silence.id, silence.describe(), asked.user, silence.ends_at)
        return silenced_reply(silence, note=target.note)

    async def _end(current: Config, request: EndRequest, asked: Asked) -> str:
        active = await after_ack.db(queries.active_silences, clock.now())
        found = next((s for s in active if s.id == request.silence_id), None)
        if found is None:
            return not_found_reply(request.silence_id)
        refusal = await _command_refusal(current, asked, found.rule, found.model)
        if refusal is not None:
            return refusal
        ended = await patiently(
            lambda: after_ack.db(service.unsilence, request.silence_id), what=f"/silence end by {asked.user}"
        )
        if not ended:  # it expired, or someone else ended it, since we looked
            return not_found_reply(request.silence_id)
        log.info("silence #%s of %s ended early by %s", found.id, found.describe(), asked.user)
        return ended_reply(found)

    async def _command_refusal(current: Config, asked: Asked, rule: str | None, model: str | None) -> str | None:
        access = current.access
        if access.allow == "channel_members":
            channels = target_channels(current, rule, model)
            here = {asked.channel_id, f"#{asked.channel_name}" if asked.channel_name else None} - {None}
            if not here & channels:
                log.info("/silence by %s refused: run outside the alerts' channels %s", asked.user, channels)
                return wrong_channel_reply(channels)
        return await access_refusal(
            after_ack.client, access, cache, user=asked.user, channel=asked.channel_id, verb=VERB
        )

    async def silence_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = parse_click(body)
        await after_ack.submit(lambda: _silence_alert(click))

    async def _silence_alert(click: Click) -> None:
        found = await clicked(after_ack, click, queries.alert_and_message, subject="alert", why="silence")
        if found is None:
            return
        alert_id, (alert, where, grouped) = found
        now = clock.now()
        wanted = Silence(
            rule=alert.rule,
            model=alert.model,
            starts_at=now,
            ends_at=now + BUTTON_DURATION,
            created_by=click.user,
            reason=f"Silence 1h button on alert #{alert_id}",
        )
        note = named(alert, thread_reply(click.user)) if grouped else thread_reply(click.user)
        await _silence(click, wanted, where, note, what=f"alert {alert_id}", alert_id=alert_id)

    async def incident_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = parse_click(body)
        await after_ack.submit(lambda: _silence_incident(click))

    async def _silence_incident(click: Click) -> None:
        found = await clicked(after_ack, click, queries.incident_and_lead, subject="incident", why="silence")
        if found is None:
            return
        incident_id, (incident, where, lead) = found
        rule, model = incident_target(incident, lead)
        now = clock.now()
        wanted = Silence(
            rule=rule,
            model=model,
            starts_at=now,
            ends_at=now + BUTTON_DURATION,
            created_by=click.user,
            reason=f"Silence 1h button on incident #{incident_id}",
        )
        await _silence(
            click, wanted, where, thread_reply(click.user), what=f"incident {incident_id}", incident_id=incident_id
        )

    async def _silence(
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
        client = after_ack.client
        channel = where[0] if where else None  # the message's own channel, never the one the click names
        refusal = await access_refusal(client, config().access, cache, user=click.user, channel=channel, verb=VERB)
        if refusal is not None:
            await refuse(client, click, refusal)
            return
        try:
            covering = await after_ack.db(queries.covering_silence, wanted)
            if covering is not None:  # a second click (or a colleague's) adds nothing
                await refuse(client, click, already_silenced_reply(covering))
                return
            thread = where or ((click.channel, click.message_ts) if click.channel and click.message_ts else None)
            said = ThreadNote(*thread, note, incident_id=incident_id, alert_id=alert_id) if thread else None
            silence = await patiently(lambda: after_ack.db(service.silence, wanted, note=said), what=f"silence {what}")
        except Exception:
            log.exception("silencing %s for %s failed", what, click.user)
            await tell(client, click, messages.TRY_AGAIN)
            return
        log.info("silence #%s of %s by %s (button on %s)", silence.id, silence.describe(), click.user, what)
        await tell(client, click, button_reply(silence))

    app.command(COMMAND)(silence_command)
    app.action(SILENCE_ACTION)(silence_button)
    app.action(INCIDENT_SILENCE_ACTION)(incident_button)


@dataclass(frozen=True)
class Asked:
    """Who ran a command, and where."""

    user: str
    channel_id: str | None
    channel_name: str | None
    response_url: str


async def _respond(after_ack: AfterAck, response_url: str, text: str) -> None:
    try:
        await after_ack.respond(response_url, {"text": text, "response_type": "ephemeral", "replace_original": False})
    except Exception:  # an expired response_url or a Slack outage: the person runs the command again
        log.warning("could not answer /silence through its response_url", exc_info=True)


def incident_target(incident: Incident, lead: Alert) -> tuple[str | None, str | None]:
    """What the incident's Silence button mutes: ``(rule, model)`` from its group labels (a storm:
    its rule), else -- an incident grouped by nothing -- its lead alert's rule on its model."""
    rule = incident.storm_rule or incident.labels.get("rule")
    model = None if incident.storm_rule else incident.labels.get("model")
    return (rule, model) if rule or model else (lead.rule, lead.model)
