"""Metric sample storage: every sample for windows, the newest per metric for evaluation."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from sys import intern
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    DateTime,
    Float,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    false,
    func,
    or_,
    tuple_,
    type_coerce,
)
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session, col, select

from bot.clock import ensure_utc
from bot.metrics.samples import Sample
from bot.storage.driver_rows import driver_executemany, driver_rows, fetched_instants, instant_writer
from bot.storage.tables import MetricLatestRow, MetricSampleRow
from bot.storage.versioned import in_chunks

Point = tuple[str, str, datetime, float | str]
"""(model, metric name, time, value or label text)."""


CHUNK = 1000
"""Rows per statement: 5,000 bound values, within SQLite's 32,766 and PostgreSQL's 65,535, so a
pull or a push of any size is stored (one ``IN (…)`` over a whole 200,000-value pull used to
exceed both and lose the pull)."""


COLUMNS = ("model", "name", "at", "value", "text")
"""What a sample or a latest value binds, in the order of its rows."""


def record(session: Session, points: Iterable[Point], *, history: Callable[[str], bool] | None = None) -> int:
    """Store samples and move each metric's "latest" forward (never backward: a late,
    out-of-order sample is kept for windows but does not overwrite a newer value).

    Bulk statements in bounded chunks, not ORM objects (:func:`_write`): an INSERT for the samples
    and an ``INSERT … ON CONFLICT DO UPDATE … WHERE newer`` for the latest values, which is also
    what keeps two first pushes of one series racing on PostgreSQL from colliding on the primary
    key (that answered 503).

    ``history``: which metric names keep sample rows (default: all). A metric no window or SLO
    reads needs only its newest value and the one before (kept beside it, for a pass as of a tick
    the newest postdates): a pull of 200,000 values then writes no sample rows at all."""
    # SQLite keeps no offset: store the UTC instant, or a +01:00 time would come back shifted
    batch = [(m, n, ensure_utc(at), v) for m, n, at, v in points]
    if not batch:
        return 0
    dialect = session.get_bind().dialect
    written = instant_writer(dialect)
    kept = batch if history is None else [point for point in batch if history(point[1])]
    samples = MetricSampleRow.__table__  # type: ignore[attr-defined]  # SQLModel declares no __table__
    _write(session, samples, [(m, n, written(at), _number(v), _text(v)) for m, n, at, v in kept])
    newest: dict[tuple[str, str], Point] = {}
    for point in batch:
        key = (point[0], point[1])
        if key not in newest or point[2] >= newest[key][2]:
            newest[key] = point
    latest = MetricLatestRow.__table__  # type: ignore[attr-defined]
    rows = [(m, n, written(at), _number(v), _text(v)) for m, n, at, v in newest.values()]
    _write(session, latest, rows, forward=True)
    return len(batch)


def _write(session: Session, table: Table, rows: list[tuple[Any, ...]], *, forward: bool = False) -> None:
    """Insert ``rows`` (values of :data:`COLUMNS`, times through ``instant_writer``) into ``table``;
    ``forward``: an upsert that moves the latest values forward (:func:`_moving_forward`).

    On SQLite, the driver's ``executemany`` per chunk of :data:`CHUNK` rows
    (:mod:`bot.storage.driver_rows`: SQLAlchemy's per-row parameter handling cost more than the
    writes). On PostgreSQL, one statement per :data:`ARRAY_CHUNK` rows, the rows as one array per
    column unnested side by side: executing the one-row statement once per row took twice as long."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        arrays = postgresql_insert(table).from_select(list(COLUMNS), _UNNESTED)
        statement: Insert = _moving_forward(arrays) if forward else arrays
        for start in range(0, len(rows), ARRAY_CHUNK):
            columns = zip(*rows[start : start + ARRAY_CHUNK], strict=True)
            session.execute(statement, dict(zip(COLUMNS, (list(column) for column in columns), strict=True)))
        return
    statement = _sqlite_statement(table, forward=forward)
    for start in range(0, len(rows), CHUNK):
        driver_executemany(session, statement, COLUMNS, rows[start : start + CHUNK])


