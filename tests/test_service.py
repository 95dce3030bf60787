"""The alert service end to end on SQLite and PostgreSQL: metrics in, alerts and notifications out.

Uses the shipped rules: ``latency_spike`` fires when ``p99_latency_ms > 5000`` has held for 2m,
resolves once clear for 5m (``keep_firing_for``), then cools down for 15m; a sample older than
15m is no data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from bot.alerts import store
from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, AlertState, EventKind
from bot.clock import Clock, FrozenClock
from bot.config.loader import Config, load_config
from bot.errors import ActionRefused
from bot.evaluation.members import Members
from bot.evaluation.shares import owner
from bot.metrics import store as metric_store
from bot.notify.outbox import Outbox
from bot.service import AlertService, every_channel
from bot.storage.database import session
from bot.storage.tables import AlertRow, IncidentRow, MetricSampleRow
from tests.support.recording import RecordingNotifier

FRAUD = "fraud-detector-v2"
KEY = f"latency_spike:{FRAUD}"
MINUTE = timedelta(minutes=1)


def push(service: AlertService, clock: FrozenClock, p99_latency_ms: float, model: str = FRAUD) -> None:
    service.ingest([(model, "p99_latency_ms", clock.now(), p99_latency_ms)])


def open_alert(engine: Engine, key: str = KEY) -> Alert | None:
    with session(engine) as s:
        return store.open_alerts(s).get(key)


def alerts_for(engine: Engine, key: str = KEY) -> int:
    with session(engine) as s:
        return s.exec(select(func.count()).select_from(AlertRow).where(AlertRow.dedup_key == key)).one()


def history(engine: Engine, alert_id: int | None) -> list[EventKind]:
    with session(engine) as s:
        return [e.kind for e in store.history(s, alert_id or 0)]


KEEP_FIRING_FOR = 5 * MINUTE


def clear(service: AlertService, clock: FrozenClock, p99_latency_ms: float = 800) -> None:
    """The latency recovers and stays recovered for ``keep_firing_for``: the alert auto-resolves."""
    push(service, clock, p99_latency_ms)
    service.evaluate_once()
    clock.advance(KEEP_FIRING_FOR)
    push(service, clock, p99_latency_ms)
    service.evaluate_once()


@pytest.fixture
def notifications(engine: Engine, clock: FrozenClock) -> Callable[[], list[tuple[str, str]]]:
    """Deliver everything due; return ``(event, dedup key)`` of all delivered so far."""
    recorder = RecordingNotifier()
    outbox = Outbox(engine, clock, {"recording": recorder})

    def delivered() -> list[tuple[str, str]]:
        while outbox.deliver_due():
            pass
        return recorder.events()

    return delivered


@pytest.fixture
def firing(service: AlertService, clock: FrozenClock, engine: Engine) -> Alert:
    """A latency_spike alert on fraud-detector-v2 that has just fired."""
    push(service, clock, 6100)
    service.evaluate_once()
    clock.advance(2 * MINUTE)
    push(service, clock, 6200)
    service.evaluate_once()
    alert = open_alert(engine)
    assert alert is not None and alert.state is AlertState.FIRING
    return alert


def test_an_alert_fires_only_after_its_condition_held_for_the_for_duration(
    service: AlertService, clock: FrozenClock, engine: Engine, notifications: Callable[[], list[tuple[str, str]]]
) -> None:
    push(service, clock, 6100)
    service.evaluate_once()
    started = clock.now()
    assert open_alert(engine).state is AlertState.PENDING  # type: ignore[union-attr]

    clock.advance(MINUTE + timedelta(seconds=59))
    push(service, clock, 6150)
    service.evaluate_once()
    assert open_alert(engine).state is AlertState.PENDING  # type: ignore[union-attr]
    assert notifications() == []  # a pending alert is not news yet

    clock.advance(timedelta(seconds=1))
    push(service, clock, 6200)
    service.evaluate_once()

    alert = open_alert(engine)
    assert alert is not None and alert.state is AlertState.FIRING
    assert alert.started_at == started and alert.fired_at == clock.now()
    assert alert.values == {"p99_latency_ms": 6200.0}
    assert alert.title == f"P99 latency >5s for {FRAUD}"
    assert notifications() == [("fired", KEY)]


def test_a_condition_that_stays_true_is_one_alert_and_one_notification(
    service: AlertService,
    clock: FrozenClock,
    engine: Engine,
    firing: Alert,
    notifications: Callable[[], list[tuple[str, str]]],
) -> None:
    for _ in range(10):
        clock.advance(timedelta(seconds=30))
        push(service, clock, 7000)
        assert service.evaluate_once().transitions == []

    assert alerts_for(engine) == 1
    assert open_alert(engine) == firing
    assert notifications() == [("fired", KEY)]


def test_a_firing_alert_resolves_itself_when_the_condition_clears(
    service: AlertService,
    clock: FrozenClock,
    engine: Engine,
    firing: Alert,
    notifications: Callable[[], list[tuple[str, str]]],
) -> None:
    clock.advance(MINUTE)
    push(service, clock, 800)
    service.evaluate_once()
    assert open_alert(engine) is not None, "keep_firing_for holds it while the recovery is young"
    assert notifications() == [("fired", KEY)], "and that is nobody's news"

    clock.advance(KEEP_FIRING_FOR)
    push(service, clock, 800)
    service.evaluate_once()

    assert open_alert(engine) is None
    with session(engine) as s:
        resolved = store.get(s, firing.id or 0)
    assert resolved is not None and resolved.state is AlertState.RESOLVED
    assert resolved.resolved_by == SYSTEM_ACTOR and resolved.resolved_at == clock.now()
    assert history(engine, firing.id) == [
        EventKind.PENDING,
        EventKind.FIRED,
        EventKind.KEPT_FIRING,
        EventKind.AUTO_RESOLVED,
    ]
    assert notifications() == [("fired", KEY), ("auto_resolved", KEY)]


def test_a_pending_alert_that_clears_before_firing_is_dropped_quietly(
    service: AlertService, clock: FrozenClock, engine: Engine, notifications: Callable[[], list[tuple[str, str]]]
) -> None:
    push(service, clock, 6100)
    service.evaluate_once()
    clock.advance(MINUTE)
    push(service, clock, 900)
    service.evaluate_once()

    assert open_alert(engine) is None
    assert notifications() == []


def test_the_cooldown_blocks_a_refire_until_it_has_passed(
    service: AlertService,
    clock: FrozenClock,
    engine: Engine,
    firing: Alert,
    notifications: Callable[[], list[tuple[str, str]]],
) -> None:
    clock.advance(MINUTE)
    clear(service, clock)
    resolved_at = clock.now()
    assert notifications() == [("fired", KEY), ("auto_resolved", KEY)]

    for at in (MINUTE, 10 * MINUTE, 15 * MINUTE - timedelta(seconds=1)):
        clock.set(resolved_at + at)
        push(service, clock, 9000)
        service.evaluate_once()
        assert open_alert(engine) is None, f"re-fired {at} after resolving, inside the 15m cooldown"

    clock.set(resolved_at + 15 * MINUTE)
    push(service, clock, 9000)
    service.evaluate_once()
    clock.advance(2 * MINUTE)
    push(service, clock, 9000)
    service.evaluate_once()

    again = open_alert(engine)
    assert again is not None and again.state is AlertState.FIRING and again.id != firing.id
    assert notifications() == [("fired", KEY), ("auto_resolved", KEY), ("fired", KEY)]


def test_the_cooldown_also_follows_a_manual_resolve(
    service: AlertService, clock: FrozenClock, engine: Engine, firing: Alert
) -> None:
    service.resolve(firing.id or 0, actor="U_BEN")
    clock.advance(5 * MINUTE)
    push(service, clock, 9000)
    service.evaluate_once()
    assert open_alert(engine) is None


def test_a_stale_sample_is_no_data_and_never_resolves_a_firing_alert(
    service: AlertService,
    clock: FrozenClock,
    engine: Engine,
    firing: Alert,
    notifications: Callable[[], list[tuple[str, str]]],
) -> None:
    clock.advance(15 * MINUTE + timedelta(seconds=1))  # the exporter died: the last sample is stale
    service.ingest([(FRAUD, "current_accuracy", clock.now(), 0.97)])  # other metrics still arrive
    service.evaluate_once()
    clock.advance(60 * MINUTE)
    service.evaluate_once()

    assert open_alert(engine) == firing
    assert notifications() == [("fired", KEY)]


def test_a_stale_sample_never_fires_a_pending_alert_it_drops_it(
    service: AlertService, clock: FrozenClock, engine: Engine
) -> None:
    push(service, clock, 6100)
    service.evaluate_once()
    clock.advance(16 * MINUTE)
    service.evaluate_once()

    assert open_alert(engine) is None, "silence is not evidence that the condition held"
    assert history(engine, 1) == [EventKind.PENDING, EventKind.PENDING_CLEARED]


def test_a_pass_sees_samples_as_of_its_tick_not_of_when_it_ran(
    service: AlertService, clock: FrozenClock, engine: Engine
) -> None:
    tick = clock.now()
    clock.advance(timedelta(milliseconds=300))
    push(service, clock, 6100)  # stamped after the tick: the pass of that tick must not see it

    assert service.evaluate_once(at=tick).transitions == []
    clock.advance(30 * timedelta(seconds=1))
    assert [c.event.kind for c in service.evaluate_once(at=tick + timedelta(seconds=30)).transitions] == [
        EventKind.PENDING
    ]
    alert = open_alert(engine)
    assert alert is not None and alert.started_at == tick + timedelta(seconds=30), "pending from the nominal time"


def test_a_model_without_samples_raises_nothing(service: AlertService, engine: Engine) -> None:
    assert service.evaluate_once().transitions == []
    assert open_alert(engine, "latency_spike:support-bot") is None


def test_acknowledge_records_who_and_when_and_notifies(
    service: AlertService,
    clock: FrozenClock,
    engine: Engine,
    firing: Alert,
    notifications: Callable[[], list[tuple[str, str]]],
) -> None:
    clock.advance(3 * MINUTE)
    acked = service.acknowledge(firing.id or 0, actor="U_ANA")

    assert acked.state is AlertState.ACKNOWLEDGED
    assert (acked.acknowledged_by, acked.acknowledged_at) == ("U_ANA", clock.now())
    assert open_alert(engine) == acked
    assert history(engine, firing.id)[-1] is EventKind.ACKNOWLEDGED
    assert notifications() == [("fired", KEY), ("acknowledged", KEY)]


def test_an_acknowledged_alert_stays_open_until_the_condition_clears(
    service: AlertService, clock: FrozenClock, engine: Engine, firing: Alert
) -> None:
    service.acknowledge(firing.id or 0, actor="U_ANA")
    clock.advance(MINUTE)
    push(service, clock, 7000)
    service.evaluate_once()
    assert open_alert(engine).state is AlertState.ACKNOWLEDGED  # type: ignore[union-attr]

    clear(service, clock, 700)
    assert open_alert(engine) is None


def test_a_person_resolves_an_alert(
    service: AlertService,
    clock: FrozenClock,
    firing: Alert,
    notifications: Callable[[], list[tuple[str, str]]],
) -> None:
    clock.advance(23 * MINUTE)
    done = service.resolve(firing.id or 0, actor="U_BEN")

    assert done.state is AlertState.RESOLVED
    assert (done.resolved_by, done.resolved_at) == ("U_BEN", clock.now())
    assert notifications() == [("fired", KEY), ("resolved", KEY)]


def test_a_resolved_alert_cannot_be_acknowledged_or_resolved_again(
    service: AlertService, engine: Engine, firing: Alert, notifications: Callable[[], list[tuple[str, str]]]
) -> None:
    service.resolve(firing.id or 0, actor="U_BEN")

    with pytest.raises(ActionRefused, match="Already resolved by U_BEN at 09:02 UTC"):
        service.acknowledge(firing.id or 0, actor="U_ANA")
    with pytest.raises(ActionRefused, match="Already resolved by U_BEN"):
        service.resolve(firing.id or 0, actor="U_ANA")

    assert history(engine, firing.id)[-1] is EventKind.RESOLVED
    assert notifications() == [("fired", KEY), ("resolved", KEY)]


def test_an_auto_resolved_alert_refuses_clicks_naming_auto_resolve(
    service: AlertService, clock: FrozenClock, firing: Alert
) -> None:
    clear(service, clock, 100)
    with pytest.raises(ActionRefused, match="Already resolved by auto-resolve"):
        service.acknowledge(firing.id or 0, actor="U_ANA")


def test_an_acknowledged_alert_cannot_be_acknowledged_again(service: AlertService, firing: Alert) -> None:
    service.acknowledge(firing.id or 0, actor="U_ANA")
    with pytest.raises(ActionRefused, match="Already acknowledged by U_ANA at 09:02 UTC"):
        service.acknowledge(firing.id or 0, actor="U_BEN")


def test_acting_on_an_unknown_alert_is_a_lookup_error(service: AlertService) -> None:
    with pytest.raises(LookupError):
        service.acknowledge(424242, actor="U_ANA")


class Rendezvous:
    """A clock whose first reading in each thread waits for the other threads' first reading.

    The service reads the alert, then the clock, then writes: so every thread has read the
    alert before any of them writes, and the optimistic version check must settle the race.
    """

    def __init__(self, clock: Clock, parties: int) -> None:
        self._clock = clock
        self._barrier = threading.Barrier(parties, timeout=10)
        self._local = threading.local()

    def now(self) -> datetime:
        if not getattr(self._local, "met", False):
            self._local.met = True
            self._barrier.wait()
        return self._clock.now()


def run_together(*calls: Callable[[], object]) -> list[object]:
    """Run each call in its own thread; return each one's result or the exception it raised."""
    results: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_two_people_acknowledging_at_once_one_wins_and_the_other_is_told_who(
    make_service: Callable[..., AlertService],
    clock: FrozenClock,
    engine: Engine,
    firing: Alert,
    notifications: Callable[[], list[tuple[str, str]]],
) -> None:
    racing = make_service(clock=Rendezvous(clock, parties=2))
    results = run_together(
        lambda: racing.acknowledge(firing.id or 0, actor="U_ANA"),
        lambda: racing.acknowledge(firing.id or 0, actor="U_BEN"),
    )

    winners = [r for r in results if isinstance(r, Alert)]
    losers = [r for r in results if isinstance(r, ActionRefused)]
    assert len(winners) == 1 and len(losers) == 1, results
    winner = winners[0].acknowledged_by
    assert str(losers[0]).startswith(f"Already acknowledged by {winner} at ")
    assert open_alert(engine) == winners[0]
    assert history(engine, firing.id).count(EventKind.ACKNOWLEDGED) == 1
    assert notifications() == [("fired", KEY), ("acknowledged", KEY)]


