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
from dataclasses import dataclass, field, replace
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


@dataclass
class Cluster:
    """A pass's transitions that touch one incident, in the pass's order: new alerts firing into
    it and its stored alerts resolving; or new alerts firing into a group with no open incident,
    whose first opens it (``incident_id`` None). Stored alerts that resolve outside any incident
    form one cluster too (``incident_id`` None, no ``group``)."""

    incident_id: int | None
    group: Group | None = None
    """Where its new alerts are placed (None: it has none)."""
    changes: list[Transition] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    """One incident transition of a batch (a sweep's climb, a pass's cluster): as
    :meth:`Recorder.incident` saves it (``done``, at its version), the event as stored (naming
    what it paged), the routing keys paged before it, and the model whose routing key pages."""

    done: IncidentTransition
    stored: IncidentEvent
    before: tuple[str, ...]
    model: str


@dataclass
class Plan:
    """What a cluster's transitions do (:meth:`Recorder._planned`): ``read``, its incident as
    stored (None: the cluster opens it); the incident's steps; and each alert transition with
    the incident as that transition left it (what decides whether its notification is urgent)."""

    read: Incident | None
    steps: list[Step] = field(default_factory=list)
    alerts: list[tuple[Transition, Incident | None]] = field(default_factory=list)
    incident_id: int | None = None
    """The incident's id, once written."""

    @property
    def written(self) -> tuple[Incident, list[IncidentEvent]]:
        """The incident as its last step leaves it, with every step's stored event."""
        return self.steps[-1].done.incident, [step.stored for step in self.steps]


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

    def _stepped(self, change: IncidentTransition, config: Config, model: str, *, version: int) -> Step:
        """``change`` as a batch records it, deciding what :meth:`incident` decides without its
        write: with the routing keys it newly pages (``model``'s), at ``version``, and its event
        as stored."""
        before = change.incident.paged_keys
        placed = self._with_pages(change, config, model)
        done = IncidentTransition(replace(placed.incident, version=version), change.event)
        return Step(done, _as_stored(placed, before), before, model)

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
        planned: list[Step] = []
        moved: list[tuple[Incident, list[IncidentEvent]]] = []
        for incident in due:
            theirs = members.get(incident.id or 0, [])
            lead_model = theirs[0].model if theirs else ""
            current, stored = incident, []
            while (change := step(current)) is not None:
                taken = self._stepped(change, config, lead_model, version=current.version + 1)
                current = taken.done.incident
                stored.append(taken.stored)
                planned.append(taken)
            if stored:
                moved.append((current, stored))
        incident_store.save_moved(s, moved)
        # a step pages now exactly when it added routing keys (Dispatcher.pages, the same routing)
        paging = [t.done.incident for t in planned if len(t.done.incident.paged_keys) > len(t.before)]
        reads = ReadAhead(s, config, members, paging)
        rows: list[Enqueued] = []
        for taken in planned:
            done = taken.done
            said = self._dispatch.incident_rows(
                done.incident,
                done.event,
                config,
                model=taken.model,
                paged_before=taken.before,
                by_person=False,
                members=reads.members(done.incident),
                reads=reads,
            )
            reads.enqueued(said)
            rows += said
            _log_incident(done.incident, done.event, taken.before)
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
        """Record an evaluation pass's transitions, most of them written together: new alerts
        that wait for ``for:``, and per incident the new unsilenced alerts that fire into it (or
        open it) and its stored alerts that resolve (:class:`Cluster`). Every other transition is
        recorded one by one (:meth:`alert`), in the pass's order.

        Batching changes how rows are written, never the order of the decisions: when a
        transition recorded one by one touches an incident or a group that a cluster touches (a
        pending alert firing into an incident whose alerts resolve in the same pass), the
        cluster is recorded one by one with it, in order, as it would have been."""
        placing: dict[int, Group] = {}
        """Where each unsilenced firing alert without an incident is placed, by its index."""
        for index, change in enumerate(transitions):
            alert = change.alert
            places = change.event.kind is EventKind.FIRED and alert.incident_id is None
            if places and not is_silenced(silences, rule=alert.rule, model=alert.model, now=now):
                placing[index] = _group(alert, config, storms)
        open_ids = incident_store.open_groups(s, {group.key for group in placing.values()})
        waiting: list[Transition] = []
        clusters: dict[tuple[str, object], Cluster] = {}
        alone: list[int] = []
        for index, change in enumerate(transitions):
            alert, group = change.alert, placing.get(index)
            if alert.id is None and change.event.kind is EventKind.PENDING:
                waiting.append(change)
            elif alert.id is None and group is not None:
                opened = open_ids.get(group.key)
                key: tuple[str, object] = ("group", group.key) if opened is None else ("incident", opened)
                cluster = clusters.setdefault(key, Cluster(opened))
                cluster.group = group
                cluster.changes.append(change)
            elif alert.id is not None and change.event.kind in _CLOSING:
                clusters.setdefault(("incident", alert.incident_id), Cluster(alert.incident_id)).changes.append(change)
            else:
                alone.append(index)
        touched = {key for index in alone for key in _touches(transitions[index], placing.get(index), open_ids)}
        plans = self._planned(s, [c for key, c in clusters.items() if key not in touched], config, now)
        written = {id(change) for change in waiting} | {id(c) for plan in plans for c, _ in plan.alerts}
        with self.whole_pass():
            for alert, change in zip(store.insert_new(s, waiting), waiting, strict=True):
                _log_transition(alert, change.event, silenced=False)
            self._write_plans(s, plans, config, now, silences)
            for change in transitions:
                if id(change) not in written:
                    self.alert(s, change, config, now, silences, storms=storms)

    def _planned(self, s: Session, clusters: Sequence[Cluster], config: Config, now: datetime) -> list[Plan]:
        """What each cluster's transitions do to its incident, decided in the pass's order as
        :meth:`alert` would one by one, once the incidents and their open alerts are read: a new
        alert joins the incident as it stands (or opens its group's), a resolving alert leaves it,
        and the incident resolves with its last open alert; each step's pages are decided on the
        incident as the step before left it. A cluster whose incident resolves before another
        alert fires into its group (which would open a second incident) gets no plan: it is
        recorded one by one."""
        ids = sorted({c.incident_id for c in clusters if c.incident_id is not None})
        incidents = incident_store.by_ids(s, ids)
        still_open = incident_store.open_alert_counts(s, ids)
        plans: list[Plan] = []
        for cluster in clusters:
            current = incidents.get(cluster.incident_id or 0)
            plan = Plan(read=current)
            left = still_open.get(cluster.incident_id or 0, 0)
            for change in cluster.changes:
                alert = change.alert
                step: IncidentTransition | None = None
                if alert.id is None:  # fires into the group
                    if current is not None and not current.state.is_open:
                        break
                    if current is not None:
                        step = core.join(current, alert, now=now)
                    elif cluster.group is not None:
                        step = cluster.group.opened_by(alert, now=now)
                    left += 1
                else:
                    left -= 1
                    if current is not None:
                        step = core.alert_closed(current, still_open=left, actor=change.event.actor, now=now)
                if step is not None:
                    version = (current.version if current else 0) + 1
                    taken = self._stepped(step, config, alert.model, version=version)
                    current = taken.done.incident
                    plan.steps.append(taken)
                plan.alerts.append((change, current))
            else:
                plans.append(plan)
        return plans

    def _write_plans(
        self, s: Session, plans: Sequence[Plan], config: Config, now: datetime, silences: list[Silence]
    ) -> None:
        """Write what :meth:`_planned` decided: the new incidents in one INSERT and the stored ones
        in one UPDATE sent with each row's values (each at the version its steps bring it to, with
        all their events), each step's notifications as :meth:`incident` enqueues them, then the
        new alerts in one INSERT, the resolving ones in one UPDATE, and every alert's
        notifications in one INSERT. A pass that opens a thousand alerts, or a flapping fleet's
        that opens and resolves dozens in a storm, is a handful of statements (issue 16)."""
        opened = [plan for plan in plans if plan.read is None and plan.steps]
        created = incident_store.insert_new(s, [plan.written for plan in opened])
        incident_store.save_moved(s, [plan.written for plan in plans if plan.read is not None and plan.steps])
        incident_ids = {id(plan): incident.id for plan, incident in zip(opened, created, strict=True)}
        for plan in plans:
            incident_id = incident_ids.get(id(plan), plan.read.id if plan.read is not None else None)
            for step in plan.steps:
                done = IncidentTransition(replace(step.done.incident, id=incident_id), step.done.event)
                self._after_save(s, done, config, now, before=step.before, model=step.model)
            plan.incident_id = incident_id
        fired = [(c, plan) for plan in plans for c, _ in plan.alerts if c.alert.id is None]
        placed = [replace(c, alert=replace(c.alert, incident_id=plan.incident_id)) for c, plan in fired]
        closing = [c for plan in plans for c, _ in plan.alerts if c.alert.id is not None]
        saved = dict(zip([id(c) for c, _ in fired], store.insert_new(s, placed), strict=True))
        saved.update(zip(map(id, closing), store.save_moved(s, closing), strict=True))
        rows: list[Enqueued] = []
        for plan in plans:
            for change, incident in plan.alerts:
                alert, event = saved[id(change)], change.event
                muted = event.kind.notifies and is_silenced(silences, rule=alert.rule, model=alert.model, now=now)
                _log_transition(alert, event, silenced=muted)
                if event.kind.notifies:  # as one by one: urgent when the incident as it left it pages
                    urgent = incident is not None and incident.severity in config.routing.page
                    rows += self._dispatch.alert_rows(alert, event, config, now, silenced=muted, urgent=urgent)
        enqueue_many(s, rows)

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


_CLOSING = (EventKind.RESOLVED, EventKind.AUTO_RESOLVED)
"""The transitions of stored alerts a pass records together (in their incident's :class:`Cluster`)."""


def _touches(change: Transition, placed: Group | None, open_ids: Mapping[str, int]) -> set[tuple[str, object]]:
    """The incidents and groups recording ``change`` reads or writes: its alert's incident, and
    for an alert that ``placed`` puts in a group, that group and its open incident. Two
    transitions that touch one of the same are recorded in the pass's order."""
    touched: set[tuple[str, object]] = set()
    if change.alert.incident_id is not None:
        touched.add(("incident", change.alert.incident_id))
    if placed is not None:
        touched.add(("group", placed.key))
        if placed.key in open_ids:
            touched.add(("incident", open_ids[placed.key]))
    return touched


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
