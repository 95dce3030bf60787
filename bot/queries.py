"""What the people-facing side reads: one method per question, the session opened here.

:class:`bot.service.AlertService` is the way in for every change; this is the way in for every
read the Slack listeners make (which alert a button names, where its message lives, the active
alerts and silences, the SLO dashboards, the weekly review). So nothing under ``bot/slack/``
opens a database session or imports the storage layer, and a reader following a click sees one
door to the database on each side.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from bot.alerts import store
from bot.alerts.lifecycle import Alert
from bot.changes.events import Change
from bot.changes.log import ChangeLog
from bot.config.loader import Config
from bot.incident_review import timeline_of
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident
from bot.incidents.timeline import Entry
from bot.notify.slack_incident import newest_per_key
from bot.review.weekly import weekly_review_text
from bot.silences import store as silence_store
from bot.silences.silence import Silence
from bot.slo.dashboard import ModelDashboard
from bot.slo.service import slo_chart, slo_dashboards
from bot.storage.database import session as open_session

Location = tuple[str, str]
"""A Slack message: ``(channel, ts)``."""

COVERING_SLACK = timedelta(minutes=1)
"""A silence ending this much before the one asked for still covers it (a second click)."""


class Queries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        """For the other readers the Slack app is built with (:class:`bot.incident_review.IncidentReview`)."""
        return self._engine

    # ------------------------------------------------------------------ alerts and incidents

    def alert(self, alert_id: int) -> Alert | None:
        with open_session(self._engine) as s:
            return store.get(s, alert_id)

    def active_alerts(self) -> list[Alert]:
        with open_session(self._engine) as s:
            return store.active(s)

    def alert_channel(self, alert_id: int) -> str | None:
        """Where the alert's incident's root message lives (else the alert's own message)."""
        with open_session(self._engine) as s:
            alert = store.get(s, alert_id)
            where = incident_store.slack_message(s, alert.incident_id) if alert and alert.incident_id else None
            where = where or store.slack_message(s, alert_id)
        return where[0] if where else None

    def alert_and_message(self, alert_id: int) -> tuple[Alert, Location | None, bool] | None:
        """The alert, its root message (if posted) and whether that message holds several alerts."""
        with open_session(self._engine) as s:
            alert = store.get(s, alert_id)
            if alert is None:
                return None
            where = store.slack_message(s, alert_id)
            grouped = where is not None and len(store.alerts_in_message(s, *where)) > 1
        return alert, where, grouped

    def incident_channel(self, incident_id: int) -> str | None:
        """Where the incident's root message lives."""
        with open_session(self._engine) as s:
            where = incident_store.slack_message(s, incident_id)
        return where[0] if where else None

    def incident(self, incident_id: int) -> Incident | None:
        with open_session(self._engine) as s:
            return incident_store.get(s, incident_id)

    def incident_timeline(self, incident_id: int, now: datetime) -> list[Entry] | None:
        """The incident's timeline, oldest first (``None``: no such incident); Slack shows it with
        :func:`bot.incidents.timeline.timeline_text` (``slack=escape_mrkdwn``)."""
        with open_session(self._engine) as s:
            incident = incident_store.get(s, incident_id)
            return None if incident is None else timeline_of(s, incident, now)

    def incident_lead(self, incident_id: int) -> tuple[Incident, Alert] | None:
        """The incident and the alert that speaks for it (its most severe open one, else its first)."""
        with open_session(self._engine) as s:
            incident = incident_store.get(s, incident_id)
            if incident is None:
                return None
            shown = newest_per_key(incident_store.alerts(s, incident_id))
        if not shown:
            return None
        return incident, next((a for a in shown if a.state.is_open), shown[0])

    def incident_and_lead(self, incident_id: int) -> tuple[Incident, Location | None, Alert] | None:
        """The incident, its root message (if posted) and the alert that speaks for it."""
        with open_session(self._engine) as s:
            incident = incident_store.get(s, incident_id)
            where = incident_store.slack_message(s, incident_id)
            alerts = incident_store.alerts(s, incident_id)
        if incident is None or not alerts:
            return None
        return incident, where, next((a for a in alerts if a.state.is_open), alerts[0])

    def incident_by_room(self, channel_id: str) -> Incident | None:
        """The incident whose room is ``channel_id`` (``/incident update`` run in the room)."""
        with open_session(self._engine) as s:
            return incident_store.by_room(s, channel_id)

    def incident_by_message(self, channel_id: str, ts: str) -> Incident | None:
        """The incident whose root message is ``ts`` (the **Declare incident** shortcut on it)."""
        with open_session(self._engine) as s:
            return incident_store.by_message(s, channel_id, ts)

    def active_silences(self, now: datetime) -> list[Silence]:
        with open_session(self._engine) as s:
            return silence_store.active(s, now=now)

    def covering_silence(self, wanted: Silence) -> Silence | None:
        """An active silence of exactly this rule and model that lasts at least as long as ``wanted``."""
        for s in self.active_silences(wanted.starts_at):
            if s.rule == wanted.rule and s.model == wanted.model and s.ends_at >= wanted.ends_at - COVERING_SLACK:
                return s
        return None

    # ------------------------------------------------------------------ SLOs and the review

    def slo_dashboards(
        self, config: Config, now: datetime, window: timedelta | None = None, *, model: str | None = None
    ) -> tuple[ModelDashboard, ...]:
        return slo_dashboards(self._engine, config, now, window, model=model)

    def slo_chart(self, config: Config, model: str, now: datetime, window: timedelta | None) -> bytes:
        return slo_chart(self._engine, config, model, now, window)

    def weekly_review(self, config: Config, now: datetime, window: timedelta) -> str:
        return weekly_review_text(self._engine, config, now, window)

    # ------------------------------------------------------------------ changes

    def changes(self, model: str | None, start: datetime, end: datetime) -> list[Change]:
        """What shipped to ``model`` (every model: None) in ``[start, end]``, newest first (``/changes``)."""
        return ChangeLog(self._engine).between(model, start, end)
