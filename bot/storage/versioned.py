"""Optimistic writes shared by the alert and incident stores: a row is inserted at version 1, or
updated only if it is still at the version that was read. Two writers that race (two replicas,
two clicks) cannot both win; the loser gets :class:`ConcurrentChange` and decides again."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Protocol, TypeVar

from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from bot.errors import ConcurrentChange

Row = TypeVar("Row", bound=SQLModel)
Key = TypeVar("Key")


class Versioned(Protocol):
    """An alert or an incident: a frozen dataclass with its row's id and the version it was read at."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def id(self) -> int | None: ...

    @property
    def version(self) -> int: ...


Entity = TypeVar("Entity", bound=Versioned)


def save(
    session: Session,
    table: type[Row],
    entity: Entity,
    *,
    columns: dict[str, Any],
    read: Callable[[Row], Entity],
    what: str,
    taken: str,
) -> Entity:
    """:func:`write` ``entity`` and return it as stored now: read back from its new row, or at its
    next version. ``what`` names it in the message when it changed since it was read."""
    row = write(
        session,
        table,
        row_id=entity.id,
        version=entity.version,
        columns=columns,
        taken=taken,
        stale=f"{what} {entity.id} changed since it was read",
    )
    return read(row) if row is not None else replace(entity, version=entity.version + 1)


def write(
    session: Session,
    table: type[Row],
    *,
    row_id: int | None,
    version: int,
    columns: dict[str, Any],
    taken: str,
    stale: str,
) -> Row | None:
    """Insert a new row (``row_id`` None) and return it, flushed, with its id; or update the row at
    ``version`` to ``version + 1`` and return None. ``taken`` / ``stale``: the :class:`ConcurrentChange`
    message when a unique index refuses the insert, or the row moved on since it was read."""
    if row_id is None:
        row = table(**columns, version=1)
        session.add(row)
        try:
            session.flush()
        except IntegrityError as exc:
            raise ConcurrentChange(taken) from exc
        return row
    result = session.execute(
        update(table)
        .where(col(table.id) == row_id, col(table.version) == version)  # type: ignore[attr-defined]
        .values(**columns, version=version + 1)
        # nothing reads the session's copy afterwards: skip syncing it (a quarter of a save)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentChange(stale)
    return None


def write_moved(session: Session, table: type[Row], rows: Sequence[dict[str, Any]], *, what: str) -> None:
    """Update many stored rows in one statement sent with every row's values: each row holds its
    columns (``version`` at the version it moves to), its ``moved_id`` and the version it was
    read at (``read_at``), and is updated only if it is still there. Raises
    :class:`ConcurrentChange` naming how many of the ``what`` moved on since they were read."""
    if not rows:
        return
    t = table.__table__  # type: ignore[attr-defined]  # SQLModel declares no __table__
    statement = update(t).where(t.c.id == bindparam("moved_id"), t.c.version == bindparam("read_at"))
    result = session.execute(statement, list(rows))
    if result.rowcount != len(rows):  # type: ignore[attr-defined]
        missed = len(rows) - result.rowcount  # type: ignore[attr-defined]
        raise ConcurrentChange(f"{missed} of {len(rows)} {what} changed since they were read")


KEYS_PER_QUERY = 500
"""Bound parameters per ``IN (…)``: far below SQLite's and PostgreSQL's limits."""


def in_chunks(keys: Sequence[Key]) -> Iterator[Sequence[Key]]:
    """``keys`` in slices of :data:`KEYS_PER_QUERY`, one ``IN (…)`` each: how a read of any
    number of keys stays within every database's limit on bound parameters."""
    for start in range(0, len(keys), KEYS_PER_QUERY):
        yield keys[start : start + KEYS_PER_QUERY]


def open_ids(session: Session, table: type[Row], key: str, keys: Sequence[str]) -> dict[str, int]:
    """The id of the open row (``state`` not resolved) of each of ``keys`` in ``table``'s ``key``
    column, by key: how rows written in bulk learn their ids (the open key is unique). Read in
    chunks, so any number of keys fits."""
    column, state, row_id = (getattr(table, name) for name in (key, "state", "id"))
    found: dict[str, int] = {}
    for chunk in in_chunks(keys):
        query = select(column, row_id).where(col(column).in_(chunk), state != "resolved")
        found.update((name, int(number)) for name, number in session.exec(query).all())
    return found
