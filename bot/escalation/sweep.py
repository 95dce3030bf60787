"""The escalation sweep: claim the incidents whose next step is due and run their steps.

The due rows are locked for the caller's transaction (SKIP LOCKED on PostgreSQL); each step moves
the incident's step index forward in the same transaction that enqueues its notifications, and
the outbox's idempotency keys name the step: a step happens once, whichever replica runs it and
however often the process restarts. After downtime every overdue step still runs, once, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.escalation.policy import escalate
from bot.incidents import store
from bot.incidents.incident import Incident, IncidentTransition, next_deadline


def sweep(
    session: Session, *, now: datetime, limit: int, record: Callable[[IncidentTransition], Incident]
) -> list[timedelta]:
    """Run every due step through ``record`` (which saves it and enqueues its notifications);
    return how late each step ran, for the lateness metric."""
    late: list[timedelta] = []
    for incident in store.due_for_escalation(session, now=now, limit=limit):
        current = incident
        while (change := escalate(current, now=now)) is not None:
            late.append(now - (next_deadline(current) or now))
            current = record(change)
    return late
