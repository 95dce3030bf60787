"""The window cache on SQLite and PostgreSQL: after a first full read each pass reads only the new
rows, and what a pass gets is always what a full read of the windows would give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from bot.metrics import store
from bot.metrics.samples import Points
from bot.metrics.store import Point
from bot.metrics.window_cache import HOLE_PATIENCE, WindowCache
from bot.storage.database import session
from bot.storage.tables import MetricSampleRow

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOUR, MINUTE = timedelta(hours=1), timedelta(minutes=1)
FRAUD, SUPPORT = "fraud-detector-v2", "support-bot"
RANGES = {"helpfulness": HOUR, "requests_total": 5 * MINUTE}


def record(engine: Engine, *points: Point) -> None:
    with session(engine) as s, s.begin():
        store.record(s, points)


def spans_at(now: datetime) -> dict[str, tuple[str, datetime, datetime]]:
    """``ago(p99_latency_ms, "1d")`` with a 5-minute staleness."""
    return {"ago_p99_latency_ms_1d": ("p99_latency_ms", now - timedelta(days=1, minutes=5), now - timedelta(days=1))}


def read(engine: Engine, cache: WindowCache, now: datetime) -> dict[str, dict[str, Points]]:
    with session(engine) as s:
        return cache.read(s, ranges=RANGES, spans=spans_at(now), now=now)


def plain(windows: dict[str, dict[str, Points]]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    return {(m, k): list(zip(p.times, p.values, strict=True)) for m, keys in windows.items() for k, p in keys.items()}


def test_each_pass_sees_what_a_full_read_sees(engine: Engine) -> None:
    cache = WindowCache()
    for k in range(130):  # 65 min of samples each 30 s, and a label the windows skip
        at = T0 + k * timedelta(seconds=30)
        record(engine, (SUPPORT, "helpfulness", at, 0.5 + k / 1000), (SUPPORT, "requests_total", at, 10.0 * k))
        record(engine, (SUPPORT, "top_drifted_features", at, "age"))
    now = T0 + 129 * timedelta(seconds=30)
    record(engine, (FRAUD, "p99_latency_ms", now - timedelta(days=1, minutes=2), 900.0))
    first = read(engine, cache, now)

    assert plain(first)[(SUPPORT, "helpfulness")][0][0] == (now - HOUR + timedelta(seconds=30)).timestamp()
    assert len(plain(first)[(SUPPORT, "helpfulness")]) == 120
    assert len(plain(first)[(SUPPORT, "requests_total")]) == 10
    assert plain(first)[(FRAUD, "ago_p99_latency_ms_1d")] == [(now.timestamp() - 86400 - 120, 900.0)]

    # new samples, one of them late (stamped before samples already read), then a later pass
    record(engine, (SUPPORT, "helpfulness", now + timedelta(seconds=30), 0.9))
    record(engine, (SUPPORT, "helpfulness", now - timedelta(seconds=45), 0.1))
    record(engine, (FRAUD, "helpfulness", now, 0.7))
    later = now + MINUTE
    incremental = read(engine, cache, later)

    assert plain(incremental) == plain(read(engine, WindowCache(), later))
    assert (later - timedelta(seconds=45) - MINUTE).timestamp() in [
        t for t, _ in plain(incremental)[(SUPPORT, "helpfulness")]
    ]
    assert plain(incremental)[(FRAUD, "helpfulness")] == [(now.timestamp(), 0.7)]
    assert plain(incremental)[(FRAUD, "ago_p99_latency_ms_1d")] == [(now.timestamp() - 86400 - 120, 900.0)]
    assert (FRAUD, "ago_p99_latency_ms_1d") not in plain(read(engine, cache, now + 5 * MINUTE))  # stale by then


def test_an_earlier_pass_reads_afresh(engine: Engine) -> None:
    cache = WindowCache()
    for k in range(10):
        record(engine, (SUPPORT, "requests_total", T0 + k * MINUTE, float(k)))
    late = read(engine, cache, T0 + 9 * MINUTE)
    early = read(engine, cache, T0 + 5 * MINUTE)  # the cache let go of minute 0…4

    assert [v for _, v in plain(late)[(SUPPORT, "requests_total")]] == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert [v for _, v in plain(early)[(SUPPORT, "requests_total")]] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_a_row_committed_after_a_newer_one_is_not_missed(engine: Engine) -> None:
    """PostgreSQL hands out ids before commit: id 3 may commit after id 4 was read."""
    table = MetricSampleRow.__table__  # type: ignore[attr-defined]

    def insert_row(row_id: int, minute: int, value: float) -> None:
        with session(engine) as s, s.begin():
            s.execute(
                insert(table).values(id=row_id, model=SUPPORT, name="helpfulness", at=T0 + minute * MINUTE, value=value)
            )

    cache = WindowCache()
    insert_row(1, 0, 0.1)
    insert_row(2, 1, 0.2)
    read(engine, cache, T0 + 2 * MINUTE)
    insert_row(4, 3, 0.4)
    assert [v for _, v in plain(read(engine, cache, T0 + 3 * MINUTE))[(SUPPORT, "helpfulness")]] == [0.1, 0.2, 0.4]

    insert_row(3, 2, 0.3)  # the slow transaction commits

    seen = plain(read(engine, cache, T0 + 4 * MINUTE))[(SUPPORT, "helpfulness")]
    assert [v for _, v in seen] == [0.1, 0.2, 0.3, 0.4]


def test_a_hole_that_never_fills_is_given_up(engine: Engine) -> None:
    record(engine, (SUPPORT, "helpfulness", T0, 0.5))
    cache = WindowCache()
    read(engine, cache, T0)
    with session(engine) as s, s.begin():
        last = max(row[0] for row in store.window_rows(s, since={}, spans=[], last_ids=1))
        s.execute(
            insert(MetricSampleRow.__table__).values(  # type: ignore[attr-defined]
                id=last + 5, model=SUPPORT, name="helpfulness", at=T0 + MINUTE, value=0.6
            )
        )
    read(engine, cache, T0 + MINUTE)
    assert len(cache._holes) == 4  # ids last+1 … last+4: rolled back, or still open
    read(engine, cache, T0 + MINUTE + HOLE_PATIENCE + MINUTE)
    assert cache._holes == {}
