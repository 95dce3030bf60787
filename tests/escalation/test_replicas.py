"""Two replicas on one PostgreSQL database sweep escalations at the same time (SPEC §5).

Each replica has its own engine (its own connection pool, like a second process). The due rows
are claimed with ``FOR UPDATE SKIP LOCKED``, so whichever replica runs a step, it runs once:
one ``escalated`` event per incident and step, one outbox row per step and channel, none missed.
Each model's alert is its own incident here (a storm threshold above the fleet).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.alerts.lifecycle import Alert, EventKind
from bot.clock import FrozenClock
from bot.config.loader import Config
from bot.incidents.incident import IncidentEventKind
from bot.service import AlertService, every_channel
from bot.storage.database import make_engine, session
from bot.storage.tables import IncidentEventRow, IncidentRow, OutboxRow

MINUTE = timedelta(minutes=1)
ALERTS = 200
CHANNELS = ["recording", "pagerduty"]


def slow_hold(_channel: str, _alert: Alert, _event: object) -> timedelta:
    """Runs inside the sweep's transaction for each notification: keeps the row locks held
    long enough that the two replicas' sweeps really overlap."""
    time.sleep(0.001)
    return timedelta(0)


@pytest.fixture
def open_to_any_model(config: Config) -> Config:
    update = {"accept_unknown_models": True, "storm_threshold": 10 * ALERTS}
    return replace(config, settings=config.settings.model_copy(update=update))


@pytest.fixture
def replicas(pg_engine: Engine, clock: FrozenClock, open_to_any_model: Config) -> Iterator[list[AlertService]]:
    second = make_engine(pg_engine.url.render_as_string(hide_password=False))
    services = [
        AlertService(engine, clock, lambda: open_to_any_model, every_channel(CHANNELS), hold=slow_hold)
        for engine in (pg_engine, second)
    ]
    yield services
    second.dispose()


def fire_drift_alerts(service: AlertService, clock: FrozenClock, count: int) -> None:
    """``count`` models report drift; one evaluation pass fires a P2 alert for each."""
    now = clock.now()
    points = []
    for i in range(count):
        model = f"model-{i:03d}"
        points += [(model, "drifted_feature_count", now, 9.0), (model, "total_features", now, 10.0)]
    service.ingest(points)
    fired = service.evaluate_once().transitions
    assert len(fired) == count and {t.event.kind for t in fired} == {EventKind.FIRED}


def run_concurrently(replicas: list[AlertService], sweep: Callable[[AlertService], int]) -> list[int]:
    """Start ``sweep`` on every replica at the same moment; return how many steps each ran."""
    barrier = threading.Barrier(len(replicas))
    ran = [0] * len(replicas)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait()
            ran[index] = sweep(replicas[index])
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    return ran


def sweep_until_idle(service: AlertService, *, limit: int = 20) -> int:
    """What the scheduler does: sweep in small batches until a couple of sweeps find nothing."""
    total, idle = 0, 0
    while idle < 3:
        ran = service.escalate_due(limit=limit)
        total += ran
        idle = 0 if ran else idle + 1
        if not ran:
            time.sleep(0.01)
    return total


def escalation_steps(engine: Engine) -> dict[int, list[object]]:
    """incident id → the steps of its ``escalated`` events, in the order they were stored."""
    with session(engine) as s:
        rows = s.exec(
            select(IncidentEventRow.incident_id, IncidentEventRow.data)
            .where(IncidentEventRow.kind == IncidentEventKind.ESCALATED.value)
            .order_by(col(IncidentEventRow.id))
        ).all()
    steps: dict[int, list[object]] = defaultdict(list)
    for incident_id, data in rows:
        steps[incident_id].append(data["step"])
    return dict(steps)


def escalation_rows(engine: Engine) -> list[tuple[str, int | None, object, str]]:
    """(channel, incident id, step, idempotency key) of every escalation notification enqueued."""
    with session(engine) as s:
        rows = s.exec(select(OutboxRow).where(OutboxRow.kind == "incident.escalated")).all()
    return [(r.channel, r.incident_id, r.payload["escalation"]["step"], r.idempotency_key) for r in rows]


def test_two_replicas_sweeping_a_backlog_run_every_step_exactly_once(
    pg_engine: Engine, clock: FrozenClock, replicas: list[AlertService]
) -> None:
    fire_drift_alerts(replicas[0], clock, ALERTS)
    clock.advance(61 * MINUTE)  # both replicas were down for an hour: three steps overdue on each incident

    ran = run_concurrently(replicas, sweep_until_idle)

    assert sum(ran) == ALERTS * 3
    assert all(n > 0 for n in ran), f"both replicas should have claimed work: {ran}"
    assert replicas[0].escalate_due() == replicas[1].escalate_due() == 0  # nothing left behind

    steps = escalation_steps(pg_engine)
    assert len(steps) == ALERTS
    assert all(s == [1, 2, 3] for s in steps.values()), {a: s for a, s in steps.items() if s != [1, 2, 3]}

    rows = escalation_rows(pg_engine)
    per_channel = Counter((channel, alert_id, step) for channel, alert_id, step, _ in rows)
    assert set(per_channel.values()) == {1}  # one row per incident, step and channel
    assert Counter(channel for channel, *_ in rows) == {"recording": ALERTS * 3, "pagerduty": ALERTS}
    assert {step for channel, _, step, _ in rows if channel == "pagerduty"} == {3}  # paged once, at P1
    assert len({key for *_, key in rows}) == len(rows)

    with session(pg_engine) as s:
        incidents = s.exec(select(IncidentRow)).all()
    assert len(incidents) == ALERTS
    assert {(i.severity, i.escalation_step, i.next_escalation_at, tuple(i.paged_keys)) for i in incidents} == {
        ("P1", 3, None, ("",))
    }


def test_two_replicas_ticking_while_the_deadlines_arrive_run_every_step_once(
    pg_engine: Engine, clock: FrozenClock, replicas: list[AlertService]
) -> None:
    fire_drift_alerts(replicas[0], clock, ALERTS)
    start = clock.now()
    done = threading.Event()

    def tick_until_done(service: AlertService) -> int:
        total = 0
        while not done.is_set():
            total += service.escalate_due(limit=25)
        return total + sweep_until_idle(service)

    def advance_clock() -> None:
        while clock.now() < start + 61 * MINUTE:
            time.sleep(0.005)
            clock.advance(MINUTE)
        done.set()

    mover = threading.Thread(target=advance_clock)
    mover.start()
    ran = run_concurrently(replicas, tick_until_done)
    mover.join()

    assert sum(ran) == ALERTS * 3
    steps = escalation_steps(pg_engine)
    assert len(steps) == ALERTS and all(s == [1, 2, 3] for s in steps.values())
    rows = escalation_rows(pg_engine)
    assert Counter(channel for channel, *_ in rows) == {"recording": ALERTS * 3, "pagerduty": ALERTS}
    assert set(Counter((channel, alert_id, step) for channel, alert_id, step, _ in rows).values()) == {1}
