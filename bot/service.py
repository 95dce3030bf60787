"""Use cases: load → decide (pure core) → save → enqueue notifications, one transaction each.

This is the only layer that does I/O around the pure core; the HTTP handlers, the Slack
listeners and the scheduler jobs all call in here.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.alerts import lifecycle, store
from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, EventKind, Transition
from bot.clock import Clock
from bot.config.conditions import ConditionEvaluator
from bot.config.loader import Config
from bot.evaluation.evaluate import PassInput, evaluate
from bot.evaluation.rule_errors import RuleErrors
from bot.evaluation.schedule import EvaluationSchedule
from bot.metrics import store as metric_store
from bot.metrics.store import Point
from bot.notify.outbox import enqueue
from bot.notify.routing import PAGER, Delivery, pages_to, route
from bot.observability import Metrics, times_evaluation
from bot.silences import store as silence_store
from bot.silences.silence import Silence
from bot.silences.silence import silenced as is_silenced
from bot.slo.service import slo_transitions
from bot.storage.database import session as open_session

log = logging.getLogger(__name__)

Router = Callable[[Alert, lifecycle.Event, Config, datetime, bool], list[Delivery]]
"""Decides which notifiers hear about an event, when, and with what extras."""

Hold = Callable[[str, Alert, lifecycle.Event], timedelta]
"""An extra wait before a notification may be delivered, per channel."""

ExternalPlan = Callable[[Config, Mapping[str, Alert], Mapping[str, datetime], datetime], list[Transition]]
"""Pure decisions about alerts fired elsewhere (Alertmanager): given the configuration, the open
alerts by key, the keys' last resolutions and now, the transitions to record."""


def no_hold(_channel: str, _alert: Alert, _event: lifecycle.Event) -> timedelta:
    return timedelta(0)


def every_channel(channels: list[str]) -> Router:
    """Route through the configured routing table to these notifier channels."""
    return lambda alert, event, config, now, silenced: route(
        alert, event, config=config, channels=channels, now=now, silenced=silenced
    )


@dataclass(frozen=True)
class PassResult:
    transitions: list[Transition]
    conflicts: int


