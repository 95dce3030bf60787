"""At start-up, say which alert channels the bot cannot read, and which scopes its token lacks.

Slack lets the bot post to a public channel it was never invited to (``chat:write.public``), so
alerts look fine -- until a post times out or the bot crashes mid-delivery. Then exactly-once
recovery (:mod:`bot.notify.slack`) looks for the earlier post in ``conversations.history``,
which needs membership; blind, the retry posts a second copy. ``incident-bot serve`` therefore
checks every configured channel once at start and logs one warning per channel it cannot find
or read. It never blocks start-up for long: each call has a short timeout and the whole check a
budget, and a channel left unchecked is said to be unchecked rather than assumed fine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from functools import partial

from slack_sdk import WebClient

from bot.config.loader import Config
from bot.errors import DeliveryError
from bot.notify.slack_api import CHANNEL_ID, call, find_channel_ids, make_client
from bot.settings import Settings

log = logging.getLogger(__name__)

CALL_TIMEOUT = 2.0
"""Seconds one Web API call of the check may take."""
BUDGET = 6.0
"""Seconds the whole check may take; channels not reached by then are reported unchecked."""
WHY = "exactly-once recovery reads the channel's history, so a post retried after a crash may appear twice"


def alert_channels(config: Config) -> list[str]:
    """Every channel the configuration may post to: the default, rules', models' and the quiet channel."""
    named = [
        config.settings.default_channel,
        config.routing.quiet_channel,
        *(rule.channel for rule in config.rules),
        *(model.channel for model in config.models.values()),
    ]
    return sorted({channel for channel in named if channel})


def unreadable_channels(
    client: WebClient,
    channels: Collection[str],
    *,
    budget: float = BUDGET,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[str, str]:
    """Channel → why the bot cannot read it (or could not check it); readable channels are left out.

    One ``conversations.list`` pass finds the names (rules name ``#channels``, history takes IDs),
    then one ``conversations.history`` call per channel, until the budget is spent."""
    deadline = monotonic() + budget
    try:
        ids = find_channel_ids(client, [c for c in channels if not CHANNEL_ID.match(c)])
    except DeliveryError as exc:
        return dict.fromkeys(channels, f"not checked: {exc}")
    problems: dict[str, str] = {}
    for channel in channels:
        channel_id = channel if CHANNEL_ID.match(channel) else ids.get(channel)
        if channel_id is None:
            problems[channel] = (
                "the bot cannot see it (conversations.list): invite the bot (/invite @incident-bot) "
                "if it is private, or fix `channel:` in rules/ if it does not exist"
            )
        elif monotonic() > deadline:
            problems[channel] = f"not checked: Slack did not answer the other checks within {budget:g} s"
        else:
            try:
                call("conversations.history", partial(client.conversations_history, channel=channel_id, limit=1))
            except DeliveryError as exc:
                problems[channel] = f"not checked: {exc}" if exc.retryable else str(exc)
    return problems


def warn_unreadable_channels(settings: Settings, config: Config, *, budget: float = BUDGET) -> dict[str, str]:
    """Log one warning per alert channel the bot cannot read; nothing to do without a Slack token."""
    if settings.slack_bot_token is None or not settings.slack_bot_token.get_secret_value():
        return {}
    client = make_client(
        settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, timeout=CALL_TIMEOUT
    )
    problems = unreadable_channels(client, alert_channels(config), budget=budget)
    default = config.settings.default_channel
    for channel, problem in problems.items():
        instead = "" if channel == default else f"; alerts Slack refuses to post there go to {default} instead"
        log.warning("alert channel %s: %s (%s%s)", channel, problem, WHY, instead)
    return problems


NEEDED_SCOPES = {
    "chat:write": "posting and updating alert messages",
    "chat:write.public": "posting in public channels the bot was not invited to",
    "commands": "the slash commands and message shortcuts",
    "channels:history": "finding a message again after a crash (public channels)",
    "groups:history": "finding a message again after a crash (private channels)",
    "channels:read": "channel IDs and members (conversations.list, access: channel_members)",
    "groups:read": "the same for private channels",
    "usergroups:read": "user groups (access: usergroup, a room's oncall: group)",
    "files:write": "SLO charts",
    "channels:manage": "creating incident rooms, their topic and invitations",
    "groups:write": "private incident rooms (incident_channel_private: true)",
    "pins:write": "pinning the incident card in its room",
    "reactions:read": "⏱ reactions adding room messages to the timeline",
}
"""Every scope the bot uses (``manifest.yaml``), and what goes wrong without it."""


def missing_scopes(client: WebClient) -> dict[str, str] | None:
    """Scope → what it is for, of each :data:`NEEDED_SCOPES` the token lacks; None when Slack did not
    say (no answer, or no ``x-oauth-scopes`` header). Raises nothing."""
    try:
        answer = call("auth.test", client.auth_test)
    except DeliveryError as exc:
        log.warning("cannot check the Slack token's scopes: %s", exc)
        return None
    headers = {name.lower(): value for name, value in (answer.headers or {}).items()}
    said = headers.get("x-oauth-scopes")
    if said is None:
        return None
    text = said[0] if isinstance(said, list) else str(said)
    granted = {scope.strip() for scope in text.split(",") if scope.strip()}
    return {scope: why for scope, why in NEEDED_SCOPES.items() if scope not in granted}


def warn_missing_scopes(settings: Settings) -> dict[str, str]:
    """Log one WARNING naming the scopes the bot token lacks and what each is for (``serve``, once)."""
    if settings.slack_bot_token is None or not settings.slack_bot_token.get_secret_value():
        return {}
    client = make_client(
        settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, timeout=CALL_TIMEOUT
    )
    missing = missing_scopes(client) or {}
    if missing:
        listed = "; ".join(f"{scope} ({why})" for scope, why in missing.items())
        log.warning(
            "the Slack app lacks %d scope(s): %s. Add them from manifest.yaml and reinstall the app",
            len(missing),
            listed,
        )
    return missing
