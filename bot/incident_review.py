"""Learning from an incident: its timeline, the messages marked ⏱ in its room, its resolution note
and the postmortem draft it leaves at resolve. Use cases and reads of the service layer.

Kept beside :mod:`bot.service` rather than in it: the service changes alerts and incidents as
they happen; this module writes down what happened (notes, marks) and measures it afterwards
(:meth:`IncidentReview.facts`, from stored samples, SLOs and changes), for the room, the CLI
(``incident-bot postmortem <id>``) and the Slack notifier (which is handed :meth:`draft`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.alerts import store as alert_store
from bot.alerts.lifecycle import Alert
from bot.changes.log import made_between
from bot.clock import Clock
from bot.config.loader import Config
from bot.errors import ActionRefused, MissingExtra
from bot.incidents import response, timeline
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident, IncidentEvent, IncidentEventKind
from bot.metrics import store as metric_store
from bot.notify.slack_postmortem import PostmortemDraft
from bot.review.metric_chart import render_metric_chart
from bot.review.postmortem import (
    AlertImpact,
    BudgetImpact,
    CostImpact,
    PostmortemFacts,
    render_markdown,
    summary_text,
)
from bot.service import AlertService
from bot.silences import store as silence_store
from bot.slo.budget import spent_between
from bot.slo.service import load_series, specs_of
from bot.storage.database import session as open_session

log = logging.getLogger(__name__)
_T = TypeVar("_T")

CHART_LEAD = timedelta(hours=1)
"""A chart starts this long before the incident: what "normal" looked like."""
CHANGES_LISTED = 10
NOT_DRAWN = "Charts are drawn for the room's copy of this draft (PNG files beside it)."
COST_UNITS = frozenset({"usd", "$"})
"""Catalogue units (``metrics: - {name: daily_cost_usd, unit: USD}``) that make a metric a cost."""


class IncidentReview:
    def __init__(
        self, engine: Engine, clock: Clock, config: Callable[[], Config], service: AlertService | None = None
    ) -> None:
        """``service``: the writes' transactions (not needed to read: ``incident-bot postmortem``)."""
        self._engine = engine
        self._clock = clock
        self._config = config
        self._service = service

    # ------------------------------------------------------------------ writing down

    def mark(self, room_id: str, *, actor: str, text: str, data: Mapping[str, object]) -> Incident | None:
        """Add a room message (⏱ or **Add to timeline**) to the timeline of the incident whose room
        is ``room_id``; ``data["ts"]`` names the message, and a message marked twice is kept once.
        ``None``: the channel is no incident's room. Raises ActionRefused when already marked."""

        def attempt(s: Session) -> Incident | None:
            incident = incident_store.by_room(s, room_id)
            if incident is None or incident.id is None:
                return None
            if any(_same_message(e, data) for e in incident_store.history(s, incident.id)):
                raise ActionRefused("This message is already on the incident's timeline.")
            now = self._clock.now()
            return incident_store.save(s, response.note(incident, actor=actor, text=text, now=now, data=data))

        return self._write(attempt, gives_up=f"the incident of room {room_id} keeps changing")

    def add_resolution_note(self, incident_id: int, *, actor: str, cause: str, fix: str) -> Incident:
        """The note of an incident already resolved (auto-resolved: nobody was asked at resolve).
        Raises LookupError, or ActionRefused when it has one already (two people at once: one wins)."""

        def attempt(s: Session) -> Incident:
            incident = incident_store.get(s, incident_id)
            if incident is None:
                raise LookupError(f"no incident with id {incident_id}")
            if incident.resolution_note:
                by = incident.resolution_note.get("by") or "someone"
                raise ActionRefused(f"{by} already wrote this incident's resolution note.")
            now = self._clock.now()
            return incident_store.save(
                s, response.add_resolution_note(incident, actor=actor, cause=cause, fix=fix, now=now)
            )

        return self._write(attempt, gives_up=f"incident {incident_id} keeps changing; try again")

    def _write(self, attempt: Callable[[Session], _T], *, gives_up: str) -> _T:
        if self._service is None:
            raise RuntimeError("this IncidentReview reads only: it was built without the service")
        return self._service.transaction(attempt, gives_up=gives_up)

    # ------------------------------------------------------------------ reading

    def room_incident(self, room_id: str) -> Incident | None:
        """The incident whose room is the channel ``room_id``, if any."""
        with open_session(self._engine) as s:
            return incident_store.by_room(s, room_id)

    def facts(self, incident_id: int, *, charts: bool = True) -> tuple[PostmortemFacts, dict[str, bytes]] | None:
        """Everything the postmortem says, measured from stored data, and its charts by file name."""
        config, now = self._config(), self._clock.now()
        with open_session(self._engine) as s:
            incident = incident_store.get(s, incident_id)
            if incident is None:
                return None
            members = incident_store.alerts(s, incident_id)
            history = incident_store.history(s, incident_id)
            entries = timeline_of(s, incident, now, members=members, history=history)
            end = incident.resolved_at or now
            models = tuple(sorted({m.model for m in members}))
            start = incident.opened_at
            window = config.settings.change_window
            drawn, missing = _charts(s, config, incident, members, end) if charts else ({}, NOT_DRAWN)
            facts = PostmortemFacts(
                incident=incident,
                models=models,
                rules=tuple(sorted({m.rule for m in members})),
                alerts=tuple(_fired(m, now) for m in members if m.fired_at is not None),
                budgets=tuple(_budgets(s, config, models, start, end)),
                costs=tuple(_costs(s, config, models, start, end)),
                acknowledged=_first(history, IncidentEventKind.ACKNOWLEDGED),
                escalations=sum(1 for e in history if e.kind is IncidentEventKind.ESCALATED),
                pages=tuple(e for e in entries if e.kind == "paged"),
                changes=tuple(made_between(s, list(models), start - window, start, limit=CHANGES_LISTED)),
                change_window=window,
                timeline=tuple(entries),
                charts=tuple(drawn),
                charts_missing=missing,
            )
        return facts, drawn

    def draft(self, incident_id: int) -> PostmortemDraft | None:
        """The postmortem as the room gets it (the Slack notifier's :data:`~bot.notify.slack_postmortem.Drafts`)."""
        found = self.facts(incident_id)
        if found is None:
            return None
        facts, charts = found
        i = facts.incident
        return PostmortemDraft(
            incident_id=incident_id,
            room_id=i.room_id,
            resolved_at=i.resolved_at,
            filename=f"postmortem-incident-{incident_id}.md",
            markdown=render_markdown(facts),
            summary=summary_text(facts),
            charts=charts,
            needs_note=not i.resolution_note,
        )

    def markdown(self, incident_id: int, *, charts: bool = False) -> str | None:
        """The draft's Markdown (``incident-bot postmortem <id>``; charts are only drawn for the room)."""
        found = self.facts(incident_id, charts=charts)
        return render_markdown(found[0]) if found else None