class AlertService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        config: Callable[[], Config],
        router: Router,
        *,
        hold: Hold = no_hold,
        metrics: Metrics | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._config = config
        self._router = router
        self._hold = hold
        self._evaluator = ConditionEvaluator()
        self.rule_errors = RuleErrors(metrics)
        """Rules that failed in the latest evaluation pass, for ``/healthz``."""
        self._metrics = metrics

    def ingest(self, points: Iterable[Point]) -> int:
        with open_session(self._engine) as s, s.begin():
            return metric_store.record(s, points)

    def apply_external(self, plan: ExternalPlan, *, resolved_since: datetime) -> list[Transition]:
        """Record alerts another system decided (Alertmanager's webhook), like an evaluation pass:
        ``plan`` sees the open alerts and the last resolutions since ``resolved_since``, and its
        transitions are saved with their notifications in one transaction.

        Two deliveries of one notification at once (Alertmanager in HA) race for the unique open
        key; the loser re-reads and plans again, finds the alert open, and records nothing.
        Raises :class:`store.ConcurrentChange` if that keeps happening, so the caller can ask
        for a retry instead of losing the notification.
        """
        for _ in range(3):
            config = self._config()
            now = self._clock.now()
            with open_session(self._engine) as s, s.begin():
                changes = plan(config, store.open_alerts(s), store.last_fired_resolutions(s, since=resolved_since), now)
                try:
                    silences = silence_store.active(s, now=now)
                    for change in changes:
                        self._record(s, change, config, now, silences)
                except store.ConcurrentChange:
                    s.rollback()
                    continue
            return changes
        raise store.ConcurrentChange("alerts from Alertmanager keep changing under us; retry")

    def evaluate_on_schedule(self, schedule: EvaluationSchedule) -> PassResult | None:
        """The scheduler's evaluation job: evaluate as of the tick this run belongs to (``None``
        when that tick was already evaluated); ticks skipped entirely are logged and counted."""
        tick = schedule.next(self._clock.now())
        if tick is None:
            return None
        if tick.missed:
            log.warning(
                "missed %d evaluation(s) before %s: the previous pass ran too long or the scheduler was late",
                tick.missed,
                tick.at.isoformat(),
            )
            if self._metrics:
                self._metrics.evaluations_missed(tick.missed)
        return self.evaluate_once(at=tick.at)

    @times_evaluation
    def evaluate_once(self, *, at: datetime | None = None) -> PassResult:
        """One evaluation pass over every rule and model as of ``at`` (the pass's tick; default
        now), saved atomically with its notifications.

        If another replica changed an alert meanwhile, the pass is rolled back and reported as
        a conflict; the next tick decides again from fresh data, so nothing is lost or doubled.
        """
        config = self._config()
        now = at or self._clock.now()
        longest_cooldown = max((r.cooldown for r in config.rules), default=timedelta(0))
        with open_session(self._engine) as s, s.begin():
            data = PassInput(
                config=config,
                samples=metric_store.latest(s, at=now, lookback=config.settings.stale_after),
                open_alerts=store.open_alerts(s),
                last_resolved=store.last_fired_resolutions(s, since=now - longest_cooldown),
            )
            transitions = evaluate(data, now=now, evaluator=self._evaluator, errors=self.rule_errors)
            return self._record_pass(s, transitions, config, now, "evaluation pass")

    def evaluate_slos_once(self) -> PassResult:
        """One pass over every SLO's burn rate (:mod:`bot.slo.service`), recorded like a rule pass:
        findings open, keep or auto-resolve alerts keyed ``slo:<label>:<model>``, in one transaction."""
        config = self._config()
        now = self._clock.now()
        with open_session(self._engine) as s, s.begin():
            return self._record_pass(s, slo_transitions(s, config, now), config, now, "SLO pass")

    def _record_pass(
        self, s: Session, transitions: list[Transition], config: Config, now: datetime, what: str
    ) -> PassResult:
        """Record a pass's transitions in the caller's transaction, or roll it all back if another
        replica changed an alert meanwhile: the next tick decides again from fresh data."""
        try:
            silences = silence_store.active(s, now=now)
            for change in transitions:
                self._record(s, change, config, now, silences)
        except store.ConcurrentChange as exc:
            s.rollback()
            log.info("%s lost a race and will retry next tick: %s", what, exc)
            return PassResult([], conflicts=1)
        return PassResult(transitions, conflicts=0)

    def escalate_due(self, limit: int = 500) -> int:
        """Run every escalation step that is due; return how many ran.

        The due rows are locked for this transaction (SKIP LOCKED on PostgreSQL), each step
        moves the alert's step index forward in the same transaction that enqueues its
        notifications, and the outbox's idempotency keys name the step: a step happens once,
        whichever replica runs it and however often the process restarts.
        """
        config = self._config()
        now = self._clock.now()
        ran = 0
        late: list[timedelta] = []  # per step, recorded once the sweep has committed
        with open_session(self._engine) as s, s.begin():
            try:
                silences = silence_store.active(s, now=now)
                for alert in store.due_for_escalation(s, now=now, limit=limit):
                    current: Alert | None = alert
                    while current is not None and (change := lifecycle.escalate(current, now=now)) is not None:
                        late.append(now - (lifecycle.next_deadline(current) or now))
                        current = self._record(s, change, config, now, silences)
                        ran += 1
            except store.ConcurrentChange as exc:
                s.rollback()
                log.info("escalation sweep lost a race and will retry next tick: %s", exc)
                return 0
        if self._metrics:
            self._metrics.escalations_ran(late)
        return ran

    def overdue_escalations(self, *, grace: timedelta = timedelta(seconds=30)) -> list[tuple[int, str, datetime]]:
        """The watchdog: escalations whose deadline passed more than ``grace`` ago and did not run."""
        with open_session(self._engine) as s:
            overdue = store.overdue_escalations(s, before=self._clock.now() - grace)
        for alert_id, key, deadline in overdue:
            log.warning("escalation of alert %s (%s) is overdue: it was due at %s", alert_id, key, deadline.isoformat())
        return overdue

    def acknowledge(self, alert_id: int, *, actor: str) -> Alert:
        return self._act(alert_id, lifecycle.acknowledge, actor)

    def resolve(self, alert_id: int, *, actor: str) -> Alert:
        return self._act(alert_id, lifecycle.resolve, actor)

    def _act(self, alert_id: int, action: Callable[..., Transition], actor: str) -> Alert:
        """Apply a person's action. Raises ActionRefused (with the reason) or LookupError.

        Two people acting at once: the optimistic version check lets one write win; the loser
        re-reads and is refused with what happened ("already acknowledged by …").
        """
        for _ in range(3):
            with open_session(self._engine) as s, s.begin():
                current = store.get(s, alert_id)
                if current is None:
                    raise LookupError(f"no alert with id {alert_id}")
                now = self._clock.now()
                change = action(current, actor=actor, now=now)
                try:
                    return self._record(s, change, self._config(), now, silence_store.active(s, now=now))
                except store.ConcurrentChange:
                    s.rollback()
                    continue
        raise store.ConcurrentChange(f"alert {alert_id} keeps changing; try again")

    def silence(self, silence: Silence) -> Silence:
        with open_session(self._engine) as s, s.begin():
            return silence_store.add(s, silence)

    def unsilence(self, silence_id: int) -> bool:
        with open_session(self._engine) as s, s.begin():
            return silence_store.expire(s, silence_id, now=self._clock.now())

    def release_unmuted(self) -> int:
        """Notify alerts a silence kept quiet, now that no silence covers them (expiry un-mutes).

        Each is announced once, as a firing alert (with its page, if its severity pages): the
        announcement is recorded as a "fired" event with detail "silence ended", so it has an
        outbox entry afterwards and is no longer "never notified".
        """
        config = self._config()
        now = self._clock.now()
        released = 0
        with open_session(self._engine) as s, s.begin():
            silences = silence_store.active(s, now=now)
            try:
                for alert in silence_store.never_notified(s):
                    if is_silenced(silences, rule=alert.rule, model=alert.model, now=now):
                        continue
                    event = lifecycle.Event(EventKind.FIRED, SYSTEM_ACTOR, now, "silence ended")
                    self._record(s, Transition(alert, event), config, now, silences)
                    released += 1
            except store.ConcurrentChange as exc:
                s.rollback()
                log.info("releasing silenced alerts lost a race and will retry: %s", exc)
                return 0
        return released

    def _record(self, s: Session, change: Transition, config: Config, now: datetime, silences: list[Silence]) -> Alert:
        """Save one transition and enqueue its notifications, in the caller's transaction.

        A silenced alert's transitions are stored (its history is complete) but reach no one,
        and a silenced page is not recorded as paged, so no acknowledge or resolve follows it.
        """
        alert, event = change.alert, change.event
        muted = event.kind.notifies and is_silenced(silences, rule=alert.rule, model=alert.model, now=now)
        if event.kind in (EventKind.FIRED, EventKind.ESCALATED) and not muted:
            paged = pages_to(alert, event, config)
            if paged:
                alert = replace(alert, paged_keys=(*alert.paged_keys, *paged))
        saved = store.save(s, replace(change, alert=alert))
        _log_transition(saved, event, silenced=muted)
        if event.kind.notifies:
            # the router decides what to page from the keys paged *before* this event: saved's
            # keys already include this event's pages, against which nothing would be left to page
            self._enqueue(s, saved, event, config, now, silenced=muted, paged_before=change.alert.paged_keys)
        return saved

    def _enqueue(
        self,
        s: Session,
        alert: Alert,
        event: lifecycle.Event,
        config: Config,
        now: datetime,
        *,
        silenced: bool,
        paged_before: tuple[str, ...] | None = None,
    ) -> None:
        routed = alert if paged_before is None else replace(alert, paged_keys=paged_before)
        deliveries = self._router(routed, event, config, now, silenced)
        paged_now = any(d.channel == PAGER for d in deliveries) and event.kind is EventKind.ESCALATED
        for delivery in deliveries:
            payload = {**notification_payload(alert, event), "paged_now": paged_now, **delivery.extra}
            routing_key = str(delivery.extra.get("pagerduty_routing_key", ""))
            key_part = hashlib.sha256(routing_key.encode()).hexdigest()[:12] if routing_key else ""
            enqueue(
                s,
                channel=delivery.channel,
                kind=f"alert.{event.kind.value}",
                alert_id=alert.id,
                payload=payload,
                idempotency_key=f"{delivery.channel}:{alert.id}:{event.kind.value}:{alert.version}:{key_part}"[:300],
                now=event.at,
                not_before=event.at + max(delivery.hold, self._hold(delivery.channel, alert, event)),
            )


def notification_payload(alert: Alert, event: lifecycle.Event) -> dict[str, Any]:
    """A self-contained, JSON-ready snapshot: the notifier needs nothing else to say what happened."""
    snapshot = {
        name: value.isoformat() if isinstance(value, datetime) else value for name, value in store.fields(alert).items()
    }
    return {
        "event": event.kind.value,
        "actor": event.actor,
        "at": event.at.isoformat(),
        "detail": event.detail,
        "escalation": dict(event.data),
        "alert_id": alert.id,
        "key": alert.key,
        "occurrence": alert.occurrence,
        **snapshot,
    }


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
