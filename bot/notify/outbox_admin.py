"""What ``incident-bot outbox`` does to undelivered notifications (see :mod:`bot.notify.outbox_cli`).

A notification that failed for good (Slack refused its message, PagerDuty its event) stays in the
outbox as ``failed``, counted by ``incident_bot_outbox_failed`` and named in ``/healthz``; this is
how an operator acts on it once the cause is fixed:

* ``list``: pending and failed rows (id, status, channel, kind, alert, attempts, last error);
* ``retry ID…`` / ``retry --all-failed``: failed rows become pending again, due at once, so the
  running bot's delivery lanes send them on their next pass (within a second);
* ``drop ID…``: a pending or failed row is marked ``dropped`` and never sent.

It writes only the outbox table, and only rows in the status the operation expects, so a row the
bot is sending meanwhile is left alone (a pending row being sent can still be dropped: whichever
write lands last wins, as with any operator action on a live queue).
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.notify.outbox import DROPPED, FAILED, PENDING
from bot.storage.database import session as open_session
from bot.storage.tables import OutboxRow

ERROR_WIDTH = 100
"""Characters of ``last_error`` shown per row of ``list``."""


def undelivered(engine: Engine) -> list[OutboxRow]:
    """Pending and failed rows, oldest first."""
    query = select(OutboxRow).where(col(OutboxRow.status).in_([PENDING, FAILED])).order_by(col(OutboxRow.id))
    with open_session(engine) as s:
        return list(s.exec(query).all())


def retry(engine: Engine, ids: Collection[int] | None) -> list[int]:
    """Put failed rows (``ids``, or every failed row when None) back to pending; return the ids
    that were failed and are pending now. Their ``not_before`` is the time of their last try, so
    they are due at once, in their old place in the queue."""
    chosen = select(OutboxRow.id).where(OutboxRow.status == FAILED)
    if ids is not None:
        chosen = chosen.where(col(OutboxRow.id).in_(list(ids)))
    with open_session(engine) as s, s.begin():
        found = sorted(row_id for row_id in s.exec(chosen).all() if row_id is not None)
        if found:
            s.execute(
                update(OutboxRow)
                .where(col(OutboxRow.id).in_(found), col(OutboxRow.status) == FAILED)
                .values(status=PENDING, claimed_by=None, claimed_until=None)
            )
    return found


def drop(engine: Engine, ids: Collection[int]) -> list[int]:
    """Mark pending or failed rows ``dropped``; return the ids that were."""
    chosen = select(OutboxRow.id).where(col(OutboxRow.id).in_(list(ids)), col(OutboxRow.status).in_([PENDING, FAILED]))
    with open_session(engine) as s, s.begin():
        found = sorted(row_id for row_id in s.exec(chosen).all() if row_id is not None)
        if found:
            s.execute(
                update(OutboxRow)
                .where(col(OutboxRow.id).in_(found), col(OutboxRow.status).in_([PENDING, FAILED]))
                .values(status=DROPPED, claimed_by=None, claimed_until=None)
            )
    return found


def render(rows: list[OutboxRow]) -> str:
    """``list``'s table, one row per notification, or a line saying there is none."""
    if not rows:
        return "nothing pending or failed in the outbox"
    header = ("ID", "STATUS", "CHANNEL", "KIND", "ALERT", "ATTEMPTS", "LAST ERROR")
    lines = [
        (
            str(row.id),
            row.status,
            row.channel,
            row.kind,
            "-" if row.alert_id is None else str(row.alert_id),
            str(row.attempts),
            " ".join((row.last_error or "-").split())[:ERROR_WIDTH],
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(cells[:-1], widths, strict=True)), cells[-1]]).rstrip()
        for cells in [header, *lines]
    )