@functools.cache
def _sqlite_statement(table: Table, *, forward: bool) -> Insert:
    """One statement object per table and kind, so the driver's SQL for it is compiled once
    (:func:`driver_executemany` keeps it), not once per push."""
    one_row = sqlite_insert(table)
    return _moving_forward(one_row) if forward else one_row


ARRAY_CHUNK = 10_000
"""Rows per PostgreSQL upsert: each column is one array parameter, so a statement's size is bounded
by memory, not by the 65,535-parameter limit."""

_UNNESTED = core_select(
    func.unnest(bindparam("model", type_=ARRAY(Text))).label("model"),
    func.unnest(bindparam("name", type_=ARRAY(Text))).label("name"),
    func.unnest(bindparam("at", type_=ARRAY(DateTime(timezone=True)))).label("at"),
    func.unnest(bindparam("value", type_=ARRAY(Float))).label("value"),
    func.unnest(bindparam("text", type_=ARRAY(Text))).label("text"),
)
"""PostgreSQL: the rows of a chunk as one array per column, unnested side by side. One statement
of 10,000 rows took two thirds of the time of 10,000 executions of the one-row upsert."""


def _moving_forward(statement: PostgresqlInsert | SqliteInsert) -> Insert:
    """``statement … ON CONFLICT (model, name) DO UPDATE`` where the stored value is not newer."""
    table = MetricLatestRow.__table__  # type: ignore[attr-defined]
    fresh = statement.excluded
    moved = {"prev_at": table.c.at, "prev_value": table.c.value, "prev_text": table.c.text}
    return statement.on_conflict_do_update(
        index_elements=["model", "name"],
        set_={**moved, "at": fresh.at, "value": fresh.value, "text": fresh.text},
        where=table.c.at <= fresh.at,
    )


def latest(
    session: Session,
    *,
    at: datetime | None = None,
    lookback: timedelta | None = None,
    models: Collection[str] | None = None,
    names: Collection[str] | None = None,
) -> dict[str, dict[str, Sample]]:
    """Each series' newest sample, or with ``at`` its newest at or before ``at`` (the pass's
    nominal time; as Prometheus' instant lookup, a sample stamped after the tick is not seen by
    it, even if it arrived before the pass ran). ``lookback`` bounds how far back that search goes.
    With ``models``, only theirs (a pass's share, :mod:`bot.evaluation.shares`): only their rows
    are read (decoding all 200,000 took over a second on PostgreSQL whatever the share). With
    ``names``, only those metrics' (what the rules read: a fleet pushes gauges no rule reads).

    Plain tuples from the driver (:mod:`bot.storage.driver_rows`), not ORM objects: this runs every
    evaluation pass over every metric of every model, and building 15,000 model instances cost more
    than the evaluation itself."""
    table = MetricLatestRow.__table__.c  # type: ignore[attr-defined]  # SQLModel declares no __table__
    stamps, instant = fetched_instants(table.at, session.get_bind().dialect)
    columns = core_select(table.model, table.name, stamps, table.value, table.text)
    if names is not None:
        columns = columns.where(_any_of(session, table.name, names))
    out: dict[str, dict[str, Sample]] = {}
    ahead: list[tuple[str, str]] = []
    """Series the tick's pass must not see the newest value of."""
    series: dict[str, Sample] = {}
    last_model = None
    for model, name, stamp, value, text in _rows_of(session, columns, models):
        sampled = instant(stamp)
        if at is not None and sampled > at:
            ahead.append((model, name))
            continue
        if model != last_model:  # a model's rows mostly come together (as written): one lookup for them
            series = out.setdefault(model, {})
            last_model = model
        # one string per metric name, not one per row: what a pass remembers (quiet models) holds
        # them for every model, 150,000 copies of twenty names at 10,000 models
        series[intern(name)] = Sample(value if value is not None else (text or ""), sampled)  # _value, inlined
    if ahead and at is not None:
        found = _newest_before(session, ahead, at=at, lookback=lookback)
        previous = _previous(session, [key for key in ahead if key not in found])
        earliest = at - lookback if lookback is not None else None
        for model, name in ahead:
            # the samples decide (a late, out-of-order push is among them); a metric kept without
            # samples (pulled, read by no window or SLO) falls back on the value before the newest
            sample = found.get((model, name))
            before = previous.get((model, name))
            in_reach = before is not None and before.at <= at and (earliest is None or before.at >= earliest)
            if sample is None and in_reach:
                sample = before
            if sample is not None:
                out.setdefault(model, {})[name] = sample
    return out


