"""``/silence``'s arguments: what a person may type, read against the configuration. Pure.

``/silence <rule|model|rule:model> <duration> [reason]``, ``/silence list``, ``/silence end <id>``.
Every mistake is answered with a sentence naming it (the usage, close matches of an unknown
name, a bad duration), escaped for mrkdwn, so the acknowledgement itself can carry it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from bot.config import choices
from bot.config.durations import DURATION_HINT, humanize, is_duration, parse_duration
from bot.config.loader import Config
from bot.notify.slack_text import escape_mrkdwn

COMMAND = "/silence"
VERB = "silence"
BUTTON_DURATION = timedelta(hours=1)
MIN_DURATION = timedelta(minutes=1)
MAX_DURATION = timedelta(days=7)
MAX_REASON = 500
ANY = "*"
"""``*:model`` silences a model on every rule, ``rule:*`` a rule on every model."""

USAGE = (
    "Usage: `/silence <rule|model|rule:model> <duration> [reason]` mutes alerts for a while "
    f"(at most {humanize(MAX_DURATION)}), e.g. `/silence latency_spike:fraud-detector-v2 2h deploying v3`. "
    "`/silence list` shows the active silences; `/silence end <id>` ends one early."
)


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
        if is_duration(args[0]):
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
