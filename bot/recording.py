"""Recording a decision: save an alert's or an incident's transition, keep the incident in step
with its alerts, and enqueue what people hear, all in the caller's transaction.

The service's use cases (:mod:`bot.service`) each load, decide with the pure core, and hand the
transitions here; this is the one place that turns a transition into rows and notifications.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from functools import partial

from sqlmodel import Session

from bot.alerts import lifecycle, store
from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, EventKind, Transition
from bot.config.choices import alert_channel
from bot.config.loader import Config
from bot.incidents import store as incident_store
from bot.incidents import tracker
from bot.incidents.incident import Incident, IncidentEvent, IncidentEventKind, IncidentTransition
from bot.notify.dispatch import Dispatcher
from bot.notify.outbox import enqueue
from bot.notify.slack_postmortem import POSTMORTEM
from bot.silences.silence import Silence
from bot.silences.silence import silenced as is_silenced

POSTMORTEM_CHANNEL = "slack"
"""Where postmortem drafts go: the incident's room is a Slack channel."""

log = logging.getLogger("bot.service")
"""The transitions' log lines keep the service's logger name, the one operators filter on (and
the lines were written under before recording had its own module)."""


class Recorder:
    """Saves transitions with their incident and notifications; one per service."""

    def __init__(self, dispatch: Dispatcher) -> None:
        self._dispatch = dispatch
        self._local = threading.local()
        """Per thread: the incident notifications of the pass being recorded (see :meth:`whole_pass`)."""

    def alert(
        self,
        s: Session,
        change: Transition,
        config: Config,
        now: datetime,
        silences: list[Silence],
        *,
        storms: set[tuple[str, str]] | None = None,
        quiet: bool = False,
    ) -> Alert:
        """Save one alert transition, keep its incident in step, and enqueue what people hear, in
        the caller's transaction.

        A firing alert joins its group's incident (or a storm's); when its incident's last alert
        closes, or its last firing one is acknowledged, the incident follows. A silenced alert's
        transitions are stored (its history is complete) but reach no one and join no incident
        until the silence ends. ``quiet``: part of a person's action on the whole incident, which
        says it once.
        """
        alert, event = change.alert, change.event
        muted = event.kind.notifies and is_silenced(silences, rule=alert.rule, model=alert.model, now=now)
        incident: Incident | None = None
        if event.kind is EventKind.FIRED and not muted:
            channel = alert_channel(config, alert.rule, alert.model)
            placed = tracker.place(s, alert, config, now, storm=(alert.rule, channel) in (storms or set()))
            incident = self.incident(s, placed, config, now, model=alert.model)
            alert = replace(alert, incident_id=incident.id)
        saved = store.save(s, replace(change, alert=alert))
        _log_transition(saved, event, silenced=muted)
        follow: IncidentTransition | None = None
        if quiet:
            pass  # the person's action on the whole incident records the incident's change itself
        elif event.kind in (EventKind.RESOLVED, EventKind.AUTO_RESOLVED):
            follow = tracker.after_close(s, saved, actor=event.actor, now=now)
        elif event.kind is EventKind.ACKNOWLEDGED:
            follow = tracker.after_acknowledge(s, saved, actor=event.actor, now=now)
        if follow is not None:
            incident = self.incident(s, follow, config, now, model=saved.model)
        if event.kind.notifies and not quiet:
            if incident is None and saved.incident_id is not None:
                incident = incident_store.get(s, saved.incident_id)
            urgent = incident is not None and incident.severity in config.routing.page
            self._dispatch.alert_event(s, saved, event, config, now, silenced=muted, urgent=urgent)
        return saved

    def incident(
        self,
        s: Session,
        change: IncidentTransition,
        config: Config,
        now: datetime,
        *,
        model: str | None = None,
        by_person: bool = False,
    ) -> Incident:
        """Save an incident transition with the pages it newly makes, and enqueue them (and, for an
        escalation or a person's action on the whole incident, the chat rows). ``model``: whose
        PagerDuty routing key pages (default: the incident's first alert's model)."""
        lead_model = model if model is not None else _first_model(s, change.incident)
        before = change.incident.paged_keys
        paged = self._dispatch.pages(change.incident, change.event, config, model=lead_model)
        incident = replace(change.incident, paged_keys=(*before, *paged)) if paged else change.incident
        # the stored event says whom it paged, for the timeline (bot.incidents.timeline)
        stored = replace(change.event, data={**change.event.data, "paged": paged}) if paged else change.event
        saved = incident_store.save(s, IncidentTransition(incident, stored))
        dispatch = partial(
            self._dispatch.incident_event,
            s,
            saved,
            change.event,
            config,
            now,
            model=lead_model,
            paged_before=before,
            by_person=by_person,
        )
        deferred: list[Callable[[], None]] | None = getattr(self._local, "deferred", None)
        after = [dispatch]
        if _leaves_a_postmortem(saved, change.event, self._dispatch.routes.channels):
            after.append(partial(_enqueue_postmortem, s, saved, now))
        for step in after:
            if deferred is None:
                step()
            else:
                deferred.append(step)
        log.info(
            "incident %s %s: %s (%s)%s",
            saved.id,
            change.event.kind.value,
            saved.group_key,
            saved.severity.value,
            f", paged {len(paged)} service(s)" if paged else "",
        )
        return saved

    @contextmanager
    def whole_pass(self) -> Iterator[None]:
        """Incident notifications are written once the whole pass is recorded (in its transaction),
        so they describe the incident as the pass leaves it: a storm's page lists every model."""
        self._local.deferred = []
        try:
            yield
            for dispatch in self._local.deferred:
                dispatch()
        finally:
            self._local.deferred = None


def _leaves_a_postmortem(incident: Incident, event: IncidentEvent, channels: Collection[str]) -> bool:
    """An incident with a room leaves a postmortem draft there when it resolves (and Slack is here)."""
    resolved = event.kind in (IncidentEventKind.RESOLVED, IncidentEventKind.AUTO_RESOLVED)
    return resolved and bool(incident.room_id) and POSTMORTEM_CHANNEL in channels


def _enqueue_postmortem(s: Session, incident: Incident, now: datetime) -> None:
    """The row names the incident only: the draft is written when it is delivered
    (:mod:`bot.notify.slack_postmortem`), from the data as it then is."""
    enqueue(
        s,
        channel=POSTMORTEM_CHANNEL,
        kind=POSTMORTEM,
        payload={"incident_id": incident.id},
        idempotency_key=f"{POSTMORTEM_CHANNEL}:postmortem:{incident.id}",
        now=now,
        incident_id=incident.id,
    )


def _first_model(s: Session, incident: Incident) -> str:
    members = incident_store.alerts(s, incident.id) if incident.id is not None else []
    return members[0].model if members else ""


def _log_transition(alert: Alert, event: lifecycle.Event, *, silenced: bool) -> None:
    """The one log line of a transition: INFO for what people hear about (fired, acknowledged,
    resolved, escalated), DEBUG for pending. Written in the transaction that saves it, so a pass
    that loses a race to another replica and is rolled back may log a change it then makes again."""
    log.log(
        logging.INFO if event.kind.notifies else logging.DEBUG,
        "alert %s %s: %s (%s)%s%s%s",
        alert.id,
        event.kind.value,
        alert.key,
        alert.severity.value,
        "" if event.actor == SYSTEM_ACTOR else f" by {event.actor}",
        f", {event.detail}" if event.detail else "",
        ", silenced: no one is told" if silenced else "",
    )