def _previous(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Sample]:
    """The value before the newest of each series in ``keys`` that has one, kept in
    ``metric_latest`` beside it. Read apart from the newest values, for the few series a pass
    needs it for: its three columns on every row were a fifth of reading them."""
    table = MetricLatestRow.__table__.c  # type: ignore[attr-defined]
    stamps, instant = fetched_instants(table.prev_at, session.get_bind().dialect)
    found: dict[tuple[str, str], Sample] = {}
    for chunk in in_chunks(keys):
        query = core_select(table.model, table.name, stamps, table.prev_value, table.prev_text).where(
            tuple_(table.model, table.name).in_(chunk), table.prev_at.is_not(None)
        )
        for model, name, stamp, value, text in driver_rows(session, query):
            found[(model, name)] = Sample(_value(value, text), instant(stamp))
    return found


def _rows_of(session: Session, query: Select[Any], models: Collection[str] | None) -> Iterator[tuple[Any, ...]]:
    """The rows of ``query`` over ``metric_latest``, of ``models`` only when given: one array
    parameter on PostgreSQL, ``IN`` lists in chunks elsewhere."""
    model = MetricLatestRow.__table__.c.model  # type: ignore[attr-defined]
    if models is None:
        yield from driver_rows(session, query)
    elif session.get_bind().dialect.name == "postgresql":
        yield from driver_rows(session, query.where(_any_of(session, model, models)))
    else:
        for chunk in in_chunks(list(models)):
            yield from driver_rows(session, query.where(model.in_(chunk)))


def _any_of(session: Session, column: ColumnElement[str], values: Collection[str]) -> ColumnElement[bool]:
    """``column`` is one of ``values``: one array parameter on PostgreSQL whatever their number, an
    ``IN`` list elsewhere (one bound parameter each: a long list is for the caller to chunk)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == func.any(bindparam(None, list(values), ARRAY(Text)))
    return column.in_(list(values))


def _value(value: float | None, text: str | None) -> float | str:
    return value if value is not None else (text or "")


def _newest_before(
    session: Session, keys: list[tuple[str, str]], *, at: datetime, lookback: timedelta | None
) -> dict[tuple[str, str], Sample]:
    """The newest sample at or before ``at`` of each series in ``keys``: the few series that
    received a sample between the tick and the pass, read from the full sample table."""
    found: dict[tuple[str, str], Sample] = {}
    for chunk in in_chunks(keys):
        query = (
            select(MetricSampleRow)
            .where(tuple_(MetricSampleRow.model, MetricSampleRow.name).in_(chunk))
            .where(col(MetricSampleRow.at) <= at)
            .order_by(col(MetricSampleRow.at))
        )
        if lookback is not None:
            query = query.where(col(MetricSampleRow.at) >= at - lookback)
        for row in session.exec(query).all():
            found[(row.model, row.name)] = Sample(_value(row.value, row.text), row.at)
    return found


SeriesKey = tuple[str, str]
"""A stored series: (model, metric name)."""


def series(session: Session, model: str, name: str, *, since: datetime, until: datetime) -> list[Sample]:
    """One series' samples in ``[since, until]``, oldest first."""
    return series_of(session, {(model, name): since}, until=until)[(model, name)]


