"""Metric sample storage on SQLite and PostgreSQL: every sample for windows, the newest for rules."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy.engine import Engine

from bot.metrics import store
from bot.metrics.samples import Sample
from bot.metrics.store import Point
from bot.storage import versioned
from bot.storage.database import session

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
FRAUD, SUPPORT = "fraud-detector-v2", "support-bot"


def record(engine: Engine, *points: Point) -> int:
    with session(engine) as s, s.begin():
        return store.record(s, points)


def latest(engine: Engine) -> dict[str, dict[str, Sample]]:
    with session(engine) as s:
        return store.latest(s)


def series(engine: Engine, model: str, name: str, since: datetime, until: datetime) -> list[Sample]:
    with session(engine) as s:
        return store.series(s, model, name, since=since, until=until)


def test_recorded_samples_become_the_latest_per_model_and_metric(engine: Engine) -> None:
    assert record(engine, (FRAUD, "p99_latency_ms", T0, 6100), (SUPPORT, "daily_cost_usd", T0, 12.5)) == 2
    assert record(engine, (FRAUD, "p99_latency_ms", T0 + MINUTE, 4200.0)) == 1

    assert latest(engine) == {
        FRAUD: {"p99_latency_ms": Sample(4200.0, T0 + MINUTE)},
        SUPPORT: {"daily_cost_usd": Sample(12.5, T0)},
    }


def test_latest_of_a_share_reads_only_its_models_even_as_of_a_tick_a_newer_sample_postdates(engine: Engine) -> None:
    """An evaluator sharing the models with others reads only its own (issue 16, point 5)."""
    record(engine, (FRAUD, "p99_latency_ms", T0, 6100), (SUPPORT, "p99_latency_ms", T0, 240), ("third", "x", T0, 1))
    record(engine, (FRAUD, "p99_latency_ms", T0 + MINUTE, 4200.0), ("third", "x", T0 + MINUTE, 2))

    with session(engine) as s:
        now = store.latest(s, models=[FRAUD, SUPPORT])
        at_tick = store.latest(s, at=T0, models=[FRAUD])

    assert now == {
        FRAUD: {"p99_latency_ms": Sample(4200.0, T0 + MINUTE)},
        SUPPORT: {"p99_latency_ms": Sample(240.0, T0)},
    }
    assert at_tick == {FRAUD: {"p99_latency_ms": Sample(6100.0, T0)}}


def test_latest_of_named_metrics_reads_only_those_even_as_of_a_tick_a_newer_sample_postdates(engine: Engine) -> None:
    """A pass reads only the metrics its rules read (issue 16): a fleet pushes gauges none reads."""
    record(engine, (FRAUD, "p99_latency_ms", T0, 6100), (FRAUD, "fan_rpm", T0, 900), (SUPPORT, "fan_rpm", T0, 1))
    record(engine, (FRAUD, "p99_latency_ms", T0 + MINUTE, 4200.0), (SUPPORT, "p99_latency_ms", T0 + MINUTE, 240))

    with session(engine) as s:
        now = store.latest(s, names=["p99_latency_ms"])
        at_tick = store.latest(s, at=T0, names=["p99_latency_ms", "daily_cost_usd"], models=[FRAUD, SUPPORT])

    assert now == {
        FRAUD: {"p99_latency_ms": Sample(4200.0, T0 + MINUTE)},
        SUPPORT: {"p99_latency_ms": Sample(240.0, T0 + MINUTE)},
    }
    assert at_tick == {FRAUD: {"p99_latency_ms": Sample(6100.0, T0)}}


def test_recording_nothing_stores_nothing(engine: Engine) -> None:
    assert record(engine) == 0
    assert latest(engine) == {}


def test_a_late_older_sample_is_kept_for_windows_but_does_not_move_latest_back(engine: Engine) -> None:
    record(engine, (FRAUD, "p99_latency_ms", T0 + 5 * MINUTE, 6100.0))
    record(engine, (FRAUD, "p99_latency_ms", T0, 900.0))  # arrives late

    assert latest(engine)[FRAUD]["p99_latency_ms"] == Sample(6100.0, T0 + 5 * MINUTE)
    assert series(engine, FRAUD, "p99_latency_ms", T0 - MINUTE, T0 + 10 * MINUTE) == [
        Sample(900.0, T0),
        Sample(6100.0, T0 + 5 * MINUTE),
    ]


def test_the_newest_of_one_batch_wins_whatever_its_order(engine: Engine) -> None:
    record(
        engine,
        (FRAUD, "p99_latency_ms", T0 + 2 * MINUTE, 7000.0),
        (FRAUD, "p99_latency_ms", T0, 100.0),
        (FRAUD, "p99_latency_ms", T0 + MINUTE, 200.0),
    )
    assert latest(engine)[FRAUD]["p99_latency_ms"] == Sample(7000.0, T0 + 2 * MINUTE)


def test_labels_are_stored_as_text(engine: Engine) -> None:
    record(engine, (FRAUD, "top_drifted_features", T0, "amount, merchant_country"))
    record(engine, (FRAUD, "top_drifted_features", T0 + MINUTE, "device_id"))

    assert latest(engine)[FRAUD]["top_drifted_features"] == Sample("device_id", T0 + MINUTE)
    assert [s.value for s in series(engine, FRAUD, "top_drifted_features", T0, T0 + MINUTE)] == [
        "amount, merchant_country",
        "device_id",
    ]


def test_a_metric_can_change_from_a_number_to_a_label_and_back(engine: Engine) -> None:
    record(engine, (FRAUD, "status", T0, 1.0))
    record(engine, (FRAUD, "status", T0 + MINUTE, "degraded"))
    assert latest(engine)[FRAUD]["status"].value == "degraded"
    record(engine, (FRAUD, "status", T0 + 2 * MINUTE, 0.0))
    assert latest(engine)[FRAUD]["status"].value == 0.0


def test_a_series_window_includes_both_bounds_and_nothing_else(engine: Engine) -> None:
    record(engine, *[(FRAUD, "p99_latency_ms", T0 + i * MINUTE, float(i)) for i in range(10)])
    record(engine, (FRAUD, "current_accuracy", T0 + 3 * MINUTE, 0.9), (SUPPORT, "p99_latency_ms", T0, 1.0))

    window = series(engine, FRAUD, "p99_latency_ms", T0 + 3 * MINUTE, T0 + 6 * MINUTE)
    assert [s.value for s in window] == [3.0, 4.0, 5.0, 6.0]
    assert [s.at for s in window] == [T0 + i * MINUTE for i in range(3, 7)]
    assert series(engine, FRAUD, "p99_latency_ms", T0 + 20 * MINUTE, T0 + 30 * MINUTE) == []


def test_several_series_are_read_together_each_over_its_own_window(engine: Engine, monkeypatch: Any) -> None:
    monkeypatch.setattr(versioned, "KEYS_PER_QUERY", 2)  # three keys of one window: two chunks
    record(engine, *[(FRAUD, "p99_latency_ms", T0 + i * MINUTE, float(i)) for i in range(10)])
    record(engine, *[(FRAUD, "current_accuracy", T0 + i * MINUTE, 0.9 - i / 100) for i in range(10)])
    record(engine, (SUPPORT, "p99_latency_ms", T0 + 5 * MINUTE, 1.0), (SUPPORT, "status", T0 + 3 * MINUTE, "degraded"))
    record(engine, (SUPPORT, "unasked", T0 + 5 * MINUTE, 2.0))

    since = {
        (FRAUD, "p99_latency_ms"): T0 + 7 * MINUTE,
        (FRAUD, "current_accuracy"): T0 + 2 * MINUTE,
        (SUPPORT, "p99_latency_ms"): T0 + 2 * MINUTE,
        (SUPPORT, "status"): T0 + 2 * MINUTE,
        (SUPPORT, "never-pushed"): T0,
    }
    with session(engine) as s:
        found = store.series_of(s, since, until=T0 + 8 * MINUTE)

    assert set(found) == set(since)
    assert [(x.value, x.at) for x in found[(FRAUD, "p99_latency_ms")]] == [
        (7.0, T0 + 7 * MINUTE),
        (8.0, T0 + 8 * MINUTE),
    ]
    assert [x.at for x in found[(FRAUD, "current_accuracy")]] == [T0 + i * MINUTE for i in range(2, 9)]
    assert found[(SUPPORT, "p99_latency_ms")] == [Sample(1.0, T0 + 5 * MINUTE)]
    assert found[(SUPPORT, "status")] == [Sample("degraded", T0 + 3 * MINUTE)]
    assert found[(SUPPORT, "never-pushed")] == []


def test_prune_drops_samples_older_than_the_cut_but_keeps_latest(engine: Engine) -> None:
    record(engine, *[(FRAUD, "p99_latency_ms", T0 + i * MINUTE, float(i)) for i in range(5)])

    with session(engine) as s, s.begin():
        assert store.prune(s, before=T0 + 3 * MINUTE) == 3

    assert [s.value for s in series(engine, FRAUD, "p99_latency_ms", T0 - MINUTE, T0 + 10 * MINUTE)] == [3.0, 4.0]
    assert latest(engine)[FRAUD]["p99_latency_ms"] == Sample(4.0, T0 + 4 * MINUTE)
    with session(engine) as s, s.begin():
        store.prune(s, before=T0 + 60 * MINUTE)
    assert latest(engine)[FRAUD]["p99_latency_ms"] == Sample(4.0, T0 + 4 * MINUTE)


def test_a_sample_time_with_another_offset_is_stored_as_the_same_instant(engine: Engine) -> None:
    berlin = timezone(timedelta(hours=1))
    record(engine, (FRAUD, "p99_latency_ms", datetime(2026, 1, 5, 10, 0, tzinfo=berlin), 6100.0))

    sample = latest(engine)[FRAUD]["p99_latency_ms"]
    assert sample.at == T0 and sample.at.utcoffset() == timedelta(0)
    assert series(engine, FRAUD, "p99_latency_ms", T0, T0) == [sample]


def test_a_pass_reads_each_series_as_of_its_tick_within_the_lookback(engine: Engine) -> None:
    record(engine, (FRAUD, "p99_latency_ms", T0, 100.0), (FRAUD, "p99_latency_ms", T0 + 2 * MINUTE, 6100.0))
    record(engine, (FRAUD, "p99_latency_ms", T0 + MINUTE, 900.0))  # late and out of order: lands at its time
    record(engine, (SUPPORT, "daily_cost_usd", T0 + 3 * MINUTE, 12.5))

    def as_of(at: datetime, lookback: timedelta | None = None) -> dict[str, dict[str, Sample]]:
        with session(engine) as s:
            return store.latest(s, at=at, lookback=lookback)

    assert as_of(T0 + 90 * timedelta(seconds=1)) == {FRAUD: {"p99_latency_ms": Sample(900.0, T0 + MINUTE)}}
    assert as_of(T0 + 2 * MINUTE)[FRAUD] == {"p99_latency_ms": Sample(6100.0, T0 + 2 * MINUTE)}, "at the tick counts"
    assert as_of(T0 - MINUTE) == {}, "nothing yet"
    assert as_of(T0 + 90 * timedelta(seconds=1), lookback=timedelta(seconds=20)) == {}, "beyond the lookback"
    assert as_of(T0 + 10 * MINUTE) == latest(engine), "a tick after every sample reads the newest"


def test_a_push_of_fifty_thousand_samples_is_stored_whole(engine: Engine) -> None:
    """No size limit: 2,500 models x 20 metrics in one list (one IN (…) over a pull this size
    used to exceed both databases' bound-parameter limits and lose the whole pull)."""
    points: list[Point] = [
        (f"model-{m:04d}", f"metric_{n:02d}", T0, float(m * 100 + n)) for m in range(2500) for n in range(20)
    ]
    assert record(engine, *points) == 50_000
    assert record(engine, *[(model, name, T0 + MINUTE, value + 0.5) for model, name, _at, value in points]) == 50_000

    newest = latest(engine)
    assert sum(len(metrics) for metrics in newest.values()) == 50_000
    assert newest["model-2499"]["metric_19"] == Sample(249919.5, T0 + MINUTE)
    assert len(series(engine, "model-0007", "metric_03", T0, T0 + MINUTE)) == 2


def test_two_first_pushes_of_one_series_at_once_both_store(engine: Engine) -> None:
    """Concurrent first pushes used to collide on metric_latest's key (503 on PostgreSQL)."""
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def push(n: int) -> None:
        start.wait()
        try:
            record(engine, (FRAUD, "p99_latency_ms", T0 + n * MINUTE, float(n)))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=push, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert latest(engine)[FRAUD]["p99_latency_ms"] == Sample(7.0, T0 + 7 * MINUTE)


def test_a_metric_kept_without_history_writes_no_samples_and_a_pass_as_of_a_tick_reads_its_value_before(
    engine: Engine,
) -> None:
    """Pulled metrics no window or SLO reads (issue 20, point 2): latest values only, plus the one
    before, which a pass whose tick the newest postdates reads."""
    keeps_history = {"p99_latency_ms"}.__contains__
    with session(engine) as s, s.begin():
        store.record(s, [(FRAUD, "p99_latency_ms", T0, 420.0), (FRAUD, "windowed", T0, 1.0)], history=lambda n: False)
    with session(engine) as s, s.begin():
        store.record(s, [(FRAUD, "p99_latency_ms", T0 + MINUTE, 6100.0)], history=keeps_history)

    assert series(engine, FRAUD, "p99_latency_ms", T0 - MINUTE, T0 + MINUTE) == [Sample(6100.0, T0 + MINUTE)]
    assert series(engine, FRAUD, "windowed", T0 - MINUTE, T0 + MINUTE) == [], "no history asked for"
    with session(engine) as s:
        as_of_tick = store.latest(s, at=T0 + timedelta(seconds=30), lookback=15 * MINUTE)
        too_far = store.latest(s, at=T0 + timedelta(seconds=30), lookback=timedelta(seconds=10))
    assert as_of_tick[FRAUD]["p99_latency_ms"] == Sample(420.0, T0), "the value before the newest, from its row"
    assert as_of_tick[FRAUD]["windowed"] == Sample(1.0, T0)
    assert "p99_latency_ms" not in too_far.get(FRAUD, {}), "beyond the lookback it is no data, as before"


def test_a_late_out_of_order_sample_still_decides_over_the_value_before(engine: Engine) -> None:
    record(engine, (FRAUD, "p99_latency_ms", T0, 100.0))
    record(engine, (FRAUD, "p99_latency_ms", T0 + 2 * MINUTE, 300.0))
    record(engine, (FRAUD, "p99_latency_ms", T0 + MINUTE, 200.0))  # arrives last, stamped between

    with session(engine) as s:
        seen = store.latest(s, at=T0 + 90 * timedelta(seconds=1))
    assert seen[FRAUD]["p99_latency_ms"] == Sample(200.0, T0 + MINUTE)