def test_two_replicas_evaluating_at_once_raise_one_alert_and_one_notification(
    make_service: Callable[..., AlertService],
    service: AlertService,
    clock: FrozenClock,
    engine: Engine,
    notifications: Callable[[], list[tuple[str, str]]],
) -> None:
    replicas = [make_service(), make_service()]
    push(service, clock, 6100)
    first = run_together(*(r.evaluate_once for r in replicas))
    clock.advance(2 * MINUTE)
    push(service, clock, 6200)
    second = run_together(*(r.evaluate_once for r in replicas))

    assert not [r for r in first + second if isinstance(r, Exception)], first + second
    assert alerts_for(engine) == 1
    assert open_alert(engine).state is AlertState.FIRING  # type: ignore[union-attr]
    assert notifications() == [("fired", KEY)]


def test_apply_maps_a_subject_and_a_verb_to_the_action_for_clicks_and_kept_clicks(
    service: AlertService, firing: Alert, engine: Engine
) -> None:
    """One mapping serves a Slack click and a click kept while the database was away."""
    acknowledged = service.apply("alert", firing.id or 0, "acknowledge", actor="U1")
    assert isinstance(acknowledged, Alert) and acknowledged.state is AlertState.ACKNOWLEDGED
    whole = service.apply("incident", firing.incident_id or 0, "resolve", actor="U1")
    assert open_alert(engine) is None and whole.id == firing.incident_id