def series_of(
    session: Session, since: Mapping[SeriesKey, datetime], *, until: datetime
) -> dict[SeriesKey, list[Sample]]:
    """Several series at once, each from its own ``since`` to ``until`` (both ends included), oldest
    first: one query per distinct ``since`` (and :func:`~bot.storage.versioned.in_chunks` slice of
    its keys), read as columns. ``/slo status`` asks for every SLO's metrics; a query apiece cost
    it 1.5 of its 2 ms at eight series (bench/RESULTS.md)."""
    found: dict[SeriesKey, list[Sample]] = {key: [] for key in since}
    starting: dict[datetime, list[SeriesKey]] = {}
    for key, start in since.items():  # one range per window length: a handful, whatever the keys
        starting.setdefault(start, []).append(key)
    table = MetricSampleRow.__table__.c  # type: ignore[attr-defined]
    columns = core_select(table.model, table.name, table.at, table.value, table.text)
    for start, keys in starting.items():
        for chunk in in_chunks(keys):
            query = columns.where(tuple_(table.model, table.name).in_(chunk), table.at >= start, table.at <= until)
            for model, name, when, value, text in session.execute(query.order_by(table.at)):
                found[(model, name)].append(Sample(value if value is not None else (text or ""), ensure_utc(when)))
    return found


WindowRow = tuple[int, str, str, float, float | None]
"""(id, model, metric name, time in seconds since the epoch, value; ``None`` for a label text)."""


def window_rows(
    session: Session,
    *,
    since: Mapping[str, datetime],
    spans: Sequence[tuple[str, datetime, datetime]],
    after_id: int | None = None,
    last_ids: int | None = None,
    ids: Collection[int] = (),
) -> list[WindowRow]:
    """The samples windowed conditions read, in one query: per metric those after ``since[metric]``,
    those of ``(metric, from, to)`` in ``spans`` (both ends included), every sample with an id past
    ``after_id``, the newest ``last_ids`` ids, and those of ``ids``. Times come back as epoch
    seconds, read without building datetimes through the column type: a first read is 100,000s
    of rows."""
    table = MetricSampleRow.__table__  # type: ignore[attr-defined]
    c = table.c
    wanted = [and_(c.name == name, c.at > at) for name, at in since.items()]
    wanted += [and_(c.name == name, c.at >= start, c.at <= end) for name, start, end in spans]
    if after_id is not None:
        wanted.append(c.id > after_id)
    if last_ids is not None:
        wanted.append(c.id > core_select(func.max(c.id)).scalar_subquery() - last_ids)
    if ids:
        wanted.append(c.id.in_(sorted(ids)))
    query = core_select(c.id, c.model, c.name, type_coerce(c.at, String()), c.value).where(or_(false(), *wanted))
    return [(i, model, name, _epoch(at), value) for i, model, name, at, value in session.execute(query)]


def _epoch(at: object) -> float:
    """A raw ``at``: SQLite's ``YYYY-MM-DD HH:MM:SS.ffffff`` text (UTC), or PostgreSQL's datetime."""
    if isinstance(at, str):
        return datetime.fromisoformat(at).replace(tzinfo=UTC).timestamp()
    assert isinstance(at, datetime), at
    return ensure_utc(at).timestamp()


def prune(session: Session, *, before: datetime, limit: int | None = None) -> int:
    """Drop samples stamped before ``before`` (at most ``limit`` of them); return how many went.
    The latest value of each metric stays in ``metric_latest``."""
    doomed = core_select(MetricSampleRow.__table__.c.id).where(  # type: ignore[attr-defined]
        MetricSampleRow.__table__.c.at < before  # type: ignore[attr-defined]
    )
    if limit is not None:
        doomed = doomed.limit(limit)
    result = session.execute(delete(MetricSampleRow).where(col(MetricSampleRow.id).in_(doomed)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _number(value: float | str) -> float | None:
    return None if isinstance(value, str) else float(value)


def _text(value: float | str) -> str | None:
    return value if isinstance(value, str) else None
