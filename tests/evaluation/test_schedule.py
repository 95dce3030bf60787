"""The evaluation schedule: passes are judged as of their tick, so a run's jitter changes nothing.

The bug this pins down: ``for:`` was measured with the wall-clock time each pass happened to start,
so a pass that began a few milliseconds early counted 1.998 intervals as less than 2 and a breach
lasting exactly as long as ``for:`` allows was lost. Prometheus counts on scheduled timestamps.
"""

from __future__ import annotations

import logging
import multiprocessing
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.alerts import store
from bot.alerts.lifecycle import EventKind
from bot.clock import FrozenClock, SystemClock
from bot.config.holder import ConfigHolder
from bot.evaluation.schedule import EPOCH, EvaluationSchedule
from bot.jobs import build_scheduler
from bot.observability import Metrics
from bot.recording import Recorder
from bot.service import AlertService, every_channel
from bot.storage.database import make_engine, migrate, session
from bot.storage.tables import AlertEventRow

SECOND = timedelta(seconds=1)
MODEL = "svc"


def write_config(directory: Path, *, interval: timedelta, for_: timedelta) -> Path:
    (directory / "rules").mkdir(parents=True)
    (directory / "runbooks").mkdir()
    (directory / "runbooks" / "default.md").write_text("# {model}\n")
    (directory / "rules" / "r.yaml").write_text(
        "settings:\n"
        f"  evaluation_interval: {int(interval.total_seconds())}s\n"
        "  group_wait: 0s\n"
        "  stale_after: 5m\n"
        "metrics:\n  - {name: x}\n"
        "models:\n  - name: svc\n    channel: '#alerts'\n"
        "rules:\n"
        "  - name: breach\n"
        "    condition: x > 5\n"
        f"    for: {int(for_.total_seconds())}s\n"
        "    severity: P2\n"
        "    title: breach on {model}\n"
        "    cooldown: 0s\n"
    )
    return directory


def build_service(
    tmp_path: Path, *, interval: timedelta, for_: timedelta, clock: object
) -> tuple[AlertService, Engine]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{tmp_path}/bot.db")
    migrate(engine)
    holder = ConfigHolder(write_config(tmp_path / "config", interval=interval, for_=for_))
    service = AlertService(engine, clock, holder, every_channel(["log"]), metrics=Metrics())  # type: ignore[arg-type]
    return service, engine


def events(engine: Engine) -> list[tuple[str, datetime]]:
    with session(engine) as s:
        rows = s.exec(select(AlertEventRow).order_by(col(AlertEventRow.id))).all()
        return [(row.kind, row.at) for row in rows]


# --- the schedule itself ----------------------------------------------------------------------


def test_ticks_are_multiples_of_the_interval_since_the_epoch_so_replicas_agree() -> None:
    schedule = EvaluationSchedule(30 * SECOND)
    run = datetime(2026, 1, 5, 9, 0, 17, 400_000, tzinfo=UTC)

    assert schedule.tick_at(run) == datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
    assert (schedule.tick_at(run) - EPOCH) % (30 * SECOND) == timedelta(0)
    assert schedule.first_tick_after(run) == datetime(2026, 1, 5, 9, 0, 30, tzinfo=UTC)


def test_a_run_slightly_early_or_late_evaluates_its_own_tick() -> None:
    schedule = EvaluationSchedule(30 * SECOND)
    tick = datetime(2026, 1, 5, 9, 0, 30, tzinfo=UTC)

    assert schedule.next(tick - timedelta(milliseconds=3)) is not None
    assert schedule.tick_at(tick - timedelta(milliseconds=3)) == tick, "3 ms early is still this tick"
    late = EvaluationSchedule(30 * SECOND).next(tick + timedelta(seconds=29))
    assert late is not None and late.at == tick, "a late run still evaluates as of its tick"


def test_a_second_run_in_one_interval_evaluates_nothing() -> None:
    schedule = EvaluationSchedule(30 * SECOND)
    tick = datetime(2026, 1, 5, 9, 0, 30, tzinfo=UTC)

    assert schedule.next(tick) is not None
    assert schedule.next(tick + 10 * SECOND) is None


def test_ticks_skipped_entirely_are_counted_as_missed() -> None:
    schedule = EvaluationSchedule(10 * SECOND)
    tick = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)

    first, later = schedule.next(tick), schedule.next(tick + 41 * SECOND)

    assert first is not None and first.missed == 0
    assert later is not None and (later.at, later.missed) == (tick + 40 * SECOND, 3)


def test_missed_ticks_reach_the_log_and_metrics(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FrozenClock(datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC))
    service, _ = build_service(tmp_path, interval=10 * SECOND, for_=timedelta(0), clock=clock)
    schedule = EvaluationSchedule(10 * SECOND)

    service.evaluate_on_schedule(schedule)
    clock.advance(35 * SECOND)
    service.evaluate_on_schedule(schedule)

    assert "missed 2 evaluation(s)" in caplog.text
    assert "incident_bot_evaluations_missed_total 2.0" in service._metrics.exposition().decode()  # type: ignore[union-attr]