def test_pulled_values_keep_sample_rows_only_for_what_a_window_or_an_slo_reads(
    service: AlertService, clock: FrozenClock, engine: Engine
) -> None:
    """The shipped rules read ``helpfulness`` over an hour and SLOs read ``p99_latency_ms``;
    nothing reads the history of ``daily_cost_usd`` (issue 20, point 2)."""
    now = clock.now()
    service.ingest_pulled(
        [
            ("support-bot", "helpfulness", now, 0.9),
            ("support-bot", "p99_latency_ms", now, 850.0),
            ("support-bot", "daily_cost_usd", now, 120.0),
        ]
    )

    with session(engine) as s:
        kept = set(s.exec(select(MetricSampleRow.name)).all())
        newest = metric_store.latest(s)
    assert kept == {"helpfulness", "p99_latency_ms"}
    assert set(newest["support-bot"]) == {"helpfulness", "p99_latency_ms", "daily_cost_usd"}


FLEET = [f"m-{n:02d}" for n in range(40)]


@pytest.fixture
def fleet(tmp_path: Path) -> Config:
    """Forty models, one rule each, no storms: each breach is an incident of its own."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "default.md").write_text("# {model}\n")
    (tmp_path / "rules" / "fleet.yaml").write_text(
        "settings:\n  storm_threshold: 1000\n  group_wait: 0s\nmetrics:\n  - {name: drift}\n"
        "rules:\n  - {name: drifting, condition: drift > 1, severity: P3, title: 'drift on {model}'}\n"
        "models:\n" + "".join(f"  - {{name: {m}, channel: '#fleet'}}\n" for m in FLEET)
    )
    return load_config(tmp_path)


def beating_replicas(engine: Engine, clock: FrozenClock, config: Config) -> tuple[AlertService, AlertService]:
    """Two evaluating processes on one database, ``a`` and ``b``, each heard from."""
    a, b = (
        AlertService(
            engine, clock, lambda: config, every_channel(["recording"]), members=Members(engine, clock, name=n)
        )
        for n in ("a", "b")
    )
    a.members.beat()
    b.members.beat()
    return a, b


def test_replicas_that_beat_split_the_models_and_each_breach_opens_once(
    engine: Engine, clock: FrozenClock, fleet: Config
) -> None:
    """Issue 16, point 5: two evaluating processes each evaluate their share, not every model."""
    a, b = beating_replicas(engine, clock, fleet)
    a.ingest([(model, "drift", clock.now(), 5.0) for model in FLEET])

    opened = {name: {t.alert.model for t in r.evaluate_once().transitions} for name, r in (("a", a), ("b", b))}

    assert opened["a"] and opened["b"] and not opened["a"] & opened["b"]
    assert opened["a"] | opened["b"] == set(FLEET)
    assert [alerts_for(engine, f"drifting:{model}") for model in FLEET] == [1] * len(FLEET)


def test_when_a_replica_leaves_the_other_evaluates_its_models_at_the_next_pass(
    engine: Engine, clock: FrozenClock, fleet: Config
) -> None:
    a, b = beating_replicas(engine, clock, fleet)
    a.ingest([(model, "drift", clock.now(), 0.5) for model in FLEET])
    a.evaluate_once()  # a's share only, and quiet: nothing breaches
    b.members.leave()
    clock.advance(MINUTE)
    a.ingest([(model, "drift", clock.now(), 5.0) for model in FLEET])

    opened = {t.alert.model for t in a.evaluate_once().transitions}

    assert opened == set(FLEET)


def test_replicas_sharing_a_breach_fold_it_into_one_storm_as_one_process_would(
    engine: Engine, clock: FrozenClock, fleet: Config
) -> None:
    """Each share holds about half of the new alerts: each pass counts its own twice against
    ``storm_threshold`` (10), so sixteen breaching models, eight in each share, make one storm."""
    stormy = replace(fleet, settings=fleet.settings.model_copy(update={"storm_threshold": 10}))
    a, b = beating_replicas(engine, clock, stormy)
    breaching = [
        *[m for m in FLEET if owner(m, ["a", "b"]) == "a"][:8],
        *[m for m in FLEET if owner(m, ["a", "b"]) == "b"][:8],
    ]
    a.ingest([(model, "drift", clock.now(), 5.0) for model in breaching])

    a.evaluate_once()
    b.evaluate_once()

    with session(engine) as s:
        incidents = s.exec(select(IncidentRow)).all()
        joined = s.exec(select(AlertRow.incident_id)).all()
    assert [(i.storm_rule, i.state) for i in incidents] == [("drifting", "firing")]
    assert joined == [incidents[0].id] * 16
