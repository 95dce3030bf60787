"""What the listener modules share: their dependencies (built once by
:func:`bot.slack.app.build_slack_app`) and the :class:`Listeners` base class.

One value instead of six keyword arguments per ``register``, so adding a dependency touches the
composition and the listeners that use it, not every registration.
"""

from __future__ import annotations

import logging
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
from bot.slack import messages
from bot.slack.access import MembershipCache, access_refusal
from bot.slack.after_ack import AfterAck
from bot.slack.payloads import Click, parse_click

log = logging.getLogger(__name__)


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

    async def _incident_refusal(
        self, user: str, incident_id: int | None, verb: str, *, channel: str | None = None
    ) -> str | None:
        """None when ``user`` may ``verb`` the incident under ``access:``, else why not. Under
        ``channel_members`` the channel checked is the incident's own (where its root lives), not
        one the request names; ``channel`` is checked for what has no incident yet (a declaration)."""
        access = self._context.config().access
        if access.allow == "channel_members" and incident_id is not None:
            try:
                channel = await self._after_ack.read(self._context.queries.incident_channel, incident_id)
            except Exception:
                log.exception("finding the channel of incident %s failed", incident_id)
                return messages.TRY_AGAIN
        client, cache = self._after_ack.client, self._context.membership
        return await access_refusal(client, access, cache, user=user, channel=channel, verb=verb, what="incident")
