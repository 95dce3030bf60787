"""What the listener modules share: built once by :func:`bot.slack.app.build_slack_app`.

One value instead of six keyword arguments per ``register``, so adding a dependency touches the
composition and the listeners that use it, not every registration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.clock import Clock
from bot.config.loader import Config
from bot.queries import Queries
from bot.service import AlertService
from bot.slack.access import MembershipCache
from bot.slack.after_ack import AfterAck


@dataclass(frozen=True)
class SlackContext:
    service: AlertService
    queries: Queries
    config: Callable[[], Config]
    """Called per request, so a reload applies at once."""
    clock: Clock
    after_ack: AfterAck
    membership: MembershipCache = field(default_factory=MembershipCache)
    """Who is in a channel or user group, shared by every access check."""
