"""What the listener modules share: their dependencies (built once by
:func:`bot.slack.app.build_slack_app`) and the :class:`Listeners` base class.

One value instead of six keyword arguments per ``register``, so adding a dependency touches the
composition and the listeners that use it, not every registration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncAck

from bot.clock import Clock
from bot.config.loader import Config
from bot.incident_response import IncidentResponse
from bot.incident_review import IncidentReview
from bot.queries import Queries
from bot.service import AlertService
from bot.slack.access import MembershipCache
from bot.slack.after_ack import AfterAck
from bot.slack.payloads import Click, parse_click


@dataclass(frozen=True)
class SlackContext:
    service: AlertService
    queries: Queries
    config: Callable[[], Config]
    """Called per request, so a reload applies at once."""
    clock: Clock
    after_ack: AfterAck
    review: IncidentReview
    """Timeline marks and resolution notes (:mod:`bot.incident_review`)."""
    membership: MembershipCache = field(default_factory=MembershipCache)
    """Who is in a channel or user group, shared by every access check."""
    rooms: IncidentResponse | None = None
    """The incident room use cases (default: built on ``service``; the app passes one to share)."""


class Listeners:
    """Base of each surface's listeners: public methods are what Bolt calls (ack, parse, hand
    over), private ones the work done after the ack on the :class:`AfterAck` worker."""

    def __init__(self, context: SlackContext) -> None:
        self._context = context
        self._after_ack = context.after_ack

    async def _hand_over(self, ack: AsyncAck, body: dict[str, Any], work: Callable[[Click], Awaitable[None]]) -> None:
        """Acknowledge a click at once (Slack shows an error after 3 s), then ``work`` on it."""
        await ack()
        click = parse_click(body)
        await self._after_ack.submit(lambda: work(click))
