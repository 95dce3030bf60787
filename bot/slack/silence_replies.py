"""What ``/silence`` and the Silence 1h buttons say back: pure sentences, escaped for mrkdwn."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from bot.config.durations import humanize
from bot.notify.slack_text import escape_mrkdwn, mention, slack_date
from bot.silences.silence import Silence
from bot.slack.silence_args import BUTTON_DURATION

MAX_LISTED = 40


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
