"""Reading rows straight through the driver: every row, in order, a bounded number at a time; on
PostgreSQL from a cursor on the server, so a pass's 150,000 latest values are never all in the
driver's buffer at once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.metrics import store
from bot.storage.database import session
from bot.storage.driver_rows import FETCH, SERVER_FETCH, driver_rows
from bot.storage.tables import MetricLatestRow

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_every_row_comes_back_in_order_across_fetches(engine: Engine) -> None:
    count = max(FETCH, SERVER_FETCH) + 7
    with session(engine) as s, s.begin():
        store.record(s, [(f"m{n:05d}", "g", T0, float(n)) for n in range(count)])
    query = select(MetricLatestRow.model, MetricLatestRow.value).order_by(MetricLatestRow.model)
    with session(engine) as s, s.begin():
        rows = list(driver_rows(s, query))  # type: ignore[arg-type]
    assert rows == [(f"m{n:05d}", float(n)) for n in range(count)]


def test_on_postgresql_the_rows_are_read_from_a_cursor_on_the_server(pg_engine: Engine) -> None:
    with session(pg_engine) as s, s.begin():
        store.record(s, [(f"m{n:05d}", "g", T0, float(n)) for n in range(SERVER_FETCH + 1)])
    with session(pg_engine) as s, s.begin():
        rows = driver_rows(s, select(MetricLatestRow.model))  # type: ignore[arg-type]
        next(rows)
        open_cursors = s.execute(text("SELECT count(*) FROM pg_cursors WHERE NOT is_holdable")).scalar()
        rest = sum(1 for _ in rows)
    assert open_cursors == 1, "the result stays on the server, fetched a part at a time"
    assert rest == SERVER_FETCH
