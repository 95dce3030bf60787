"""The escalation sweep: claim the incidents whose next step is due and run their steps.

The due rows are locked for the caller's transaction (SKIP LOCKED on PostgreSQL); each step moves
the incident's step index forward in the same transaction that enqueues its notifications, and
the outbox's idempotency keys name the step: a step happens once, whichever replica runs it and
however often the process restarts. After downtime every overdue step still runs, once, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.escalation.policy import escalate
from bot.incidents import store
from bot.incidents.incident import Incident, IncidentTransition, next_deadline

Step = Callable[[Incident], IncidentTransition | None]
"""An incident's next escalation step, if due (the pure :func:`~bot.escalation.policy.escalate`)."""


def sweep(
    session: Session, *, now: datetime, limit: int, record: Callable[[Sequence[Incident], Step], int]
) -> list[timedelta]:
    """Hand the due incidents to ``record``, which runs each one's due steps in order, saves them
    and enqueues their notifications (:meth:`bot.recording.Recorder.climbs`); return how late
    each step ran, for the lateness metric."""
    late: list[timedelta] = []

    def step(incident: Incident) -> IncidentTransition | None:
        change = escalate(incident, now=now)
        if change is not None:
            late.append(now - (next_deadline(incident) or now))
        return change

    record(store.due_for_escalation(session, now=now, limit=limit), step)
    return late
