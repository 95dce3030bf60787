"""Metric sample storage: every sample for windows, the newest per metric for evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, tuple_
from sqlmodel import Session, col, select

from bot.clock import ensure_utc
from bot.metrics.samples import Sample
from bot.storage.tables import MetricLatestRow, MetricSampleRow

Point = tuple[str, str, datetime, float | str]
"""(model, metric name, time, value or label text)."""


def record(session: Session, points: Iterable[Point]) -> int:
    """Store samples and move each metric's "latest" forward (never backward: a late,
    out-of-order sample is kept for windows but does not overwrite a newer value)."""
    # SQLite keeps no offset: store the UTC instant, or a +01:00 time would come back shifted
    batch = [(m, n, ensure_utc(at), v) for m, n, at, v in points]
    if not batch:
        return 0
    session.add_all(MetricSampleRow(model=m, name=n, at=at, value=_number(v), text=_text(v)) for m, n, at, v in batch)
    newest: dict[tuple[str, str], Point] = {}
    for point in batch:
        key = (point[0], point[1])
        if key not in newest or point[2] >= newest[key][2]:
            newest[key] = point
    existing = {
        (row.model, row.name): row
        for row in session.exec(
            select(MetricLatestRow).where(tuple_(MetricLatestRow.model, MetricLatestRow.name).in_(list(newest)))
        ).all()
    }
    for key, (model, name, at, value) in newest.items():
        row = existing.get(key)
        if row is None:
            session.add(MetricLatestRow(model=model, name=name, at=at, value=_number(value), text=_text(value)))
        elif ensure_utc(row.at) <= at:
            row.at, row.value, row.text = at, _number(value), _text(value)
            session.add(row)
    return len(batch)


def latest(session: Session) -> dict[str, dict[str, Sample]]:
    """Plain columns, not ORM objects: this runs every evaluation pass over every metric of
    every model, and building 15,000 model instances cost more than the evaluation itself."""
    columns = select(  # type: ignore[call-overload]  # sqlmodel's select() has no 5-column overload
        MetricLatestRow.model, MetricLatestRow.name, MetricLatestRow.at, MetricLatestRow.value, MetricLatestRow.text
    )
    out: dict[str, dict[str, Sample]] = {}
    for model, name, at, value, text in session.execute(columns):
        out.setdefault(model, {})[name] = Sample(value if value is not None else (text or ""), at)
    return out


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
