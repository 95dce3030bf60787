"""Metric sample storage: every sample for windows, the newest per metric for evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Executable, delete, insert, tuple_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from bot.clock import ensure_utc
from bot.metrics.samples import Sample
from bot.storage.tables import MetricLatestRow, MetricSampleRow

Point = tuple[str, str, datetime, float | str]
"""(model, metric name, time, value or label text)."""


CHUNK = 1000
"""Rows per statement: 5,000 bound values, within SQLite's 32,766 and PostgreSQL's 65,535, so a
pull or a push of any size is stored (one ``IN (…)`` over a whole 200,000-value pull used to
exceed both and lose the pull)."""


def record(session: Session, points: Iterable[Point]) -> int:
    """Store samples and move each metric's "latest" forward (never backward: a late,
    out-of-order sample is kept for windows but does not overwrite a newer value).

    Bulk statements in bounded chunks, not ORM objects: an insert per chunk for the samples and
    one ``INSERT … ON CONFLICT DO UPDATE … WHERE newer`` per chunk for the latest values, which
    is also what keeps two first pushes of one series racing on PostgreSQL from colliding on the
    primary key (that answered 503)."""
    # SQLite keeps no offset: store the UTC instant, or a +01:00 time would come back shifted
    batch = [(m, n, ensure_utc(at), v) for m, n, at, v in points]
    if not batch:
        return 0
    samples: list[dict[str, Any]] = [
        {"model": m, "name": n, "at": at, "value": _number(v), "text": _text(v)} for m, n, at, v in batch
    ]
    for start in range(0, len(samples), CHUNK):
        session.execute(insert(MetricSampleRow), samples[start : start + CHUNK])
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for sample in samples:
        key = (sample["model"], sample["name"])
        if key not in newest or sample["at"] >= newest[key]["at"]:
            newest[key] = sample
    latest_rows = list(newest.values())
    for start in range(0, len(latest_rows), CHUNK):
        session.execute(_move_latest_forward(session, latest_rows[start : start + CHUNK]))
    return len(batch)


def _move_latest_forward(session: Session, rows: list[dict[str, Any]]) -> Executable:
    """``INSERT … ON CONFLICT (model, name) DO UPDATE`` where the stored value is not newer."""
    dialect = session.get_bind().dialect.name
    upsert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = upsert(MetricLatestRow).values(rows)
    fresh = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[MetricLatestRow.model, MetricLatestRow.name],
        set_={"at": fresh.at, "value": fresh.value, "text": fresh.text},
        where=col(MetricLatestRow.at) <= fresh.at,
    )


def latest(
    session: Session, *, at: datetime | None = None, lookback: timedelta | None = None
) -> dict[str, dict[str, Sample]]:
    """Each series' newest sample, or with ``at`` its newest at or before ``at`` (the pass's
    nominal time; as Prometheus' instant lookup, a sample stamped after the tick is not seen by
    it, even if it arrived before the pass ran). ``lookback`` bounds how far back that search goes.

    Plain columns, not ORM objects: this runs every evaluation pass over every metric of
    every model, and building 15,000 model instances cost more than the evaluation itself."""
    columns = select(  # type: ignore[call-overload]  # sqlmodel's select() has no 5-column overload
        MetricLatestRow.model, MetricLatestRow.name, MetricLatestRow.at, MetricLatestRow.value, MetricLatestRow.text
    )
    out: dict[str, dict[str, Sample]] = {}
    ahead: list[tuple[str, str]] = []
    for model, name, sampled, value, text in session.execute(columns):
        if at is not None and ensure_utc(sampled) > at:
            ahead.append((model, name))
            continue
        out.setdefault(model, {})[name] = Sample(value if value is not None else (text or ""), sampled)
    if ahead and at is not None:
        for (model, name), sample in _newest_before(session, ahead, at=at, lookback=lookback).items():
            out.setdefault(model, {})[name] = sample
    return out


def _newest_before(
    session: Session, keys: list[tuple[str, str]], *, at: datetime, lookback: timedelta | None
) -> dict[tuple[str, str], Sample]:
    """The newest sample at or before ``at`` of each series in ``keys``: the few series that
    received a sample between the tick and the pass, read from the full sample table."""
    found: dict[tuple[str, str], Sample] = {}
    for start in range(0, len(keys), 500):  # keep the IN list within every database's limits
        query = (
            select(MetricSampleRow)
            .where(tuple_(MetricSampleRow.model, MetricSampleRow.name).in_(keys[start : start + 500]))
            .where(col(MetricSampleRow.at) <= at)
            .order_by(col(MetricSampleRow.at))
        )
        if lookback is not None:
            query = query.where(col(MetricSampleRow.at) >= at - lookback)
        for row in session.exec(query).all():
            found[(row.model, row.name)] = Sample(row.value if row.value is not None else (row.text or ""), row.at)
    return found


def series(session: Session, model: str, name: str, *, since: datetime, until: datetime) -> list[Sample]:
    rows = session.exec(
        select(MetricSampleRow)
        .where(MetricSampleRow.model == model, MetricSampleRow.name == name)
        .where(col(MetricSampleRow.at) >= since, col(MetricSampleRow.at) <= until)
        .order_by(col(MetricSampleRow.at))
    ).all()
    return [Sample(r.value if r.value is not None else (r.text or ""), ensure_utc(r.at)) for r in rows]


def prune(session: Session, *, before: datetime) -> int:
    """Drop samples older than the longest window anyone asks about."""
    result = session.execute(delete(MetricSampleRow).where(col(MetricSampleRow.at) < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _number(value: float | str) -> float | None:
    return None if isinstance(value, str) else float(value)


def _text(value: float | str) -> str | None:
    return value if isinstance(value, str) else None
