"""Alert storage on SQLite and PostgreSQL: alerts, their history, optimistic versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from bot.alerts import store
from bot.alerts.lifecycle import (
    Alert,
    AlertState,
    Event,
    EventKind,
    Observation,
    Timing,
    Transition,
    acknowledge,
    observe,
    resolve,
)
from bot.alerts.store import ConcurrentChange
from bot.config.conditions import Outcome
from bot.severity import Severity
from bot.storage.database import session

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def seen(
    outcome: Outcome = Outcome.TRUE,
    *,
    rule: str = "latency_spike",
    model: str = "fraud-detector-v2",
    severity: Severity = Severity.P1,
) -> Observation:
    return Observation(rule, model, severity, outcome, {"p99_latency_ms": 6100.0}, title="P99 latency >5s")


def step(alert: Alert | None, observation: Observation, now: datetime, for_: timedelta = timedelta(0)) -> Transition:
    change = observe(alert, observation, Timing(for_=for_), last_fired_resolved_at=None, now=now)
    assert change is not None
    return change


def save(engine: Engine, change: Transition) -> Alert:
    with session(engine) as s, s.begin():
        return store.save(s, change)


def fire(engine: Engine, at: datetime = T0, **observation: object) -> Alert:
    return save(engine, step(None, seen(**observation), at))  # type: ignore[arg-type]


def load(engine: Engine, alert_id: int | None) -> Alert:
    assert alert_id is not None
    with session(engine) as s:
        alert = store.get(s, alert_id)
    assert alert is not None
    return alert


def test_a_new_alert_is_saved_with_its_first_event(engine: Engine) -> None:
    alert = fire(engine)

    assert alert.id is not None and alert.version == 1
    stored = load(engine, alert.id)
    assert stored == alert
    assert stored.state is AlertState.FIRING and stored.fired_at == T0
    assert stored.values == {"p99_latency_ms": 6100.0}
    with session(engine) as s:
        assert store.history(s, alert.id) == [Event(EventKind.FIRED, "rule:latency_spike", T0)]
        assert store.open_alerts(s) == {"latency_spike:fraud-detector-v2": stored}


def test_open_alerts_leaves_out_resolved_ones(engine: Engine) -> None:
    done = fire(engine, model="support-bot")
    save(engine, resolve(done, actor="U_ANA", now=T0 + MINUTE))
    pending = save(engine, step(None, seen(), T0, for_=2 * MINUTE))

    with session(engine) as s:
        assert list(store.open_alerts(s)) == [pending.key]


def test_an_update_bumps_the_version_it_read(engine: Engine) -> None:
    alert = fire(engine)
    acked = save(engine, acknowledge(alert, actor="U_ANA", now=T0 + MINUTE))

    assert acked.version == 2
    assert load(engine, alert.id) == acked


def test_an_update_from_a_stale_read_is_a_concurrent_change_and_writes_nothing(engine: Engine) -> None:
    read_by_both = fire(engine)
    save(engine, acknowledge(read_by_both, actor="U_ANA", now=T0 + MINUTE))

    with pytest.raises(ConcurrentChange):
        save(engine, resolve(read_by_both, actor="U_BEN", now=T0 + 2 * MINUTE))

    stored = load(engine, read_by_both.id)
    assert stored.state is AlertState.ACKNOWLEDGED and stored.acknowledged_by == "U_ANA"
    with session(engine) as s:
        assert [e.kind for e in store.history(s, stored.id or 0)] == [EventKind.FIRED, EventKind.ACKNOWLEDGED]


def test_alerts_saved_together_bump_each_version_and_record_each_event(engine: Engine) -> None:
    first, second = fire(engine), fire(engine, model="ranker")
    changes = [resolve(first, actor="rule:latency_spike", now=T0 + MINUTE), acknowledge(second, actor="U_ANA", now=T0)]

    with session(engine) as s, s.begin():
        saved = store.save_moved(s, changes)

    assert [load(engine, alert.id) for alert in saved] == saved
    assert [(alert.state, alert.version) for alert in saved] == [(AlertState.RESOLVED, 2), (AlertState.ACKNOWLEDGED, 2)]
    with session(engine) as s:
        assert [e.kind for e in store.history(s, second.id or 0)] == [EventKind.FIRED, EventKind.ACKNOWLEDGED]


def test_alerts_saved_together_from_a_stale_read_are_a_concurrent_change_and_write_nothing(engine: Engine) -> None:
    fresh, read_by_both = fire(engine), fire(engine, model="ranker")
    save(engine, acknowledge(read_by_both, actor="U_ANA", now=T0 + MINUTE))
    changes = [resolve(alert, actor="rule:latency_spike", now=T0 + 2 * MINUTE) for alert in (fresh, read_by_both)]

    with pytest.raises(ConcurrentChange, match="1 of 2 alerts changed"), session(engine) as s, s.begin():
        store.save_moved(s, changes)

    assert load(engine, fresh.id).state is AlertState.FIRING, "the whole batch rolled back"
    assert load(engine, read_by_both.id).acknowledged_by == "U_ANA"


def test_a_second_open_alert_for_the_same_key_is_a_concurrent_change(engine: Engine) -> None:
    fire(engine)
    with pytest.raises(ConcurrentChange, match="latency_spike:fraud-detector-v2"):
        fire(engine, at=T0 + MINUTE)


def test_history_lists_every_change_in_order_with_who_and_when(engine: Engine) -> None:
    pending = save(engine, step(None, seen(), T0, for_=2 * MINUTE))
    firing = save(engine, step(pending, seen(), T0 + 2 * MINUTE, for_=2 * MINUTE))
    acked = save(engine, acknowledge(firing, actor="U_ANA", now=T0 + 3 * MINUTE))
    save(engine, resolve(acked, actor="U_BEN", now=T0 + 10 * MINUTE))

    with session(engine) as s:
        events = store.history(s, pending.id or 0)
    assert [(e.kind, e.actor, e.at) for e in events] == [
        (EventKind.PENDING, "rule:latency_spike", T0),
        (EventKind.FIRED, "rule:latency_spike", T0 + 2 * MINUTE),
        (EventKind.ACKNOWLEDGED, "U_ANA", T0 + 3 * MINUTE),
        (EventKind.RESOLVED, "U_BEN", T0 + 10 * MINUTE),
    ]


def test_cooldowns_count_only_alerts_that_fired_and_resolved_since_the_horizon(engine: Engine) -> None:
    # fired, then auto-resolved twice: the later resolution counts
    for start in (T0, T0 + 10 * MINUTE):
        firing = fire(engine, at=start)
        save(engine, step(firing, seen(Outcome.FALSE), start + 5 * MINUTE))
    # never fired: the pending alert cleared, so there is nothing to cool down from
    pending = save(engine, step(None, seen(model="support-bot"), T0, for_=2 * MINUTE))
    save(engine, step(pending, seen(Outcome.FALSE, model="support-bot"), T0 + MINUTE))
    # fired and resolved, but before the horizon
    old = fire(engine, at=T0 - 3 * 60 * MINUTE, rule="accuracy_degradation")
    save(engine, resolve(old, actor="U_ANA", now=T0 - 2 * 60 * MINUTE))
    # still open: not resolved at all
    fire(engine, rule="prediction_volume_drop")

    with session(engine) as s:
        resolutions = store.last_fired_resolutions(s, since=T0 - 60 * MINUTE)
    assert resolutions == {"latency_spike:fraud-detector-v2": T0 + 15 * MINUTE}


def test_active_alerts_are_most_severe_first_then_oldest_and_leave_out_pending_and_resolved(engine: Engine) -> None:
    p2_early = fire(engine, at=T0, rule="significant_data_drift", severity=Severity.P2)
    p1_late = fire(engine, at=T0 + 5 * MINUTE, rule="latency_spike")
    p1_early = fire(engine, at=T0 + MINUTE, rule="accuracy_degradation")
    p1_early = save(engine, acknowledge(p1_early, actor="U_ANA", now=T0 + 6 * MINUTE))
    p0_pending = save(engine, step(None, seen(rule="outage", severity=Severity.P0), T0, for_=5 * MINUTE))
    p0_resolved = fire(engine, rule="outage", model="support-bot", severity=Severity.P0)
    save(engine, resolve(p0_resolved, actor="U_BEN", now=T0 + MINUTE))

    with session(engine) as s:
        shown = [a.id for a in store.active(s)]
    assert shown == [p1_early.id, p1_late.id, p2_early.id]
    assert p0_pending.id not in shown


def test_times_come_back_as_aware_utc(engine: Engine) -> None:
    alert = fire(engine, at=T0 + timedelta(microseconds=123456))
    acked = save(engine, acknowledge(alert, actor="U_ANA", now=T0 + MINUTE))
    save(engine, resolve(acked, actor="U_ANA", now=T0 + 2 * MINUTE))

    stored = load(engine, alert.id)
    with session(engine) as s:
        events = store.history(s, alert.id or 0)
        cooldowns = store.last_fired_resolutions(s, since=T0)
    times = [stored.started_at, stored.fired_at, stored.acknowledged_at, stored.resolved_at]
    times += [e.at for e in events] + list(cooldowns.values())
    assert all(t is not None and t.utcoffset() == timedelta(0) for t in times)
    assert stored.started_at == T0 + timedelta(microseconds=123456)
    assert stored.resolved_at == T0 + 2 * MINUTE


def test_open_alerts_read_again_decode_only_what_changed_and_equal_a_fresh_read(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = store.OpenAlerts()
    models = [f"m{n}" for n in range(6)]
    alerts = {model: fire(engine, model=model) for model in models}
    decoded: list[int | None] = []
    real = store.to_alert
    monkeypatch.setattr(store, "to_alert", lambda row: decoded.append(row.id) or real(row))

    def read() -> dict[str, Alert]:
        """The reader's answer; ``decoded`` says which rows it decoded for it."""
        decoded.clear()
        with session(engine) as s:
            found = reader.read(s)
            by_reader = list(decoded)
            assert found == store.open_alerts(s), "the same alerts a fresh read finds, by key"
        decoded[:] = by_reader
        return found

    assert len(read()) == 6 and len(decoded) >= 6, "the first read decodes every open alert"
    decoded_again = read()
    assert decoded_again and decoded == [], "nothing changed: nothing decoded"

    acked = save(engine, acknowledge(alerts["m1"], actor="U_ANA", now=T0 + MINUTE))
    save(engine, resolve(alerts["m2"], actor="U_ANA", now=T0 + MINUTE))
    newcomer = fire(engine, model="m9")
    found = read()
    assert sorted(decoded) == sorted([acked.id, newcomer.id]), "only the changed and the new rows"
    assert found[acked.key] == acked and alerts["m2"].key not in found and found[newcomer.key] == newcomer
