"""The hottest reads, straight from the database driver's cursor.

Every evaluation pass reads every latest value (200,000 rows at 10,000 models × 20 metrics).
SQLAlchemy's result layer (a Python call and a row object per row) cost as much as the driver's
own fetch, so these reads compile their statement with SQLAlchemy and fetch plain tuples from the
DBAPI cursor of the session's connection (inside its transaction). Time columns then arrive as the
driver gives them: :func:`instant_reader` turns them into aware UTC the way :class:`UTCDateTime` does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Dialect
from sqlalchemy.sql import Select
from sqlmodel import Session

from bot.clock import maybe_utc
from bot.storage.tables import sqlite_instant


def driver_rows(session: Session, statement: Select[Any]) -> list[tuple[Any, ...]]:
    """The rows of ``statement`` (a SELECT without bound parameters) as plain tuples."""
    connection = session.connection()
    compiled = statement.compile(dialect=connection.dialect)
    if compiled.params:
        raise ValueError("driver_rows() takes statements without bound parameters")
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(compiled))
        return list(cursor.fetchall())
    finally:
        cursor.close()


def instant_reader(dialect: Dialect) -> Callable[[Any], datetime]:
    """What turns a time fetched by :func:`driver_rows` into aware UTC on ``dialect`` (a column
    that may be empty is tested for ``None`` first)."""
    return cast(Callable[[Any], datetime], sqlite_instant if dialect.name == "sqlite" else maybe_utc)
