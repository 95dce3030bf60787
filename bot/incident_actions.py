"""Changes of a whole incident: a person's (acknowledge, resolve, release, "still on it", and the
incident-response actions) and the reminder sweep's, one transaction each.

The base of :class:`bot.service.AlertService`, which adds the alerts' own use cases (evaluation,
clicks on one alert, silences). An action on the whole incident is said once: its alerts change
quietly with it (:meth:`Recorder.alert` ``quiet``) and the incident's notification speaks for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.alerts import lifecycle, store
from bot.alerts.lifecycle import AlertState, Transition
from bot.clock import Clock
from bot.config.loader import Config
from bot.incidents import incident as incidents
from bot.incidents import response
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident, IncidentTransition
from bot.recording import Recorder, retried
from bot.silences import store as silence_store
from bot.storage.database import session as open_session

log = logging.getLogger("bot.service")
_T = TypeVar("_T")


class IncidentActions:
    def __init__(self, engine: Engine, clock: Clock, config: Callable[[], Config], recorder: Recorder) -> None:
        self._engine = engine
        self._clock = clock
        self._config = config
        self._recorder = recorder

    def remind_acknowledged(self) -> int:
        """``settings.ack_reminder``: ask "Still on it?" of acknowledged incidents quiet that long,
        and release those that did not answer (:func:`bot.incidents.response.remind_or_release`)."""
        config = self._config()
        every = config.settings.ack_reminder
        if every is None:
            return 0
        now = self._clock.now()
        with open_session(self._engine) as s, s.begin():
            try:
                changes = [
                    change
                    for incident, last in incident_store.quiet_acknowledged(s, before=now - every)
                    if (change := response.remind_or_release(incident, last, every=every, now=now)) is not None
                ]
                for change in changes:
                    self._recorder.incident(s, change, config, now)
            except store.ConcurrentChange as exc:  # someone clicked meanwhile: decide again next run
                s.rollback()
                log.info("ack reminders lost a race and will retry: %s", exc)
                return 0
        return len(changes)

    def release_incident(self, incident_id: int, *, actor: str, at: datetime | None = None) -> Incident:
        """The acknowledger lets the incident go: it fires again and climbs from where it stopped."""
        return self.change_incident(incident_id, lambda i, now: response.release(i, actor=actor, now=at or now))

    def still_on_it(self, incident_id: int, *, actor: str, at: datetime | None = None) -> Incident:
        return self.change_incident(incident_id, lambda i, now: response.still_on_it(i, actor=actor, now=at or now))

    def change_incident(
        self, incident_id: int, decide: Callable[[Incident, datetime], IncidentTransition], *, by_person: bool = True
    ) -> Incident:
        """A change of the whole incident that leaves its alerts as they are (release, a reminder's
        answer, the commander, an update …): ``decide(current, now)`` on a fresh read, saved with its
        notifications. Raises ActionRefused, LookupError or ConcurrentChange as the clicks do."""

        def attempt(s: Session) -> Incident:
            current = incident_store.get(s, incident_id)
            if current is None:
                raise LookupError(f"no incident with id {incident_id}")
            now = self._clock.now()
            return self._recorder.incident(s, decide(current, now), self._config(), now, by_person=by_person)

        return self._retried(attempt, gives_up=f"incident {incident_id} keeps changing; try again")

    def acknowledge_incident(self, incident_id: int, *, actor: str, at: datetime | None = None) -> Incident:
        """A person takes the whole incident: it and its firing alerts are acknowledged, the climb
        stops, PagerDuty hears once; the people in Slack hear one reply, not one per alert."""
        return self._act_on_incident(incident_id, incidents.acknowledge, lifecycle.acknowledge, actor, at)

    def resolve_incident(
        self, incident_id: int, *, actor: str, at: datetime | None = None, cause: str = "", fix: str = ""
    ) -> Incident:
        """A person declares the whole incident over: its open alerts resolve with it. With a
        ``cause`` or ``fix`` (the Resolve modal), the resolution note is saved in the same
        transaction, first: a refused resolve (already resolved) keeps no note, so it is written once."""

        def noted(s: Session, current: Incident, now: datetime) -> Incident:
            return incident_store.save(
                s, response.add_resolution_note(current, actor=actor, cause=cause, fix=fix, now=now)
            )

        first = noted if cause.strip() or fix.strip() else None
        return self._act_on_incident(incident_id, incidents.resolve, lifecycle.resolve, actor, at, first=first)

    def _act_on_incident(
        self,
        incident_id: int,
        decide: Callable[..., IncidentTransition],
        each: Callable[..., Transition],
        actor: str,
        at: datetime | None,
        *,
        first: Callable[[Session, Incident, datetime], Incident] | None = None,
    ) -> Incident:
        """Raises ActionRefused (with the reason) or LookupError; the loser of two clicks at once
        re-reads and is refused with what happened, as for an alert. Taken ``at`` (a kept click):
        alerts that joined the incident after the click are not acknowledged by it. ``first``: a
        change saved before the decision, in its transaction (the resolution note)."""

        def attempt(s: Session) -> Incident:
            current = incident_store.get(s, incident_id)
            if current is None:
                raise LookupError(f"no incident with id {incident_id}")
            now = self._clock.now()
            taken = at or now
            current = first(s, current, taken) if first is not None else current
            change = decide(current, actor=actor, now=taken)
            config = self._config()
            silences = silence_store.active(s, now=now)
            for alert in incident_store.open_alerts(s, incident_id):
                if each is lifecycle.acknowledge and (
                    alert.state is not AlertState.FIRING or (alert.fired_at and alert.fired_at > taken)
                ):
                    continue
                self._recorder.alert(s, each(alert, actor=actor, now=taken), config, now, silences, quiet=True)
            return self._recorder.incident(s, change, config, now, by_person=True)

        return self._retried(attempt, gives_up=f"incident {incident_id} keeps changing; try again")

    def _retried(self, attempt: Callable[[Session], _T], *, gives_up: str) -> _T:
        return retried(self._engine, attempt, gives_up=gives_up)
