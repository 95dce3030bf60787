"""The stored change events (table ``changes``): written by the push endpoint, read by alerts,
incidents and ``/changes``. Each call is its own short transaction."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.changes.events import Change, ChangeKind
from bot.clock import ensure_utc
from bot.storage.database import session
from bot.storage.tables import ChangeRow
from bot.storage.versioned import in_chunks


class ChangeLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, changes: Sequence[Change]) -> int:
        """Store ``changes`` in one transaction (all or none); return how many."""
        if not changes:
            return 0
        rows = [
            {
                "model": c.model,
                "kind": c.kind.value,
                "version": c.version,
                "at": c.at,
                "author": c.author,
                "link": c.link,
                "description": c.description,
            }
            for c in changes
        ]
        with session(self._engine) as s, s.begin():
            s.execute(insert(ChangeRow), rows)
        return len(rows)

    def between(self, model: str | None, start: datetime, end: datetime, *, limit: int = 50) -> list[Change]:
        """The changes of ``model`` (every model: None) made in ``[start, end]``, newest first."""
        with session(self._engine) as s:
            return made_between(s, None if model is None else [model], start, end, limit=limit)


def made_between(
    s: Session, models: Collection[str] | None, start: datetime, end: datetime, *, limit: int = 50
) -> list[Change]:
    """The changes of ``models`` (every model: None) made in ``[start, end]``, newest first, in the
    caller's session (the Slack notifier reads them beside the incident it renders)."""
    query = select(ChangeRow).where(col(ChangeRow.at) >= start, col(ChangeRow.at) <= end)
    if models is not None:
        query = query.where(col(ChangeRow.model).in_(list(models)))
    query = query.order_by(col(ChangeRow.at).desc(), col(ChangeRow.id).desc()).limit(limit)
    return [_change(row) for row in s.exec(query)]


def made_before(
    s: Session, models: Collection[str], opened: datetime, window: timedelta, *, limit: int
) -> list[Change]:
    """What shipped to ``models`` in the ``window`` (``settings.change_window``) before an incident
    ``opened``, newest first: "did something ship?", as the root, the room's card and the page say it."""
    return made_between(s, sorted(models), opened - window, opened, limit=limit)


def made_before_each(
    s: Session, wanted: Mapping[int, tuple[Collection[str], datetime]], window: timedelta, *, limit: int
) -> dict[int, list[Change]]:
    """:func:`made_before` for many incidents at once, by key: ``wanted`` maps each to its models
    and when it opened. One read per chunk of models over the span of all the windows, then each
    incident's changes picked out, newest first: an escalation sweep's pages ask it together."""
    if not wanted:
        return {}
    models = sorted({model for their, _ in wanted.values() for model in their})
    start = min(opened for _, opened in wanted.values()) - window
    end = max(opened for _, opened in wanted.values())
    rows: list[ChangeRow] = []
    for chunk in in_chunks(models):
        query = select(ChangeRow).where(col(ChangeRow.at) >= start, col(ChangeRow.at) <= end)
        rows += s.exec(query.where(col(ChangeRow.model).in_(chunk))).all()
    rows.sort(key=lambda row: (ensure_utc(row.at), row.id or 0), reverse=True)
    changes = [_change(row) for row in rows]
    return {
        key: [c for c in changes if c.model in their and opened - window <= c.at <= opened][:limit]
        for key, (their, opened) in wanted.items()
    }


def _change(row: ChangeRow) -> Change:
    return Change(row.model, ChangeKind(row.kind), row.version, row.at, row.author, row.link, row.description)
