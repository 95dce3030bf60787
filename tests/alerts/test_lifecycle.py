"""The alert lifecycle's transition table, one test per row.

(none) ──true──▶ PENDING ──true for `for:`──▶ FIRING ──ack──▶ ACKNOWLEDGED
                    └─false──▶ RESOLVED ◀──false (auto) / resolve──┘
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.alerts.lifecycle import (
    SYSTEM_ACTOR,
    Alert,
    AlertState,
    EventKind,
    NoData,
    Observation,
    Timing,
    Transition,
    acknowledge,
    dedup_key,
    observe,
    resolve,
)
from bot.config.conditions import Outcome
from bot.errors import ActionRefused
from bot.severity import Severity

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RULE = "latency_spike"
MODEL = "fraud-detector-v2"
ACTOR = f"rule:{RULE}"
NO_WAIT = Timing(for_=timedelta(0), cooldown=timedelta(minutes=15))
HOLD_2M = Timing(for_=timedelta(minutes=2), cooldown=timedelta(minutes=15))


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def seen(outcome: Outcome, latency: float = 6100.0) -> Observation:
    return Observation(
        rule=RULE,
        model=MODEL,
        severity=Severity.P1,
        outcome=outcome,
        values={"p99_latency_ms": latency},
        title=f"P99 latency >5s for {MODEL}",
        description=f"P99 latency: {latency:g}ms (threshold: 5000ms).",
    )


def step(
    alert: Alert | None,
    outcome: Outcome,
    now: datetime,
    timing: Timing = NO_WAIT,
    last_fired_resolved_at: datetime | None = None,
    latency: float = 6100.0,
) -> Transition | None:
    return observe(alert, seen(outcome, latency), timing, last_fired_resolved_at=last_fired_resolved_at, now=now)


def must(change: Transition | None) -> Transition:
    assert change is not None, "expected a transition"
    return change


def firing_alert(at: datetime = T0) -> Alert:
    return must(step(None, Outcome.TRUE, at)).alert


def acked_alert(at: datetime = T0, by: str = "U_ALICE") -> Alert:
    return acknowledge(firing_alert(at), actor=by, now=at + timedelta(minutes=3)).alert


def pending_alert(at: datetime = T0) -> Alert:
    return must(step(None, Outcome.TRUE, at, HOLD_2M)).alert


# --- (none) -------------------------------------------------------------------------------


def test_true_with_for_starts_pending_and_is_not_news_yet() -> None:
    change = must(step(None, Outcome.TRUE, T0, HOLD_2M))

    assert change.alert.state is AlertState.PENDING
    assert change.alert.started_at == T0
    assert change.alert.fired_at is None
    assert change.alert.key == dedup_key(RULE, MODEL) == f"{RULE}:{MODEL}"
    assert change.event.kind is EventKind.PENDING
    assert change.event.kind.notifies is False
    assert (change.event.actor, change.event.at) == (ACTOR, T0)


def test_true_without_for_fires_at_once_with_rendered_text_and_values() -> None:
    change = must(step(None, Outcome.TRUE, T0))

    assert change.alert.state is AlertState.FIRING
    assert change.alert.started_at == change.alert.fired_at == T0
    assert change.alert.title == f"P99 latency >5s for {MODEL}"
    assert change.alert.values == {"p99_latency_ms": 6100.0}
    assert change.event.kind is EventKind.FIRED
    assert change.event.kind.notifies is True
    assert (change.event.actor, change.event.at) == (ACTOR, T0)


@pytest.mark.parametrize("outcome", [Outcome.FALSE, Outcome.NO_DATA])
def test_false_or_no_data_without_an_alert_changes_nothing(outcome: Outcome) -> None:
    assert step(None, outcome, T0) is None
    assert step(None, outcome, T0, HOLD_2M) is None


# --- PENDING ------------------------------------------------------------------------------


def test_pending_stays_pending_while_for_has_not_elapsed() -> None:
    alert = pending_alert()

    assert step(alert, Outcome.TRUE, minutes(1), HOLD_2M) is None
    assert step(alert, Outcome.TRUE, T0 + timedelta(minutes=2) - timedelta(microseconds=1), HOLD_2M) is None


def test_pending_fires_once_the_condition_held_for_the_whole_for_duration() -> None:
    alert = pending_alert()

    change = must(step(alert, Outcome.TRUE, minutes(2), HOLD_2M, latency=7200.0))

    assert change.alert.state is AlertState.FIRING
    assert change.alert.started_at == T0
    assert change.alert.fired_at == minutes(2)
    assert change.alert.values == {"p99_latency_ms": 7200.0}, "firing shows the values at fire time"
    assert change.alert.description == "P99 latency: 7200ms (threshold: 5000ms)."
    assert change.event.kind is EventKind.FIRED
    assert (change.event.actor, change.event.at) == (ACTOR, minutes(2))


def test_pending_cleared_when_the_condition_turns_false_and_nobody_is_told() -> None:
    alert = pending_alert()

    change = must(step(alert, Outcome.FALSE, minutes(1), HOLD_2M))

    assert change.alert.state is AlertState.RESOLVED
    assert change.alert.fired_at is None
    assert change.alert.resolved_at == minutes(1)
    assert change.alert.resolved_by == SYSTEM_ACTOR
    assert change.event.kind is EventKind.PENDING_CLEARED
    assert change.event.kind.notifies is False
    assert (change.event.actor, change.event.at) == (ACTOR, minutes(1))


# --- FIRING / ACKNOWLEDGED ----------------------------------------------------------------


@pytest.mark.parametrize("make", [firing_alert, acked_alert], ids=["firing", "acknowledged"])
def test_condition_still_true_is_the_same_alert_not_a_new_one(make: Callable[[], Alert | None]) -> None:
    alert = make()

    for tick in range(1, 20):
        assert step(alert, Outcome.TRUE, minutes(tick)) is None


@pytest.mark.parametrize("make", [firing_alert, acked_alert], ids=["firing", "acknowledged"])
def test_condition_clearing_auto_resolves_by_the_system(make: Callable[[], Alert | None]) -> None:
    alert = make()

    change = must(step(alert, Outcome.FALSE, minutes(10), latency=800.0))

    assert change.alert.state is AlertState.RESOLVED
    assert change.alert.resolved_at == minutes(10)
    assert change.alert.resolved_by == SYSTEM_ACTOR
    assert change.alert.values == {"p99_latency_ms": 6100.0}, "the values that fired it are kept"
    assert change.event.data == {"recovered": {"p99_latency_ms": 800.0}}, "the recovered ones ride the event"
    assert change.event.kind is EventKind.AUTO_RESOLVED
    assert change.event.kind.notifies is True
    assert (change.event.actor, change.event.at) == (ACTOR, minutes(10))


@pytest.mark.parametrize(
    "make",
    [lambda: None, firing_alert, acked_alert],
    ids=["none", "firing", "acknowledged"],
)
def test_no_data_changes_nothing_by_default(make: Callable[[], Alert | None]) -> None:
    alert = make()

    for timing in (NO_WAIT, HOLD_2M):
        for later in (0, 1, 5, 60, 24 * 60):
            assert step(alert, Outcome.NO_DATA, minutes(later), timing) is None


@pytest.mark.parametrize("no_data", list(NoData))
def test_no_data_drops_a_pending_alert_because_silence_is_not_evidence(no_data: NoData) -> None:
    alert = pending_alert()

    change = must(step(alert, Outcome.NO_DATA, minutes(1), replace(HOLD_2M, no_data=no_data)))

    assert change.alert.state is AlertState.RESOLVED
    assert change.alert.fired_at is None
    assert change.event.kind is EventKind.PENDING_CLEARED
    assert change.event.kind.notifies is False
    assert "no data" in change.event.detail


def test_no_data_resolve_resolves_a_firing_alert_as_prometheus_does() -> None:
    alert = acked_alert()

    change = must(step(alert, Outcome.NO_DATA, minutes(20), replace(NO_WAIT, no_data=NoData.RESOLVE)))

    assert change.alert.state is AlertState.RESOLVED
    assert change.event.kind is EventKind.AUTO_RESOLVED
    assert "no data" in change.event.detail
    assert change.alert.values == alert.values
    assert change.event.data == {}, "no recovered value to record"


# --- keep_firing_for ------------------------------------------------------------------------

KEEP_5M = replace(NO_WAIT, keep_firing_for=timedelta(minutes=5))


def test_keep_firing_for_holds_a_cleared_alert_open_quietly_then_resolves() -> None:
    alert = firing_alert()

    held = must(step(alert, Outcome.FALSE, minutes(10), KEEP_5M, latency=800.0))
    assert held.alert.state is AlertState.FIRING
    assert held.alert.clear_since == minutes(10)
    assert held.event.kind is EventKind.KEPT_FIRING
    assert held.event.kind.notifies is False

    assert step(held.alert, Outcome.FALSE, minutes(14.5), KEEP_5M, latency=800.0) is None
    done = must(step(held.alert, Outcome.FALSE, minutes(15), KEEP_5M, latency=800.0))
    assert done.alert.state is AlertState.RESOLVED
    assert done.alert.resolved_at == minutes(15), "resolves once clear for exactly keep_firing_for"
    assert done.event.kind is EventKind.AUTO_RESOLVED


def test_a_breach_inside_keep_firing_for_cancels_the_countdown() -> None:
    held = must(step(firing_alert(), Outcome.FALSE, minutes(10), KEEP_5M)).alert

    again = must(step(held, Outcome.TRUE, minutes(12), KEEP_5M))
    assert again.alert.state is AlertState.FIRING
    assert again.alert.clear_since is None
    assert again.event.kind is EventKind.BREACHED_AGAIN
    assert again.event.kind.notifies is False

    # the countdown restarts from the next clear pass, not from the first one
    held_again = must(step(again.alert, Outcome.FALSE, minutes(13), KEEP_5M)).alert
    assert step(held_again, Outcome.FALSE, minutes(16), KEEP_5M) is None
    assert must(step(held_again, Outcome.FALSE, minutes(18), KEEP_5M)).alert.state is AlertState.RESOLVED


def test_keep_firing_for_never_holds_a_pending_alert() -> None:
    timing = replace(HOLD_2M, keep_firing_for=timedelta(hours=1))
    change = must(step(pending_alert(), Outcome.FALSE, minutes(1), timing))

    assert change.event.kind is EventKind.PENDING_CLEARED


def test_keep_firing_for_also_covers_no_data_when_it_resolves() -> None:
    timing = replace(KEEP_5M, no_data=NoData.RESOLVE)
    held = must(step(firing_alert(), Outcome.NO_DATA, minutes(10), timing))

    assert held.event.kind is EventKind.KEPT_FIRING
    assert must(step(held.alert, Outcome.NO_DATA, minutes(15), timing)).alert.state is AlertState.RESOLVED


def test_no_data_never_silently_resolves_a_firing_alert() -> None:
    alert = firing_alert()

    assert step(alert, Outcome.NO_DATA, minutes(90)) is None
    assert alert.state is AlertState.FIRING


# --- cooldown -----------------------------------------------------------------------------


def test_cooldown_blocks_a_new_alert_until_it_has_passed() -> None:
    resolved_at = minutes(10)

    assert step(None, Outcome.TRUE, resolved_at, last_fired_resolved_at=resolved_at) is None
    assert step(None, Outcome.TRUE, minutes(24), last_fired_resolved_at=resolved_at) is None
    just_before = resolved_at + NO_WAIT.cooldown - timedelta(microseconds=1)
    assert step(None, Outcome.TRUE, just_before, last_fired_resolved_at=resolved_at) is None


def test_cooldown_boundary_exactly_at_cooldown_fires() -> None:
    resolved_at = minutes(10)

    change = must(step(None, Outcome.TRUE, resolved_at + NO_WAIT.cooldown, last_fired_resolved_at=resolved_at))

    assert change.alert.state is AlertState.FIRING
    assert change.alert.started_at == minutes(25)


def test_cooldown_also_delays_pending() -> None:
    resolved_at = minutes(10)

    assert step(None, Outcome.TRUE, minutes(20), HOLD_2M, last_fired_resolved_at=resolved_at) is None
    change = must(step(None, Outcome.TRUE, minutes(25), HOLD_2M, last_fired_resolved_at=resolved_at))
    assert change.alert.state is AlertState.PENDING


def test_zero_cooldown_allows_refiring_at_once() -> None:
    no_cooldown = Timing(for_=timedelta(0), cooldown=timedelta(0))

    change = must(step(None, Outcome.TRUE, minutes(10), no_cooldown, last_fired_resolved_at=minutes(10)))

    assert change.alert.state is AlertState.FIRING


# --- people: acknowledge ------------------------------------------------------------------


def test_acknowledge_a_firing_alert_records_who_and_when() -> None:
    alert = firing_alert()

    change = acknowledge(alert, actor="U_ALICE", now=minutes(4))

    assert change.alert.state is AlertState.ACKNOWLEDGED
    assert change.alert.acknowledged_by == "U_ALICE"
    assert change.alert.acknowledged_at == minutes(4)
    assert change.event.kind is EventKind.ACKNOWLEDGED
    assert change.event.kind.notifies is True
    assert (change.event.actor, change.event.at) == ("U_ALICE", minutes(4))
    assert alert.state is AlertState.FIRING, "alerts are values: the old one is untouched"


def test_acknowledge_twice_is_refused_naming_who_already_took_it() -> None:
    alert = acked_alert(by="U_ALICE")

    with pytest.raises(ActionRefused, match=r"Already acknowledged by U_ALICE at 09:03 UTC"):
        acknowledge(alert, actor="U_BOB", now=minutes(5))


def test_acknowledge_a_resolved_alert_is_refused_and_never_reopens_it() -> None:
    resolved = resolve(firing_alert(), actor="U_ALICE", now=minutes(7)).alert

    with pytest.raises(ActionRefused, match=r"Already resolved by U_ALICE at 09:07 UTC; it cannot be changed"):
        acknowledge(resolved, actor="U_BOB", now=minutes(8))
    assert resolved.state is AlertState.RESOLVED


def test_refusal_of_an_auto_resolved_alert_says_auto_resolve_not_the_bot_name() -> None:
    resolved = must(step(firing_alert(), Outcome.FALSE, minutes(6))).alert

    with pytest.raises(ActionRefused, match=r"Already resolved by auto-resolve at 09:06 UTC") as refused:
        acknowledge(resolved, actor="U_BOB", now=minutes(8))
    assert SYSTEM_ACTOR not in str(refused.value)


def test_acknowledge_a_pending_alert_is_refused() -> None:
    with pytest.raises(ActionRefused, match=r"^Cannot acknowledge an alert that is pending\.$"):
        acknowledge(pending_alert(), actor="U_ALICE", now=minutes(1))


# --- people: resolve ----------------------------------------------------------------------


@pytest.mark.parametrize("make", [firing_alert, acked_alert], ids=["firing", "acknowledged"])
def test_a_person_resolves_a_firing_or_acknowledged_alert(make: Callable[[], Alert | None]) -> None:
    alert = make()

    change = resolve(alert, actor="U_CAROL", now=minutes(30))

    assert change.alert.state is AlertState.RESOLVED
    assert change.alert.resolved_by == "U_CAROL"
    assert change.alert.resolved_at == minutes(30)
    assert change.event.kind is EventKind.RESOLVED
    assert change.event.kind.notifies is True
    assert (change.event.actor, change.event.at) == ("U_CAROL", minutes(30))


def test_resolve_keeps_the_acknowledgement_in_the_record() -> None:
    done = resolve(acked_alert(by="U_ALICE"), actor="U_CAROL", now=minutes(30)).alert

    assert (done.acknowledged_by, done.resolved_by) == ("U_ALICE", "U_CAROL")


def test_resolve_a_resolved_alert_is_refused() -> None:
    resolved = resolve(firing_alert(), actor="U_ALICE", now=minutes(7)).alert

    with pytest.raises(ActionRefused, match=r"Already resolved by U_ALICE"):
        resolve(resolved, actor="U_BOB", now=minutes(8))


def test_resolve_a_pending_alert_is_refused() -> None:
    with pytest.raises(ActionRefused, match=r"^Cannot resolve an alert that is pending\.$"):
        resolve(pending_alert(), actor="U_ALICE", now=minutes(1))


# --- RESOLVED is final --------------------------------------------------------------------


@pytest.mark.parametrize("outcome", list(Outcome))
def test_observe_refuses_a_resolved_alert(outcome: Outcome) -> None:
    resolved = resolve(firing_alert(), actor="U_ALICE", now=minutes(7)).alert

    with pytest.raises(ValueError, match="never a resolved one"):
        step(resolved, outcome, minutes(60))


def test_a_resolved_key_starts_a_new_alert_not_the_old_one() -> None:
    old = resolve(firing_alert(), actor="U_ALICE", now=minutes(7)).alert

    new = must(step(None, Outcome.TRUE, minutes(40), last_fired_resolved_at=old.resolved_at)).alert

    assert new.key == old.key
    assert new.started_at == minutes(40)
    assert (new.acknowledged_by, new.resolved_at) == (None, None)


def test_every_transition_carries_an_actor_and_the_time_it_happened() -> None:
    t = minutes
    pending = must(step(None, Outcome.TRUE, t(0), HOLD_2M))
    fired = must(step(pending.alert, Outcome.TRUE, t(2), HOLD_2M))
    acked = acknowledge(fired.alert, actor="U_ALICE", now=t(3))
    auto = must(step(acked.alert, Outcome.FALSE, t(9), HOLD_2M))
    history = [pending, fired, acked, auto]

    assert [c.event.kind for c in history] == [
        EventKind.PENDING,
        EventKind.FIRED,
        EventKind.ACKNOWLEDGED,
        EventKind.AUTO_RESOLVED,
    ]
    assert [c.event.at for c in history] == [t(0), t(2), t(3), t(9)]
    assert [c.event.actor for c in history] == [ACTOR, ACTOR, "U_ALICE", ACTOR]
    assert all(c.event.actor for c in history)


def test_severity_and_identity_survive_every_transition() -> None:
    fired = firing_alert()
    stored = replace(fired, id=42, version=3)

    acked = acknowledge(stored, actor="U_ALICE", now=minutes(1)).alert
    done = must(step(acked, Outcome.FALSE, minutes(2))).alert

    assert (done.id, done.version, done.severity, done.rule, done.model) == (42, 3, Severity.P1, RULE, MODEL)


def test_silence_during_keep_firing_for_does_not_freeze_the_countdown() -> None:
    """no_data: keep keeps a firing alert through silence, but once the data said clear the
    keep_firing_for countdown runs on, as Prometheus' does (promtool differential finding F1)."""
    held = must(step(firing_alert(), Outcome.FALSE, minutes(10), KEEP_5M)).alert

    assert step(held, Outcome.NO_DATA, minutes(12), KEEP_5M) is None
    done = must(step(held, Outcome.NO_DATA, minutes(15), KEEP_5M))
    assert done.alert.state is AlertState.RESOLVED and "no data" in done.event.detail
