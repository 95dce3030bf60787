"""The App Home tab: active alerts and the SLO dashboard, rebuilt each time someone opens it.

Publishing on ``app_home_opened`` (rather than pushing on every alert change) keeps the tab
correct without a fan-out to every user, at the cost of one query per open. Bolt acknowledges
the event; the query and ``views.publish`` run on the after-ack worker.

The SLO section is the overview of ``/slo status`` (:func:`bot.slo.dashboard.render_overview`):
one line per model, worst first, with its compliance and its worst SLO.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.notify.slack_blocks import home_view
from bot.slack.context import Listeners, SlackContext
from bot.slo.dashboard import render_overview

log = logging.getLogger(__name__)


def register(app: AsyncApp, context: SlackContext) -> None:
    """Attach the ``app_home_opened`` listener (Bolt acknowledges the event when it returns)."""
    app.event("app_home_opened")(AppHome(context).publish_home)


class AppHome(Listeners):
    """Publishes the tab for whoever opened it."""

    async def publish_home(self, event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return  # the Messages tab, or a malformed event: nothing to publish
        user = str(event["user"])
        await self._after_ack.submit(lambda: self._publish(user))

    async def _publish(self, user: str) -> None:
        after_ack, queries = self._after_ack, self._context.queries
        try:
            now = self._context.clock.now()
            current = self._context.config()
            alerts = await after_ack.db(queries.active_alerts)
            boards = await after_ack.db(queries.slo_dashboards, current, now)
            view = home_view(alerts, now=now, slo_lines=render_overview(boards))  # plain text: home_view escapes
            await after_ack.client.views_publish(user_id=user, view=view)
        except Exception:  # the tab keeps its previous content; the next open tries again
            log.exception("publishing the App Home for %s failed", user)
