"""Use cases: load → decide (pure core) → save → enqueue notifications, one transaction each.

This is the only layer that does I/O around the pure core; the HTTP handlers, the Slack
listeners and the scheduler jobs all call in here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from bot.alerts import lifecycle, store
from bot.alerts.lifecycle import Alert, Transition
from bot.clock import Clock
from bot.config.conditions import ConditionEvaluator
from bot.config.loader import Config
from bot.evaluation.evaluate import PassInput, evaluate
from bot.metrics import store as metric_store
from bot.metrics.store import Point
from bot.notify.outbox import enqueue
from bot.storage.database import session as open_session

log = logging.getLogger(__name__)

Router = Callable[[Alert, lifecycle.Event], list[str]]
"""Decides which notifier channels hear about an event (Slack, PagerDuty …)."""

Hold = Callable[[str, Alert, lifecycle.Event], timedelta]
"""How long a notification waits before it may be delivered, per channel: Slack holds a fired
alert for ``group_wait`` so alerts of one model that fire together share one message."""


def no_hold(_channel: str, _alert: Alert, _event: lifecycle.Event) -> timedelta:
    return timedelta(0)


@dataclass(frozen=True)
class PassResult:
    transitions: list[Transition]
    conflicts: int


class AlertService:
    def __init__(
        self, engine: Engine, clock: Clock, config: Callable[[], Config], router: Router, *, hold: Hold = no_hold
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._config = config
        self._router = router
        self._hold = hold
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
                for change, saved in store.save_all(s, transitions):
                    self._notify(s, saved, change.event)
            except store.ConcurrentChange as exc:
                s.rollback()
                log.info("evaluation pass lost a race and will retry next tick: %s", exc)
                return PassResult([], conflicts=1)
        return PassResult(transitions, conflicts=0)

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
                change = action(current, actor=actor, now=self._clock.now())
                try:
                    saved = store.save(s, change)
                except store.ConcurrentChange:
                    s.rollback()
                    continue
                self._notify(s, saved, change.event)
                return saved
        raise store.ConcurrentChange(f"alert {alert_id} keeps changing; try again")

    def _notify(self, s: Any, alert: Alert, event: lifecycle.Event) -> None:
        if not event.kind.notifies:
            return
        for channel in self._router(alert, event):
            enqueue(
                s,
                channel=channel,
                kind=f"alert.{event.kind.value}",
                alert_id=alert.id,
                payload=notification_payload(alert, event),
                idempotency_key=f"{channel}:{alert.id}:{event.kind.value}:{alert.version}",
                now=event.at,
                not_before=event.at + self._hold(channel, alert, event),
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
        "alert_id": alert.id,
        "key": alert.key,
        **snapshot,
    }


def every_channel(channels: list[str]) -> Router:
    """The router of the alert core: every notifiable event to every configured notifier."""
    return lambda _alert, _event: list(channels)
