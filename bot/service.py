"""Use cases: load → decide (pure core) → save → enqueue notifications, one transaction each.

This is the only layer that does I/O around the pure core; the HTTP handlers, the Slack
listeners and the scheduler jobs all call in here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.alerts import lifecycle, store
from bot.alerts.lifecycle import Alert, EventKind, Transition
from bot.clock import Clock
from bot.config.conditions import ConditionEvaluator
from bot.config.loader import Config
from bot.evaluation.evaluate import PassInput, evaluate
from bot.metrics import store as metric_store
from bot.metrics.store import Point
from bot.notify.outbox import enqueue
from bot.notify.routing import Delivery, pages_to, route
from bot.storage.database import session as open_session

log = logging.getLogger(__name__)

Router = Callable[[Alert, lifecycle.Event, Config, datetime, bool], list[Delivery]]
"""Decides which notifiers hear about an event, when, and with what extras."""

Hold = Callable[[str, Alert, lifecycle.Event], timedelta]
"""An extra wait before a notification may be delivered, per channel."""

Silenced = Callable[[Session, Alert, datetime], bool]
"""Whether an alert is muted right now (its events are recorded, not notified)."""


def no_hold(_channel: str, _alert: Alert, _event: lifecycle.Event) -> timedelta:
    return timedelta(0)


def never_silenced(_session: Session, _alert: Alert, _now: datetime) -> bool:
    return False


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
        silenced: Silenced = never_silenced,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._config = config
        self._router = router
        self._hold = hold
        self._silenced = silenced
        self._evaluator = ConditionEvaluator()

    def ingest(self, points: Iterable[Point]) -> int:
        with open_session(self._engine) as s, s.begin():
            return metric_store.record(s, points)

    def evaluate_once(self) -> PassResult:
        """One evaluation pass over every rule and model, saved atomically with its notifications.

        If another replica changed an alert meanwhile, the pass is rolled back and reported as
        a conflict; the next tick decides again from fresh data, so nothing is lost or doubled.
        """
        config = self._config()
        now = self._clock.now()
        longest_cooldown = max((r.cooldown for r in config.rules), default=timedelta(0))
        with open_session(self._engine) as s, s.begin():
            data = PassInput(
                config=config,
                samples=metric_store.latest(s),
                open_alerts=store.open_alerts(s),
                last_resolved=store.last_fired_resolutions(s, since=now - longest_cooldown),
            )
            transitions = evaluate(data, now=now, evaluator=self._evaluator)
            try:
                for change in transitions:
                    self._record(s, change, config, now)
            except store.ConcurrentChange as exc:
                s.rollback()
                log.info("evaluation pass lost a race and will retry next tick: %s", exc)
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
        with open_session(self._engine) as s, s.begin():
            try:
                for alert in store.due_for_escalation(s, now=now, limit=limit):
                    current: Alert | None = alert
                    while current is not None and (change := lifecycle.escalate(current, now=now)) is not None:
                        current = self._record(s, change, config, now)
                        ran += 1
            except store.ConcurrentChange as exc:
                s.rollback()
                log.info("escalation sweep lost a race and will retry next tick: %s", exc)
                return 0
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
                    return self._record(s, change, self._config(), now)
                except store.ConcurrentChange:
                    s.rollback()
                    continue
        raise store.ConcurrentChange(f"alert {alert_id} keeps changing; try again")

    def _record(self, s: Session, change: Transition, config: Config, now: datetime) -> Alert:
        """Save one transition and enqueue its notifications, in the caller's transaction."""
        alert, event = change.alert, change.event
        if event.kind in (EventKind.FIRED, EventKind.ESCALATED):
            paged = pages_to(alert, event, config)
            if paged:
                alert = replace(alert, paged_keys=(*alert.paged_keys, *paged))
        saved = store.save(s, replace(change, alert=alert))
        if not event.kind.notifies:
            return saved
        silenced = self._silenced(s, saved, now)
        for delivery in self._router(saved, event, config, now, silenced):
            payload = {**notification_payload(saved, event), **delivery.extra}
            key_part = delivery.extra.get("pagerduty_routing_key", "")
            enqueue(
                s,
                channel=delivery.channel,
                kind=f"alert.{event.kind.value}",
                alert_id=saved.id,
                payload=payload,
                idempotency_key=f"{delivery.channel}:{saved.id}:{event.kind.value}:{saved.version}:{key_part}"[:300],
                now=event.at,
                not_before=event.at + max(delivery.hold, self._hold(delivery.channel, saved, event)),
            )
        return saved


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