# --- no lost short incident -------------------------------------------------------------------


@pytest.mark.parametrize("interval_s", [1, 7, 30, 120, 300])
@pytest.mark.parametrize("for_intervals", [1, 2, 3])
def test_a_breach_of_exactly_for_plus_one_interval_always_fires_whatever_the_jitter(
    tmp_path: Path, interval_s: int, for_intervals: int
) -> None:
    interval = interval_s * SECOND
    rng = random.Random(interval_s * 10 + for_intervals)
    for trial in range(3):
        start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC) + 100 * interval * trial
        clock = FrozenClock(start)
        service, engine = build_service(
            tmp_path / f"t{trial}", interval=interval, for_=interval * for_intervals, clock=clock
        )
        schedule = EvaluationSchedule(interval)
        breach = range(1, for_intervals + 2)  # for: + one interval of breaching samples
        for k in range(for_intervals + 4):
            tick = start + interval * k
            service.ingest([(MODEL, "x", tick, 9.0 if k in breach else 1.0)])
            # the run starts up to a few ms early or most of an interval late: CPU load, a long pass
            jitter = rng.choice([-0.002, 0.0, 0.003, rng.uniform(0.0, 0.9) * interval_s])
            clock.advance(tick + jitter * SECOND - clock.now())
            service.evaluate_on_schedule(schedule)

        fired = [at for kind, at in events(engine) if kind == EventKind.FIRED.value]
        assert fired == [start + interval * (1 + for_intervals)], f"trial {trial}: {events(engine)}"


def _burn(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def test_the_real_scheduler_under_cpu_load_fires_a_breach_of_exactly_for_plus_one_interval(tmp_path: Path) -> None:
    interval = SECOND
    service, engine = build_service(tmp_path, interval=interval, for_=2 * interval, clock=SystemClock())
    schedule = EvaluationSchedule(interval)
    start = schedule.first_tick_after(datetime.now(UTC)) + interval
    # samples stamped on the coming ticks: 3 breaching (for: 2s + one interval), then recovered
    service.ingest([(MODEL, "x", start + interval * k, 9.0 if k < 3 else 1.0) for k in range(6)])
    done = threading.Event()

    def evaluate() -> None:
        service.evaluate_on_schedule(schedule)
        if schedule.tick_at(datetime.now(UTC)) >= start + 4 * interval:
            done.set()

    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=_burn, args=(stop,)) for _ in range(2)]
    scheduler = build_scheduler(
        evaluate=evaluate,
        escalate=lambda: None,
        watchdog=lambda: None,
        release=lambda: None,
        evaluation_interval=interval,
        evaluation_grid=schedule.tick_at(datetime.now(UTC)),
    )
    for burner in burners:
        burner.start()
    scheduler.start()
    try:
        assert done.wait(timeout=30), "the scheduler never reached the recovery tick"
    finally:
        scheduler.shutdown(wait=True)
        stop.set()
        for burner in burners:
            burner.join()

    fired = [at for kind, at in events(engine) if kind == EventKind.FIRED.value]
    assert fired == [start + 2 * interval], events(engine)
    with session(engine) as s:
        assert not store.open_alerts(s), "it auto-resolved at the recovery tick"


def test_a_pass_that_loses_a_race_to_a_click_decides_again_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A click between the pass's read and its write refuses the pass's resolve (the alert moved
    on): the whole pass rolls back and is tried again from fresh data in the same run, not a tick
    (up to minutes) later."""
    caplog.set_level(logging.INFO, logger="bot.service")
    clock = FrozenClock(datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC))
    service, engine = build_service(tmp_path, interval=10 * SECOND, for_=timedelta(0), clock=clock)
    schedule = EvaluationSchedule(10 * SECOND)
    service.ingest([(MODEL, "x", clock.now(), 9.0)])
    service.evaluate_on_schedule(schedule)
    with session(engine) as s:
        [firing] = store.open_alerts(s).values()
    clock.advance(10 * SECOND)
    service.ingest([(MODEL, "x", clock.now(), 1.0)])
    record, clicked = Recorder.whole_pass_of, []

    def a_click_lands_first(self: Recorder, *args: Any, **kwargs: Any) -> None:
        if not clicked:
            clicked.append(service.acknowledge(firing.id or 0, actor="U_ANA"))  # its own transaction
        record(self, *args, **kwargs)

    monkeypatch.setattr(Recorder, "whole_pass_of", a_click_lands_first)
    result = service.evaluate_on_schedule(schedule)

    assert result is not None and result.conflicts == 0
    assert [kind for kind, _ in events(engine)] == ["fired", "acknowledged", "auto_resolved"]
    assert "evaluation pass lost a race and was rolled back" in caplog.text
