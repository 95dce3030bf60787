"""Recording a decision: save an alert's or an incident's transition, keep the incident in step
with its alerts, and enqueue what people hear, all in the caller's transaction.

The service's use cases (:mod:`bot.service`) each load, decide with the pure core, and hand the
transitions here; this is the one place that turns a transition into rows and notifications.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.alerts import lifecycle, store
from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, EventKind, Transition
from bot.config.choices import alert_channel
from bot.config.loader import Config
from bot.incidents import incident as core
from bot.incidents import store as incident_store
from bot.incidents import tracker
from bot.incidents.incident import Incident, IncidentEvent, IncidentEventKind, IncidentTransition
from bot.incidents.tracker import Group
from bot.notify.dispatch import Dispatcher, ReadAhead
from bot.notify.outbox import enqueue, release_held
from bot.notify.outbox_rows import Enqueued, enqueue_many
from bot.notify.slack_postmortem import POSTMORTEM
from bot.silences.silence import Silence
from bot.silences.silence import silenced as is_silenced
from bot.storage.database import session as open_session

_T = TypeVar("_T")

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
        # an escalation or a click on the incident names no model: its first alert's pages; the
        # alerts read for that are handed on, so the notifications do not read them again
        members = None if model is not None else incident_store.members(s, change.incident)
        lead_model = model if model is not None else (members[0].model if members else "")
        before = change.incident.paged_keys
        placed = self._with_pages(change, config, lead_model)
        saved = incident_store.save(s, IncidentTransition(placed.incident, _as_stored(placed, before)))
        done = IncidentTransition(saved, change.event)
        self._after_save(s, done, config, now, before=before, model=lead_model, by_person=by_person, members=members)
        return saved

    def _with_pages(self, change: IncidentTransition, config: Config, model: str) -> IncidentTransition:
        """The transition with the routing keys its event newly pages added to the incident's
        (recorded before it is saved, so a page happens once); ``model``: whose routing key pages."""
        paged = self._dispatch.pages(change.incident, change.event, config, model=model)
        if not paged:
            return change
        return replace(change, incident=replace(change.incident, paged_keys=(*change.incident.paged_keys, *paged)))

    def climbs(
        self,
        s: Session,
        due: Sequence[Incident],
        step: Callable[[Incident], IncidentTransition | None],
        config: Config,
        now: datetime,
    ) -> int:
        """Record an escalation sweep: each of the ``due`` incidents (stored, locked by the caller)
        takes ``step`` until it returns None, as :meth:`incident` would record each step one by
        one, with batched writes; returns how many steps ran.

        The decisions, events, versions and idempotency keys are those of the one-by-one path
        (each step's pages decided on the incident as the step before left it); only the writes
        differ: the incidents' alerts read in one query, each incident written once at the
        version its steps bring it to, every event and outbox row in one INSERT, and what the
        rows ask of the database (emails before, what shipped) read for the whole sweep. A sweep
        of 500 due steps is a handful of statements instead of thousands (issue 16, point 3).
        The chat rows a step writes are never held for business hours, so releasing the held
        ones once, after every row is written, releases what one step at a time would."""
        members = incident_store.alerts_of(s, [incident.id for incident in due if incident.id is not None])
        planned: list[tuple[IncidentTransition, tuple[str, ...], str]] = []
        moved: list[tuple[Incident, list[IncidentEvent]]] = []
        for incident in due:
            theirs = members.get(incident.id or 0, [])
            lead_model = theirs[0].model if theirs else ""
            current, stored = incident, []
            while (change := step(current)) is not None:
                before = change.incident.paged_keys
                placed = self._with_pages(change, config, lead_model)
                current = replace(placed.incident, version=current.version + 1)
                stored.append(_as_stored(placed, before))
                planned.append((IncidentTransition(current, change.event), before, lead_model))
            if stored:
                moved.append((current, stored))
        incident_store.save_moved(s, moved)
        # a step pages now exactly when it added routing keys (Dispatcher.pages, the same routing)
        paging = [done.incident for done, before, _ in planned if len(done.incident.paged_keys) > len(before)]
        reads = ReadAhead(s, config, members, paging)
        rows: list[Enqueued] = []
        for done, before, lead_model in planned:
            said = self._dispatch.incident_rows(
                done.incident,
                done.event,
                config,
                model=lead_model,
                paged_before=before,
                by_person=False,
                members=reads.members(done.incident),
                reads=reads,
            )
            reads.enqueued(said)
            rows += said
            _log_incident(done.incident, done.event, before)
        enqueue_many(s, rows)
        release_held(s, incident_ids={incident.id or 0 for incident in paging}, now=now)
        return len(planned)

    def _after_save(
        self,
        s: Session,
        saved: IncidentTransition,
        config: Config,
        now: datetime,
        *,
        before: tuple[str, ...],
        model: str,
        by_person: bool = False,
        members: list[Alert] | None = None,
    ) -> None:
        """Enqueue what people hear of a saved incident transition (at the end of the pass, inside
        :meth:`whole_pass`), and its postmortem when it resolves with a room, and log it;
        ``before``: the routing keys it had paged before this one; ``members``: its alerts, read
        in this transaction, when the notifications go out now (a pass's deferred ones read them
        at the end of the pass, when later joins have happened)."""
        incident, event = saved.incident, saved.event
        dispatch = partial(
            self._dispatch.incident_event,
            s,
            incident,
            event,
            config,
            now,
            model=model,
            paged_before=before,
            by_person=by_person,
        )
        deferred: list[Callable[[], None]] | None = getattr(self._local, "deferred", None)
        if deferred is None:
            dispatch = partial(dispatch, members=members)
        after = [dispatch]
        if _leaves_a_postmortem(incident, event, self._dispatch.routes.channels):
            after.append(partial(_enqueue_postmortem, s, incident, now))
        for step in after:
            if deferred is None:
                step()
            else:
                deferred.append(step)
        _log_incident(incident, event, before)

    def whole_pass_of(
        self,
        s: Session,
        transitions: Sequence[Transition],
        config: Config,
        now: datetime,
        silences: list[Silence],
        *,
        storms: set[tuple[str, str]],
    ) -> None:
        """Record an evaluation pass's transitions: new alerts that wait for ``for:`` and new
        unsilenced alerts that open incidents of groups (or storms) with none open are written
        together (:meth:`fired_together`); every other transition one by one (:meth:`alert`).

        Batching changes how rows are written, never the order of the decisions: when another
        transition of the pass touches a group a new alert belongs to (an alert of its incident
        resolving first, a pending alert firing into it), the whole pass is recorded one by one,
        in order, as it would have been."""
        waiting: list[Transition] = []
        fresh: list[tuple[Transition, Group]] = []
        rest: list[Transition] = []
        for change in transitions:
            alert, kind = change.alert, change.event.kind
            if alert.id is None and kind is EventKind.PENDING:
                waiting.append(change)
            elif (
                alert.id is None
                and kind is EventKind.FIRED
                and not is_silenced(silences, rule=alert.rule, model=alert.model, now=now)
            ):
                fresh.append((change, _group(alert, config, storms)))
            else:
                rest.append(change)
        open_ids = incident_store.open_groups(s, {group.key for _, group in fresh})
        with self.whole_pass():
            if _entangled(rest, fresh, open_ids, config, storms):
                for change in transitions:
                    self.alert(s, change, config, now, silences, storms=storms)
                return
            for alert, change in zip(store.insert_new(s, waiting), waiting, strict=True):
                _log_transition(alert, change.event, silenced=False)
            self.fired_together(s, [(c, g) for c, g in fresh if g.key not in open_ids], config, now)
            for change in rest + [c for c, g in fresh if g.key in open_ids]:
                self.alert(s, change, config, now, silences, storms=storms)

    def fired_together(
        self, s: Session, changes: Sequence[tuple[Transition, Group]], config: Config, now: datetime
    ) -> list[Alert]:
        """Record new alerts (no row yet) that fire unsilenced in one pass and open the incidents
        of their groups (none is open), as :meth:`alert` would one by one, with batched writes.

        The decisions are the same pure ones in the same order (the group's first alert opens
        its incident, the rest join it, each step's pages decided on the incident so far), so the
        events, versions and idempotency keys are those of the one-by-one path; only the writes
        differ: every new incident in one flush, at the version its events bring it to, then every
        alert. A pass that opens a thousand alerts is a handful of statements (issue 16)."""
        groups: dict[str, list[tuple[Transition, IncidentTransition, tuple[str, ...]]]] = {}
        for change, group in changes:
            steps = groups.setdefault(group.key, [])
            if steps:
                placed = core.join(steps[-1][1].incident, change.alert, now=now)
            else:
                placed = group.opened_by(change.alert, now=now)
            before = placed.incident.paged_keys
            placed = self._with_pages(placed, config, change.alert.model)
            placed = replace(placed, incident=replace(placed.incident, version=len(steps) + 1))
            steps.append((change, placed, before))
        opened = [
            (steps[-1][1].incident, [_as_stored(placed, before) for _, placed, before in steps])
            for steps in groups.values()
        ]
        saved = incident_store.insert_new(s, opened)
        alerts: list[Transition] = []
        urgent: list[bool] = []  # as the one-by-one path: the incident as this alert left it pages
        for incident, steps in zip(saved, groups.values(), strict=True):
            for change, placed, before in steps:
                snapshot = replace(placed, incident=replace(placed.incident, id=incident.id))
                self._after_save(s, snapshot, config, now, before=before, model=change.alert.model)
                alerts.append(replace(change, alert=replace(change.alert, incident_id=incident.id)))
                urgent.append(placed.incident.severity in config.routing.page)
        recorded = store.insert_new(s, alerts)
        rows: list[Enqueued] = []
        for change, alert, pages in zip(alerts, recorded, urgent, strict=True):
            _log_transition(alert, change.event, silenced=False)
            rows += self._dispatch.alert_rows(alert, change.event, config, now, silenced=False, urgent=pages)
        enqueue_many(s, rows)
        return recorded

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


def retried(engine: Engine, attempt: Callable[[Session], _T], *, gives_up: str) -> _T:
    """Run ``attempt`` in a transaction; when another writer changed what it read (the
    optimistic version check), roll back and run it again on a fresh read, three times at most,
    then raise :class:`~bot.errors.ConcurrentChange` with ``gives_up``. Every use case that
    loads, decides and saves goes through here, so two clicks at once end the same way everywhere."""
    for _ in range(3):
        with open_session(engine) as s, s.begin():
            try:
                return attempt(s)
            except store.ConcurrentChange:
                s.rollback()
    raise store.ConcurrentChange(gives_up)


def _group(alert: Alert, config: Config, storms: set[tuple[str, str]]) -> Group:
    return tracker.group_of(alert, config, storm=(alert.rule, alert_channel(config, alert.rule, alert.model)) in storms)


def _entangled(
    rest: Sequence[Transition],
    fresh: Sequence[tuple[Transition, Group]],
    open_ids: Mapping[str, int],
    config: Config,
    storms: set[tuple[str, str]],
) -> bool:
    """Whether a transition recorded one by one touches a group a new alert belongs to: then the
    order between them decides (a resolve before a join closes the incident the join would keep open)."""
    keys = {group.key for _, group in fresh}
    incidents = {open_ids[key] for key in keys if key in open_ids}
    for change in rest:
        alert = change.alert
        if alert.incident_id is not None and alert.incident_id in incidents:
            return True
        if change.event.kind is EventKind.FIRED and _group(alert, config, storms).key in keys:
            return True
    return False


def _as_stored(placed: IncidentTransition, before: tuple[str, ...]) -> IncidentEvent:
    """The event as :meth:`Recorder.incident` stores it: naming the keys it paged, for the timeline."""
    paged = list(placed.incident.paged_keys[len(before) :])
    return replace(placed.event, data={**placed.event.data, "paged": paged}) if paged else placed.event


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


def _log_incident(incident: Incident, event: IncidentEvent, before: tuple[str, ...]) -> None:
    """The one log line of an incident transition; ``before``: the routing keys it had paged before it."""
    paged = len(incident.paged_keys) - len(before)
    log.info(
        "incident %s %s: %s (%s)%s",
        incident.id,
        event.kind.value,
        incident.group_key,
        incident.severity.value,
        f", paged {paged} service(s)" if paged else "",
    )


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
