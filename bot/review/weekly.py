"""The review's I/O edge: read alerts and their events, render, and post the weekly review.

The weekly post goes through the outbox like every notification (an outage delays it, never
loses or doubles it): one row per ISO week, kind :data:`KIND` on the ``slack`` notifier, with
payload ``{"text", "channel", "title", "week"}`` — the Slack notifier posts ``text`` (a code
block) to ``channel``. With ``routing.reports.email`` and an ``email`` notifier, the same review
and the SLO summary (kind :data:`SLO_KIND`) also go by email, payload ``{"text", "title",
"week", "email_to"}``. Each row's idempotency key names the week, so every replica and every
tick may try: the first one enqueues, the rest find the row and stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import cache, partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot.alerts import store
from bot.alerts.lifecycle import Timing
from bot.config.loader import Config
from bot.incidents import store as incident_store
from bot.notify.outbox import enqueue
from bot.review.core import REFIRE_GAP, RuleReview, review
from bot.review.incidents import summarize, summary_lines
from bot.review.render import render_review
from bot.slo.service import slo_summary_text
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow

log = logging.getLogger(__name__)

WEEK = timedelta(days=7)
KIND = "review.weekly"
SLO_KIND = "slo.summary"
CHANNEL = "slack"
EMAIL = "email"
POST_WEEKDAY = 0
"""Monday, in the business-hours time zone (UTC without one)."""
POST_AT = time(9, 0)
CHECK_EVERY = timedelta(minutes=15)
"""How often the scheduler asks whether the week's review is due."""


def load_review(engine: Engine, config: Config | None, now: datetime, window: timedelta = WEEK) -> list[RuleReview]:
    """The review of ``(now − window, now]`` from the database; ``config`` (if given) supplies the
    rules' current ``for:`` and cooldown so suggestions go beyond them."""
    with open_session(engine) as s:
        alerts = store.fired_since(s, since=now - window - REFIRE_GAP)  # predecessors, for re-fires
        events = store.histories(s, [a.id for a in alerts if a.id is not None])
    timings = {r.name: Timing(r.for_, r.cooldown) for r in config.rules} if config is not None else None
    return review(alerts, events, now, window, timings=timings)


def weekly_review_text(engine: Engine, config: Config | None, now: datetime, window: timedelta = WEEK) -> str:
    """The text of ``/alerts review [window]``, ``incident-bot alerts review`` and the weekly post:
    per rule, how many incidents people heard about, and how they were declared and resolved."""
    with open_session(engine) as s:
        incidents = incident_store.opened_in(s, since=now - window, until=now)
    handled = summary_lines(summarize(incidents))
    reviews = load_review(engine, config, now, window)
    return render_review(reviews, now=now, window=window, incidents=len(incidents), response=handled)


def week_of(now: datetime, config: Config) -> tuple[str, bool]:
    """``("2026-W02", due)``: the ISO week of ``now`` in the configured time zone, and whether
    its review is due (Monday, from 09:00 local time, until the day ends)."""
    zone = ZoneInfo(config.business_hours.timezone) if config.business_hours else ZoneInfo("UTC")
    local = now.astimezone(zone)
    year, week, _ = local.isocalendar()
    due = local.weekday() == POST_WEEKDAY and local.time() >= POST_AT
    return f"{year}-W{week:02d}", due


def post_weekly_review(engine: Engine, config: Config, now: datetime, *, channels: Collection[str]) -> bool:
    """Enqueue this week's reports if they are due and not yet enqueued; return whether this call
    enqueued any: the review in Slack, and the review and the SLO summary by email to
    ``routing.reports.email``.

    Each goes only where its notifier exists (``channels``): without Slack or SMTP there is nobody
    to send it to, and ``incident-bot alerts review`` and ``slo status`` print the same texts.
    """
    week, due = week_of(now, config)
    if not due:
        return False
    review_text = cache(lambda: weekly_review_text(engine, config, now))
    title = f"Weekly alert review ({week})"
    reports: list[Report] = []
    if CHANNEL in channels:
        channel = config.settings.default_channel
        slack = {"channel": channel, "title": title, "week": week}
        reports.append(Report(CHANNEL, KIND, f"{KIND}:{week}", lambda: {"text": review_text(), **slack}))
    recipients = config.routing.reports.email
    if EMAIL in channels and recipients:
        mail = {"email_to": list(recipients), "week": week}
        reports.append(
            Report(EMAIL, KIND, f"{EMAIL}:{KIND}:{week}", lambda: {"text": review_text(), "title": title, **mail})
        )
        if config.slos:
            summary = {"title": f"SLO summary ({week})", **mail}
            text = partial(slo_summary_text, engine, config, now)
            reports.append(Report(EMAIL, SLO_KIND, f"{EMAIL}:{SLO_KIND}:{week}", lambda: {"text": text(), **summary}))
    enqueued = [report for report in reports if _enqueue_once(engine, report, now)]
    for report in enqueued:
        log.info("%s for %s enqueued to %s", report.kind, week, report.channel)
    return bool(enqueued)


@dataclass(frozen=True)
class Report:
    """One scheduled report for one notifier; ``payload`` is built only if it is not enqueued yet."""

    channel: str
    kind: str
    key: str
    payload: Callable[[], dict[str, Any]]


def _enqueue_once(engine: Engine, report: Report, now: datetime) -> bool:
    """Every replica and every tick may try: the first enqueues, the rest find the key and stop."""
    with open_session(engine) as s:
        if s.exec(select(OutboxRow.id).where(OutboxRow.idempotency_key == report.key)).first() is not None:
            return False
    payload = report.payload()
    try:
        with open_session(engine) as s, s.begin():
            enqueue(s, channel=report.channel, kind=report.kind, payload=payload, idempotency_key=report.key, now=now)
    except IntegrityError:  # another replica enqueued it between our check and our insert
        return False
    return True
