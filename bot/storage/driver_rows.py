"""The hottest reads and writes, straight through the database driver's cursor.

Every evaluation pass reads every latest value, and every pull writes them (200,000 rows at 10,000
models × 20 metrics). SQLAlchemy's per-row layers (result rows; bound parameters built and type
processed per row) cost as much as the driver's own work, so these statements are compiled by
SQLAlchemy and run as driver SQL on the session's connection (inside its transaction), with plain
tuples in and out. They still pass through SQLAlchemy's execution, so a driver error arrives as
SQLAlchemy's (``OperationalError: database is locked`` is what makes the API answer 503), and the
engine's statement hooks apply. Time values pass as the driver takes them: :func:`fetched_instants`
and :func:`instant_writer` convert the way :class:`~bot.storage.tables.UTCDateTime` does.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ClauseElement, ColumnElement, CursorResult, Dialect, func
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import Session

from bot.clock import ensure_utc, maybe_utc
from bot.storage.tables import sqlite_instant, sqlite_text

FETCH = 5000
"""Rows taken from the driver at a time: a pass over 200,000 latest values built them all at once,
and the heap that peak left behind stayed with the process (RSS 87 MB above its live data)."""


def driver_rows(session: Session, statement: Select[Any]) -> Iterator[tuple[Any, ...]]:
    """The rows of ``statement`` as plain tuples, :data:`FETCH` at a time. Its bound parameters go
    to the driver as they are, so they must be values the driver takes itself (numbers, text, a
    list for an array); an ``IN`` list is rendered as one parameter per item.

    On PostgreSQL the rows come from a cursor declared on the server, :data:`SERVER_FETCH` per
    round trip: a plain cursor receives the whole result into the driver's buffer first, 18 MB of
    an evaluation worker's peak for a pass's 150,000 latest values. (SQLAlchemy's
    ``stream_results`` would declare one too, but it reads the first row ahead into its own
    buffer, which the driver's ``fetchmany`` then never returns.) SQLite's cursor steps through
    the rows as they are fetched anyway."""
    connection = session.connection()
    compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if params and compiled.positiontup is not None:
        params = tuple(params[name] for name in compiled.positiontup)
    if connection.dialect.name != "postgresql":
        yield from _fetched(connection.exec_driver_sql(str(compiled), params or None))
        return
    cursor = f"driver_rows_{next(_CURSORS)}"
    # planned to return every row, as a plain query is (a cursor is planned for its first tenth)
    connection.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1")
    connection.exec_driver_sql(f"DECLARE {cursor} NO SCROLL CURSOR FOR {compiled}", params or None)
    try:
        while rows := list(_fetched(connection.exec_driver_sql(f"FETCH FORWARD {SERVER_FETCH} FROM {cursor}"))):
            yield from rows
    finally:
        connection.exec_driver_sql(f"CLOSE {cursor}")


SERVER_FETCH = 25_000
"""Rows per round trip from a server cursor: a few megabytes in the driver's buffer, and six
round trips for a pass's 150,000 values. At 5,000 (thirty round trips) a pass under the fleet's
load, whose database server is busy with the pushes, waited for the server thirty times."""

_CURSORS = itertools.count()
"""Numbers for the server cursors' names, unique within the process (so within a connection)."""


def _fetched(result: CursorResult[Any]) -> Iterator[tuple[Any, ...]]:
    """The driver's own tuples of ``result``, :data:`FETCH` at a time, past the per-row Result layer."""
    try:
        while rows := result.cursor.fetchmany(FETCH):
            yield from rows
    finally:
        result.close()


def driver_executemany(
    session: Session, statement: ClauseElement, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Run ``statement`` once per row, in one driver call. Each row holds the values of ``columns``
    in that order, as the driver takes them (times through :func:`instant_writer`). For a driver
    with positional parameters (SQLite's); PostgreSQL writes its bulk rows as arrays instead
    (:mod:`bot.metrics.store`)."""
    if not rows:
        return
    connection = session.connection()
    sql, at = _positional(statement, tuple(columns), connection.dialect)
    params: Sequence[tuple[Any, ...]] = rows if at is None else [tuple(row[i] for i in at) for row in rows]
    connection.exec_driver_sql(sql, params)


@functools.lru_cache(maxsize=64)
def _positional(statement: ClauseElement, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, list[int] | None]:
    """``statement``'s driver SQL, and where each of its parameters is in a row of ``columns``
    (``None``: in order). Kept per statement object: compiling it was a fifth of a small push."""
    # compiled for the columns the rows bind, as SQLAlchemy's own executemany does (an INSERT
    # compiled without them would bind every column)
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(columns)))
    order = compiled.positiontup
    if order is None:
        raise ValueError(f"driver_executemany() needs positional parameters, not {dialect.paramstyle}")
    at = None if list(order) == list(columns) else [columns.index(name) for name in order]
    return str(compiled), at


def instant_writer(dialect: Dialect) -> Callable[[datetime], Any]:
    """What turns an instant into the value the driver stores for a time column on ``dialect``."""
    return sqlite_text if dialect.name == "sqlite" else ensure_utc


def fetched_instants(column: ColumnElement[Any], dialect: Dialect) -> tuple[ColumnElement[Any], Callable[[Any], Any]]:
    """A time ``column`` as :func:`driver_rows` fetches it on ``dialect``, and what turns each
    fetched value into aware UTC (``None`` stays ``None``). SQLite's text goes through a cache (a
    push stamps all its values with one instant); so do PostgreSQL's seconds since the epoch, where
    fetching a ``timestamptz`` built a datetime and its time zone for every row, a fifth of
    reading a pass's 150,000 values. A double holds an epoch to well under a microsecond, so the
    cached conversion, which rounds to microseconds, gives back the stored instant exactly."""
    if dialect.name == "sqlite":
        return column, sqlite_instant
    if dialect.name == "postgresql":
        return func.date_part("epoch", column), epoch_instant
    return column, maybe_utc


@functools.lru_cache(maxsize=1 << 16)
def epoch_instant(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)
