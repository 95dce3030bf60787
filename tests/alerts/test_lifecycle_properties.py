"""Properties of the alert lifecycle over random histories.

An in-memory store drives ``observe`` the way the service does (the open alert per key, the time
the key's last *fired* alert resolved) through random sequences of evaluation outcomes, clock
steps and people's clicks, and checks after every step that the lifecycle's promises hold.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.alerts.lifecycle import (
    Alert,
    AlertState,
    EventKind,
    NoData,
    Observation,
    Timing,
    Transition,
    acknowledge,
    dedup_key,
    next_change,
    observe,
    resolve,
)
from bot.config.conditions import Outcome
from bot.errors import ActionRefused
from bot.severity import Severity

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RULE = "latency_spike"
MODELS = ("fraud-detector-v2", "support-bot", "ranker")
ORDER = {None: 0, AlertState.PENDING: 1, AlertState.FIRING: 2, AlertState.ACKNOWLEDGED: 3, AlertState.RESOLVED: 4}

ACK, RESOLVE, POKE_RESOLVED = "ack", "resolve", "poke_resolved"
# evaluations are the common case; a person's click now and then
ACTIONS = [Outcome.TRUE] * 5 + [Outcome.FALSE] * 3 + [Outcome.NO_DATA] * 2 + [ACK, RESOLVE, POKE_RESOLVED]

TO_BOUNDARY = None
"""A clock step that lands exactly on the key's next deadline (end of `for:` or of the cooldown)."""

timings = st.builds(
    lambda for_, cooldown, keep, no_data: Timing(
        for_=timedelta(minutes=for_),
        cooldown=timedelta(minutes=cooldown),
        keep_firing_for=timedelta(minutes=keep),
        no_data=no_data,
    ),
    st.integers(0, 15),
    st.integers(0, 30),
    st.sampled_from([0, 0, 3, 10]),
    st.sampled_from(list(NoData)),
)
clock_steps = st.one_of(st.integers(0, 10), st.just(TO_BOUNDARY))
steps = st.lists(
    st.tuples(st.sampled_from(MODELS), st.sampled_from(ACTIONS), clock_steps),
    min_size=10,
    max_size=100,
)


@dataclass
class Store:
    """What the database keeps, reduced to what the lifecycle needs."""

    timings: dict[str, Timing]
    open: dict[str, Alert] = field(default_factory=dict)
    alerts: dict[int, Alert] = field(default_factory=dict)
    """Every occurrence ever, by id, at its latest version."""
    frozen: dict[int, Alert] = field(default_factory=dict)
    """Each resolved alert as it was the moment it resolved."""
    last_fired_resolved: dict[str, datetime] = field(default_factory=dict)
    fired_resolved: list[tuple[int, str, datetime]] = field(default_factory=list)
    """(alert id, key, when) of every resolve of an alert that had fired."""

    def next_deadline(self, key: str, timing: Timing) -> datetime | None:
        alert = self.open.get(key)
        if alert is not None:
            if alert.state is AlertState.PENDING:
                return alert.started_at + timing.for_
            return None if alert.clear_since is None else alert.clear_since + timing.keep_firing_for
        last = self.last_fired_resolved.get(key)
        return None if last is None else last + timing.cooldown

    def apply(self, before: Alert | None, change: Transition, now: datetime) -> None:
        alert = change.alert
        if before is None:
            alert = replace(alert, id=len(self.alerts) + 1)
        assert alert.id is not None
        self.alerts[alert.id] = alert
        if alert.state is AlertState.RESOLVED:
            del self.open[alert.key]
            self.frozen[alert.id] = alert
            if alert.fired_at is not None:
                self.last_fired_resolved[alert.key] = now
                self.fired_resolved.append((alert.id, alert.key, now))
        else:
            self.open[alert.key] = alert


def check_transition(store: Store, before: Alert | None, change: Transition, now: datetime) -> None:
    after = change.alert
    timing = store.timings[after.model]
    assert change.event.at == now, "an event happens at the evaluation's now"
    assert change.event.actor, "every event names who or what caused it"
    if change.event.kind in (EventKind.KEPT_FIRING, EventKind.BREACHED_AGAIN):
        assert before is not None and after.state is before.state, "hysteresis bookkeeping keeps the state"
    else:
        assert ORDER[after.state] > ORDER[before.state if before else None], (
            f"states only move forward: {before and before.state} -> {after.state}"
        )
    if before is None:
        assert after.started_at == now
        assert store.open.get(after.key) is None, "never two open alerts for one key"
        last = store.last_fired_resolved.get(after.key)
        assert last is None or now - last >= timing.cooldown, "a new alert never starts within the cooldown"
    else:
        assert (after.rule, after.model, after.started_at) == (before.rule, before.model, before.started_at)
    if after.fired_at is not None:
        assert after.fired_at - after.started_at >= timing.for_, "fires only after holding for `for:`"
        if before is None or before.fired_at is None:
            assert after.fired_at == now
    if after.state is AlertState.RESOLVED:
        assert after.resolved_at == now


