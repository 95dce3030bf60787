"""The alert lifecycle as a pure transition table: no I/O, the clock passed in.

    (none) ──true──▶ PENDING ──true for `for:`──▶ FIRING ──ack──▶ ACKNOWLEDGED
       │                │                            │                 │
       └─true, for: 0───┼───────────────────────────▶│                 │
                        └─false──▶ RESOLVED ◀──false (auto) / resolve──┘

* one open alert per dedup key ``rule:model`` — a condition that stays true is one alert, not
  one per tick;
* time is the pass's *nominal* time (its tick on the evaluation schedule, not the moment it ran),
  so ``for:`` counts whole intervals exactly as Prometheus does;
* *no data* (a metric that did not arrive, went stale, or cannot be computed) never fires, and
  drops a pending alert: silence is not evidence that a condition held. A firing alert keeps
  firing through no data (``no_data: keep``, the default: a dead exporter is not a recovery) or
  treats it as the condition clearing (``no_data: resolve``, Prometheus' behaviour);
* ``keep_firing_for:`` is hysteresis: a firing alert whose condition clears keeps firing until
  it has stayed clear that long; a breach inside the window cancels the countdown;
* after a fired alert resolves, the same key cannot fire again until its cooldown has passed;
* RESOLVED is final. A click on a resolved alert is refused, it never reopens it;
* a firing alert joins an incident (:mod:`bot.incidents`): the incident, not the alert, escalates
  on the policy snapshot the alert carries and pages.

Every change is an :class:`Event` with an actor and a time; the service stores them as the
alert's history and turns the notifiable ones into outbox entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.config.conditions import Outcome
from bot.config.durations import humanize
from bot.errors import ActionRefused
from bot.severity import Severity

SYSTEM_ACTOR = "incident-bot"

Value = float | str


class AlertState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"

    @property
    def is_open(self) -> bool:
        return self is not AlertState.RESOLVED


class EventKind(StrEnum):
    PENDING = "pending"
    FIRED = "fired"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    AUTO_RESOLVED = "auto_resolved"
    PENDING_CLEARED = "pending_cleared"
    ESCALATED = "escalated"
    KEPT_FIRING = "kept_firing"
    """The condition cleared but ``keep_firing_for`` holds the alert open."""
    BREACHED_AGAIN = "breached_again"
    """The condition held again inside ``keep_firing_for``: the countdown is cancelled."""

    @property
    def notifies(self) -> bool:
        """Whether people hear about it: pending alerts and hysteresis bookkeeping are not news."""
        return self not in _QUIET


_QUIET = frozenset({EventKind.PENDING, EventKind.PENDING_CLEARED, EventKind.KEPT_FIRING, EventKind.BREACHED_AGAIN})


@dataclass(frozen=True)
class Event:
    kind: EventKind
    actor: str
    at: datetime
    detail: str = ""
    data: Mapping[str, object] = field(default_factory=dict)
    """Structured facts for notifiers (an escalation's step, old and new severity …)."""


@dataclass(frozen=True)
class PolicyStep:
    """One step of an escalation policy, as snapshotted onto an alert."""

    after: timedelta
    severity: Severity
    mention: str | None = None
    routing_key: str | None = None
    """A PagerDuty routing key this step pages (an L2 service), beyond the default."""


@dataclass(frozen=True)
class Alert:
    """One occurrence of a problem, identified while open by its ``key`` (``rule:model``)."""

    rule: str
    model: str
    severity: Severity
    state: AlertState
    started_at: datetime
    title: str = ""
    description: str = ""
    values: Mapping[str, Value] = field(default_factory=dict)
    fired_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    policy: tuple[PolicyStep, ...] = ()
    """The model's escalation policy when the alert opened: an incident it opens climbs on it."""
    incident_id: int | None = None
    clear_since: datetime | None = None
    """When the condition of this firing alert last stopped holding, while ``keep_firing_for``
    keeps it open; ``None`` while the condition holds."""
    id: int | None = None
    version: int = 0

    @property
    def key(self) -> str:
        return dedup_key(self.rule, self.model)

    @property
    def occurrence(self) -> str:
        """Names this occurrence, unlike ``key``: a re-fire after a resolve is a new incident."""
        stamp = (self.fired_at or self.started_at).strftime("%Y%m%dT%H%M%SZ")
        return f"{self.key}:{stamp}"


def dedup_key(rule: str, model: str) -> str:
    return f"{rule}:{model}"


class NoData(StrEnum):
    """What a firing alert does while its series is silent (``no_data:``), as in Grafana."""

    KEEP = "keep"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class Timing:
    """The part of a rule the lifecycle needs."""

    for_: timedelta = timedelta(0)
    cooldown: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    no_data: NoData = NoData.KEEP


@dataclass(frozen=True)
class Observation:
    """What one evaluation found for one ``rule:model``."""

    rule: str
    model: str
    severity: Severity
    outcome: Outcome
    values: Mapping[str, Value] = field(default_factory=dict)
    title: str = ""
    description: str = ""
    policy: tuple[PolicyStep, ...] = ()


@dataclass(frozen=True)
class Transition:
    alert: Alert
    event: Event


def observe(
    alert: Alert | None,
    seen: Observation,
    timing: Timing,
    *,
    last_fired_resolved_at: datetime | None,
    now: datetime,
) -> Transition | None:
    """Advance ``alert`` (the open alert for this key, if any) by one evaluation.

    Returns the transition, or ``None`` when nothing changed worth recording.
    """
    if alert is not None and not alert.state.is_open:
        raise ValueError("observe() takes the open alert for a key, never a resolved one")
    actor = f"rule:{seen.rule}"
    if seen.outcome is Outcome.NO_DATA:
        return _silent(alert, actor, timing, now)
    if alert is None:
        if seen.outcome is Outcome.FALSE or _cooling_down(last_fired_resolved_at, timing, now):
            return None
        base = Alert(
            rule=seen.rule,
            model=seen.model,
            severity=seen.severity,
            state=AlertState.PENDING,
            started_at=now,
            title=seen.title,
            description=seen.description,
            values=dict(seen.values),
            policy=seen.policy,
        )
        if timing.for_ > timedelta(0):
            return Transition(base, Event(EventKind.PENDING, actor, now, f"must hold for {humanize(timing.for_)}"))
        return _fire(base, actor, now)
    if seen.outcome is Outcome.TRUE:
        if alert.state is AlertState.PENDING and now - alert.started_at >= timing.for_:
            refreshed = replace(alert, title=seen.title, description=seen.description, values=dict(seen.values))
            return _fire(refreshed, actor, now)
        if alert.clear_since is not None:
            again = replace(alert, clear_since=None)
            return Transition(again, Event(EventKind.BREACHED_AGAIN, actor, now, "condition holds again"))
        return None
    return _cleared(alert, actor, timing, now, seen.values, why="condition cleared")


def next_change(
    alert: Alert | None, outcome: Outcome, timing: Timing, *, last_fired_resolved_at: datetime | None
) -> datetime | None:
    """When :func:`observe` may next return a transition if ``outcome`` and ``alert`` stay as they
    are, given it returned none just now: ``None`` if only a new outcome or alert can change it.

    Time moves an alert only through its three timers: ``for:`` (pending → firing), ``cooldown``
    (a breach may open a new alert again) and ``keep_firing_for`` (clear long enough → resolved).
    An evaluation pass leaves a model whose inputs have not changed alone until the earliest of
    these (:mod:`bot.evaluation.quiet`)."""
    if alert is None:
        if outcome is Outcome.TRUE and last_fired_resolved_at is not None:
            return last_fired_resolved_at + timing.cooldown
        return None
    if outcome is Outcome.TRUE:
        return alert.started_at + timing.for_ if alert.state is AlertState.PENDING else None
    if alert.clear_since is not None and alert.state is not AlertState.PENDING:
        return alert.clear_since + timing.keep_firing_for
    return None


def _silent(alert: Alert | None, actor: str, timing: Timing, now: datetime) -> Transition | None:
    """No data: a pending alert is dropped; a firing one keeps firing or counts it as clear."""
    if alert is None:
        return None
    if alert.state is AlertState.PENDING:
        dropped = replace(alert, state=AlertState.RESOLVED, resolved_at=now, resolved_by=SYSTEM_ACTOR)
        return Transition(dropped, Event(EventKind.PENDING_CLEARED, actor, now, "no data before firing"))
    if timing.no_data is NoData.KEEP and alert.clear_since is None:
        return None
    # no_data: resolve; or keep, while keep_firing_for counts down from data that said clear:
    # silence neither stops nor restarts that countdown, as in Prometheus
    return _cleared(alert, actor, timing, now, {}, why=f"no data (no_data: {timing.no_data.value})")


def _cleared(
    alert: Alert, actor: str, timing: Timing, now: datetime, values: Mapping[str, Value], *, why: str
) -> Transition | None:
    """The condition no longer holds: a pending alert is dropped; a firing one resolves, unless
    ``keep_firing_for`` still holds it (counted from the first pass that found it clear)."""
    if alert.state is AlertState.PENDING:
        cleared = replace(alert, state=AlertState.RESOLVED, resolved_at=now, resolved_by=SYSTEM_ACTOR)
        return Transition(cleared, Event(EventKind.PENDING_CLEARED, actor, now, "cleared before firing"))
    if timing.keep_firing_for > timedelta(0):
        if alert.clear_since is None:
            held = replace(alert, clear_since=now)
            detail = f"{why}; keeps firing until clear for {humanize(timing.keep_firing_for)} (keep_firing_for)"
            return Transition(held, Event(EventKind.KEPT_FIRING, actor, now, detail))
        if now - alert.clear_since < timing.keep_firing_for:
            return None
    resolved = replace(
        alert,
        state=AlertState.RESOLVED,
        resolved_at=now,
        resolved_by=SYSTEM_ACTOR,
    )
    recovered: dict[str, object] = {"recovered": dict(values)} if values else {}  # values keep what fired it
    return Transition(resolved, Event(EventKind.AUTO_RESOLVED, actor, now, why, recovered))


def acknowledge(alert: Alert, *, actor: str, now: datetime) -> Transition:
    """A person takes the alert. Refused unless it is firing, with a reason they can read."""
    if alert.state is AlertState.FIRING:
        acked = replace(alert, state=AlertState.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=actor)
        return Transition(acked, Event(EventKind.ACKNOWLEDGED, actor, now))
    raise ActionRefused(_refusal(alert, "acknowledge"))


def resolve(alert: Alert, *, actor: str, now: datetime) -> Transition:
    """A person declares the problem over; the cooldown then keeps the rule from re-firing at once."""
    if alert.state in (AlertState.FIRING, AlertState.ACKNOWLEDGED):
        done = replace(alert, state=AlertState.RESOLVED, resolved_at=now, resolved_by=actor)
        return Transition(done, Event(EventKind.RESOLVED, actor, now))
    raise ActionRefused(_refusal(alert, "resolve"))


def _fire(alert: Alert, actor: str, now: datetime) -> Transition:
    fired = replace(alert, state=AlertState.FIRING, fired_at=now)
    return Transition(fired, Event(EventKind.FIRED, actor, now))


def _cooling_down(last: datetime | None, timing: Timing, now: datetime) -> bool:
    return last is not None and now - last < timing.cooldown


def _refusal(alert: Alert, verb: str) -> str:
    if alert.state is AlertState.ACKNOWLEDGED:
        return f"Already acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at:%H:%M} UTC."
    if alert.state is AlertState.RESOLVED:
        who = alert.resolved_by if alert.resolved_by != SYSTEM_ACTOR else "auto-resolve"
        return f"Already resolved by {who} at {alert.resolved_at:%H:%M} UTC; it cannot be changed."
    return f"Cannot {verb} an alert that is {alert.state.value}."
