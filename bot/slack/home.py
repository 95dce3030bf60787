"""The App Home tab: active alerts and the SLO dashboard, rebuilt each time someone opens it.

Publishing on ``app_home_opened`` (rather than pushing on every alert change) keeps the tab
correct without a fan-out to every user, at the cost of one query per open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine

from bot.alerts import store
from bot.alerts.lifecycle import Alert
from bot.clock import Clock
from bot.config.loader import Config
from bot.metrics import store as metric_store
from bot.notify.slack_blocks import home_view
from bot.slack.commands import Latest, slo_lines
from bot.storage.database import session as open_session

log = logging.getLogger(__name__)


def register(app: AsyncApp, *, engine: Engine, config: Callable[[], Config], clock: Clock) -> None:
    """Attach the ``app_home_opened`` listener (Bolt acknowledges events before it runs)."""

    async def publish_home(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return  # the Messages tab, or a malformed event: nothing to publish
        try:
            alerts, latest = await asyncio.to_thread(_snapshot, engine)
            now = clock.now()
            view = home_view(alerts, now=now, slo_lines=slo_lines(config(), latest, now=now))
            await client.views_publish(user_id=event["user"], view=view)
        except Exception:  # the tab keeps its previous content; the next open tries again
            log.exception("publishing the App Home for %s failed", event.get("user"))

    app.event("app_home_opened")(publish_home)


def _snapshot(engine: Engine) -> tuple[list[Alert], Latest]:
    with open_session(engine) as s:
        return store.active(s), metric_store.latest(s)