def _same_message(event: IncidentEvent, data: Mapping[str, object]) -> bool:
    return event.kind is IncidentEventKind.NOTED and bool(data.get("ts")) and event.data.get("ts") == data.get("ts")


def timeline_of(
    s: Session,
    incident: Incident,
    now: datetime,
    *,
    members: Sequence[Alert] | None = None,
    history: Sequence[IncidentEvent] | None = None,
) -> list[timeline.Entry]:
    """The incident's timeline, oldest first, from its history, its alerts' and the silences set
    while it was open (``now`` ends an open incident's span); ``members``/``history`` if read already."""
    incident_id = incident.id or 0
    members = incident_store.alerts(s, incident_id) if members is None else members
    history = incident_store.history(s, incident_id) if history is None else history
    histories = alert_store.histories(s, [m.id for m in members if m.id is not None])
    silences = silence_store.started_between(s, since=incident.opened_at, until=incident.resolved_at or now)
    return timeline.build(incident, history, members, histories, silences)


def _first(history: Sequence[IncidentEvent], kind: IncidentEventKind) -> tuple[datetime, str] | None:
    return next(((e.at, e.actor) for e in history if e.kind is kind), None)


def _fired(alert: Alert, now: datetime) -> AlertImpact:
    fired = alert.fired_at or alert.started_at
    end = alert.resolved_at or now
    return AlertImpact(alert.key, alert.title, fired, alert.resolved_at, (end - fired).total_seconds() / 60)


def _budgets(s: Session, config: Config, models: Sequence[str], start: datetime, end: datetime) -> list[BudgetImpact]:
    """Each SLO of the models: the share of its budget spent in ``[start, end]`` (:func:`spent_between`)."""
    out = []
    for model in models:
        for spec in specs_of(config, model=model):
            spent = spent_between(spec, load_series(s, spec, end), start, end)
            out.append(BudgetImpact(model, spec.label, spec.window, spent))
    return out


def _costs(s: Session, config: Config, models: Sequence[str], start: datetime, end: datetime) -> list[CostImpact]:
    """Each cost metric the models were measured in while it lasted, against ``<metric>_baseline``."""
    costs = [name for name, info in config.metrics.items() if info.unit.strip().lower() in COST_UNITS]
    out = []
    for model in models:
        settings = config.models[model].settings if model in config.models else {}
        for name in costs:
            values = [
                float(p.value)
                for p in metric_store.series(s, model, name, since=start, until=end)
                if isinstance(p.value, int | float)
            ]
            if values:
                baseline = settings.get(f"{name}_baseline")
                known = float(baseline) if isinstance(baseline, int | float) else None
                out.append(CostImpact(model, name, sum(values) / len(values), max(values), known))
    return out


def _charts(
    s: Session, config: Config, incident: Incident, members: Sequence[Alert], end: datetime
) -> tuple[dict[str, bytes], str]:
    """A PNG per metric that fired an alert (a catalogue metric among its values), from an hour
    before the start to the resolve; with no charts extra, none and why."""
    drawn: dict[str, bytes] = {}
    since = incident.opened_at - CHART_LEAD
    for alert in members:
        for name in alert.values:
            filename = f"incident-{incident.id}-{alert.model}-{name}.png"
            if name not in config.metrics or filename in drawn:
                continue
            samples = metric_store.series(s, alert.model, name, since=since, until=end)
            points = [(p.at, float(p.value)) for p in samples if isinstance(p.value, int | float)]
            if not points:
                continue
            title = f"{name} of {alert.model} (UTC)"
            try:
                drawn[filename] = render_metric_chart(points, title=title, started=incident.opened_at, resolved=end)
            except MissingExtra as exc:
                return {}, f"No charts: {exc}"
    return drawn, ""
