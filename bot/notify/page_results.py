"""A page's fate in the incident's Slack thread (SPEC §1): the outbox's result hook.

When PagerDuty accepts a trigger, or it fails for good, the hook queues an ``alert.page_result``
Slack reply in the same transaction that records the outcome, once per PagerDuty outbox row, so
the people in the thread know whether anyone was paged.
"""

from __future__ import annotations

from sqlmodel import Session, select

from bot.clock import Clock
from bot.notify.notifier import Notification
from bot.notify.outbox import FAILED, ResultHook, enqueue
from bot.notify.pagerduty import TRIGGER, event_action, occurrence_key
from bot.notify.slack import PAGE_RESULT
from bot.storage.tables import OutboxRow

PAGE_KINDS = frozenset({"incident.opened", "incident.joined", "incident.escalated"})


def page_result_hook(clock: Clock) -> ResultHook:
    """The outbox's result hook that puts a page's fate in the incident's Slack thread (SPEC §1):
    a PagerDuty trigger that was accepted, or that failed for good, queues an ``alert.page_result``
    Slack reply in the transaction that records it -- once per PagerDuty outbox row."""

    def on_result(session: Session, note: Notification, outcome: str, error: str | None) -> None:
        if note.channel != "pagerduty" or note.kind not in PAGE_KINDS or note.alert_id is None:
            return
        try:
            paged, dedup_key = event_action(note.kind, note.payload) == TRIGGER, occurrence_key(note.payload)
        except ValueError:  # a payload PagerDuty could not be sent: it failed, and says why
            paged, dedup_key = True, None
        if not paged:  # an escalation PagerDuty had no part in
            return
        key = f"slack:{PAGE_RESULT}:{note.id}"
        if session.exec(select(OutboxRow.id).where(OutboxRow.idempotency_key == key)).first() is not None:
            return  # an outcome written again after its commit's answer was lost
        payload: dict[str, object] = {
            "outcome": "failed" if outcome == FAILED else "accepted",
            "event": note.kind.removeprefix("incident."),
            "dedup_key": dedup_key,
            "summary": f"[{note.payload.get('severity')}] {note.payload.get('title') or note.payload.get('key')}",
            "pagerduty_outbox_id": note.id,
            "severity": note.payload.get("severity"),  # ranks it with its page in the Slack lane
        }
        if outcome == FAILED:
            payload["error"] = error or "unknown error"
        enqueue(
            session,
            channel="slack",
            kind=PAGE_RESULT,
            alert_id=note.alert_id,
            incident_id=note.payload.get("incident_id") if isinstance(note.payload.get("incident_id"), int) else None,
            payload=payload,
            idempotency_key=key,
            now=clock.now(),
        )

    return on_result