def check_store(store: Store) -> None:
    for model in MODELS:
        key = dedup_key(RULE, model)
        open_for_key = [a for a in store.alerts.values() if a.key == key and a.state.is_open]
        assert len(open_for_key) <= 1, f"two open alerts for {key}"
        assert open_for_key == ([store.open[key]] if key in store.open else [])
    for alert_id, resolved in store.frozen.items():
        assert store.alerts[alert_id] == resolved, "a resolved alert never changes again"


def check_quiet_until_next_change(
    before: Alert | None, seen: Observation, timing: Timing, last: datetime | None, now: datetime
) -> None:
    """What lets a pass skip a model whose inputs did not change: the same observation changes
    nothing at any moment before ``next_change``, and something exactly at it."""
    until = next_change(before, seen.outcome, timing, last_fired_resolved_at=last)
    horizon = until if until is not None else now + timedelta(days=30)
    tiny = timedelta(microseconds=1)
    for probe in (now, now + (horizon - now) / 3, now + (horizon - now) / 2, horizon - tiny):
        if probe >= now:
            assert observe(before, seen, timing, last_fired_resolved_at=last, now=probe) is None, (
                f"changed at {probe - now} after a quiet pass, before next_change {until}"
            )
    if until is not None:
        assert until > now, "a timer already due would have changed the alert now"
        assert observe(before, seen, timing, last_fired_resolved_at=last, now=until) is not None, (
            "next_change names the moment the alert moves, not a moment after"
        )


@settings(max_examples=200, deadline=None)
@given(
    timing_by_model=st.fixed_dictionaries({m: timings for m in MODELS}),
    history=steps,
    poke=st.randoms(use_true_random=False),
)
def test_lifecycle_promises_hold_over_random_histories(
    timing_by_model: dict[str, Timing], history: list[tuple[str, object, int | None]], poke: random.Random
) -> None:
    store = Store(timings=timing_by_model)
    now = T0
    for model, action, minutes in history:
        key = dedup_key(RULE, model)
        timing = timing_by_model[model]
        before = store.open.get(key)
        now = (
            max(now, store.next_deadline(key, timing) or now)
            if minutes is TO_BOUNDARY
            else now + timedelta(minutes=minutes)
        )

        if isinstance(action, Outcome):
            seen = Observation(RULE, model, Severity.P1, action, {"p99_latency_ms": 6100.0})
            last = store.last_fired_resolved.get(key)
            change = observe(before, seen, timing, last_fired_resolved_at=last, now=now)
            if change is None:
                check_quiet_until_next_change(before, seen, timing, last, now)
            cooling = last is not None and now - last < timing.cooldown
            # the table, row by row
            counting = before is not None and before.clear_since is not None  # keep_firing_for runs on silence
            silent_clear = action is Outcome.NO_DATA and (timing.no_data is NoData.RESOLVE or counting)
            clears = action is Outcome.FALSE or silent_clear
            if before is None:
                opens = action is Outcome.TRUE and not cooling
                assert (change is not None) == opens
            elif before.state is not AlertState.PENDING and clears and timing.keep_firing_for:
                since = before.clear_since
                if since is None:
                    assert change is not None and change.alert.clear_since == now, "keep_firing_for starts counting"
                else:
                    resolves = now - since >= timing.keep_firing_for
                    assert (change is not None and change.alert.state is AlertState.RESOLVED) == resolves
            elif action is Outcome.NO_DATA and before.state is not AlertState.PENDING and not clears:
                assert change is None, "no_data: keep changes nothing for a firing alert"
            elif clears or action is Outcome.NO_DATA:
                assert change is not None and change.alert.state is AlertState.RESOLVED
            elif before.state is AlertState.PENDING:
                due = now - before.started_at >= timing.for_
                assert (change is not None) == due
            elif before.clear_since is not None:
                assert change is not None and change.alert.clear_since is None, "a breach cancels keep_firing_for"
            else:
                assert change is None, "a condition that stays true is one alert, not one per tick"
        elif action == POKE_RESOLVED:
            if store.frozen:
                resolved = store.frozen[poke.choice(sorted(store.frozen))]
                for act in (acknowledge, resolve):
                    with pytest.raises(ActionRefused, match="cannot be changed"):
                        act(resolved, actor="U_PERSON", now=now)
                again = Observation(RULE, resolved.model, Severity.P1, Outcome.TRUE)
                with pytest.raises(ValueError):
                    observe(resolved, again, timing, last_fired_resolved_at=None, now=now)
            continue
        else:
            if before is None:
                continue
            act = acknowledge if action == ACK else resolve
            allowed = (AlertState.FIRING,) if action == ACK else (AlertState.FIRING, AlertState.ACKNOWLEDGED)
            try:
                change = act(before, actor="U_PERSON", now=now)
            except ActionRefused as refused:
                assert before.state not in allowed
                assert str(refused), "a refusal says why"
                change = None
            else:
                assert before.state in allowed
                assert change.event.actor == "U_PERSON"

        if change is not None:
            check_transition(store, before, change, now)
            store.apply(before, change, now)
        check_store(store)

    # across the whole history: no later alert of a key started within the cooldown of a fired one's resolve
    for resolved_id, key, resolved_at in store.fired_resolved:
        for later in store.alerts.values():
            if later.key == key and later.id is not None and later.id > resolved_id:
                cooldown = timing_by_model[later.model].cooldown
                assert later.started_at >= resolved_at + cooldown
