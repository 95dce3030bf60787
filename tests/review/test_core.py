"""The weekly review's numbers, computed by hand from a small alert history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, AlertState, Event, EventKind, Timing
from bot.review.core import RuleReview, review
from bot.review.render import render_review
from bot.severity import Severity

NOW = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)  # a Monday; the window opens Mon 5 Jan 09:00
WEEK = timedelta(days=7)
M = timedelta(minutes=1)


def day(d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 1, d, hh, mm, tzinfo=UTC)


class History:
    """Builds alerts and their events the way the service records them."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.events: dict[int, list[Event]] = {}

    def add(
        self,
        rule: str,
        fired: datetime | None,
        *,
        started: datetime | None = None,
        ack: tuple[str, datetime] | None = None,
        resolve: tuple[str, datetime] | None = None,
        escalations: int = 0,
        model: str = "fraud-detector-v2",
    ) -> None:
        alert_id = len(self.alerts) + 1
        start = started or fired or NOW
        events = [Event(EventKind.PENDING, f"rule:{rule}", start)] if started else []
        if fired is None:
            events.append(Event(EventKind.PENDING_CLEARED, f"rule:{rule}", start + M))
            state = AlertState.RESOLVED
        else:
            events.append(Event(EventKind.FIRED, f"rule:{rule}", fired))
            events += [Event(EventKind.ESCALATED, SYSTEM_ACTOR, fired + 15 * M * (i + 1)) for i in range(escalations)]
            state = AlertState.FIRING
        if ack:
            events.append(Event(EventKind.ACKNOWLEDGED, ack[0], ack[1]))
            state = AlertState.ACKNOWLEDGED
        if resolve:
            by_person = resolve[0] != SYSTEM_ACTOR
            kind = EventKind.RESOLVED if by_person else EventKind.AUTO_RESOLVED
            events.append(Event(kind, resolve[0] if by_person else f"rule:{rule}", resolve[1]))
            state = AlertState.RESOLVED
        self.alerts.append(
            Alert(
                rule=rule,
                model=model,
                severity=Severity.P1,
                state=state,
                started_at=start,
                fired_at=fired,
                acknowledged_at=ack[1] if ack else None,
                acknowledged_by=ack[0] if ack else None,
                resolved_at=resolve[1] if resolve else (start + M if fired is None else None),
                resolved_by=resolve[0] if resolve else (SYSTEM_ACTOR if fired is None else None),
                id=alert_id,
            )
        )
        self.events[alert_id] = events


@pytest.fixture
def history() -> History:
    h = History()
    # latency_spike (for: 2m): one acted on, three short-lived blips nobody touched
    h.add(
        "latency_spike",
        day(6, 10),
        started=day(6, 9, 58),
        ack=("U_ANA", day(6, 10, 4)),
        resolve=("U_ANA", day(6, 10, 30)),
    )
    h.add("latency_spike", day(7, 10), started=day(7, 9, 58), resolve=(SYSTEM_ACTOR, day(7, 10, 3)))
    h.add("latency_spike", day(8, 10), started=day(8, 9, 58), resolve=(SYSTEM_ACTOR, day(8, 10, 5)))
    h.add("latency_spike", day(9, 10), started=day(9, 9, 58), resolve=(SYSTEM_ACTOR, day(9, 10, 2)))
    # significant_data_drift: re-fires 30 and 45 minutes after resolving; the first fire is before the window
    h.add("significant_data_drift", day(4, 8), resolve=(SYSTEM_ACTOR, day(5, 9, 30)))
    h.add(
        "significant_data_drift",
        day(5, 10),
        ack=("U_BEN", day(5, 10, 20)),
        resolve=(SYSTEM_ACTOR, day(5, 12)),  # acknowledged, then cleared by itself: acted on
    )
    h.add("significant_data_drift", day(5, 12, 45), resolve=(SYSTEM_ACTOR, day(5, 14)))
    h.add("significant_data_drift", day(5, 15, 30), escalations=3)  # 90 min after: no re-fire; still firing
    # accuracy_degradation: both acknowledged, after 6 and 10 minutes
    h.add("accuracy_degradation", day(6, 8), ack=("U_ANA", day(6, 8, 6)), resolve=("U_ANA", day(6, 9)))
    h.add("accuracy_degradation", day(10, 8), ack=("U_CY", day(10, 8, 10)), resolve=("U_CY", day(10, 9)))
    # llm_cost_runaway: three fires a day apart, two hours each, nobody ever acted
    for d in (6, 7, 8):
        h.add("llm_cost_runaway", day(d, 12), resolve=(SYSTEM_ACTOR, day(d, 14)), model="support-bot")
    # not counted: a pending alert that cleared before firing, and a fire after "now"
    h.add("prediction_volume_drop", None, started=day(7, 3))
    h.add("accuracy_degradation", NOW + M)
    return h


def by_rule(reviews: list[RuleReview]) -> dict[str, RuleReview]:
    return {r.rule: r for r in reviews}


TIMINGS = {
    "latency_spike": Timing(for_=2 * M, cooldown=15 * M),
    "significant_data_drift": Timing(cooldown=60 * M),
}


def test_per_rule_numbers(history: History) -> None:
    reviews = review(history.alerts, history.events, NOW, WEEK, timings=TIMINGS)
    assert [r.rule for r in reviews] == [
        "latency_spike",  # flagged, 4 fires
        "llm_cost_runaway",  # flagged, 3 fires, never acted on (worse than the next)
        "significant_data_drift",  # flagged, 3 fires, ratio 3.0
        "accuracy_degradation",  # not flagged
    ]
    r = by_rule(reviews)

    latency = r["latency_spike"]
    assert (latency.fires, latency.acknowledged, latency.median_time_to_ack) == (4, 1, 4 * M)
    assert (latency.auto_resolved_unactioned, latency.acted_on, latency.ratio) == (3, 1, 4.0)
    assert (latency.short_lived, latency.refires, latency.flagged) == (3, 0, True)
    # the blips held 5, 7 and 4 minutes from first true (pending included): 3 in 4 within 7 min → for: 10m
    assert latency.suggestion == (
        "add `for: 10m` — 3 of 4 fires auto-resolved within 15 min with nobody acting (3 in 4 held for 7 min or less)"
    )

    drift = r["significant_data_drift"]
    assert (drift.fires, drift.acknowledged, drift.median_time_to_ack) == (3, 1, 20 * M)
    assert (drift.auto_resolved_unactioned, drift.acted_on, drift.ratio) == (1, 1, 3.0)
    assert (drift.short_lived, drift.refires) == (0, 2)
    # re-fires after 30 and 45 minutes; the cooldown is already 60m: the next round step above it
    assert (
        drift.suggestion
        == "lengthen `cooldown:` to 2h — 2 of 3 fires came within 45 min of the previous alert resolving"
    )

    accuracy = r["accuracy_degradation"]
    assert (accuracy.fires, accuracy.acknowledged, accuracy.median_time_to_ack) == (2, 2, 8 * M)
    assert (accuracy.ratio, accuracy.flagged, accuracy.suggestion) == (1.0, False, None)

    cost = r["llm_cost_runaway"]
    assert (cost.fires, cost.acknowledged, cost.median_time_to_ack, cost.acted_on, cost.ratio) == (3, 0, None, 0, None)
    assert cost.auto_resolved_unactioned == 3 and cost.models == ("support-bot",)
    assert cost.suggestion == (
        "raise the threshold or delete the rule — none of its 3 fires was acknowledged or resolved"
    )


def test_without_event_history_the_alert_rows_give_the_same_numbers(history: History) -> None:
    assert review(history.alerts, {}, NOW, WEEK, timings=TIMINGS) == review(
        history.alerts, history.events, NOW, WEEK, timings=TIMINGS
    )


def test_the_window_bounds_what_counts(history: History) -> None:
    # the last 3 days (from Fri 9 Jan 09:00): one latency blip and one accuracy fire
    r = by_rule(review(history.alerts, history.events, NOW, timedelta(days=3)))
    assert set(r) == {"latency_spike", "accuracy_degradation"}
    assert (r["latency_spike"].fires, r["latency_spike"].flagged) == (1, False)  # too few fires to flag


def test_a_suggestion_goes_beyond_the_current_for(history: History) -> None:
    longer = {**TIMINGS, "latency_spike": Timing(for_=12 * M)}
    latency = by_rule(review(history.alerts, history.events, NOW, WEEK, timings=longer))["latency_spike"]
    assert latency.suggestion is not None and latency.suggestion.startswith("add `for: 15m`")


def test_slo_alerts_get_an_slo_suggestion() -> None:
    h = History()
    for d in (6, 7, 8):
        h.add("slo:availability", day(d, 1), resolve=(SYSTEM_ACTOR, day(d, 2)), model="support-bot")
    (only,) = review(h.alerts, h.events, NOW, WEEK)
    assert only.suggestion is not None and only.suggestion.startswith("review the SLO's objective")


def test_rendered_review(history: History) -> None:
    out = render_review(review(history.alerts, history.events, NOW, WEEK, timings=TIMINGS), now=NOW, window=WEEK)
    lines = out.splitlines()
    assert lines[0] == "Alert review — last 7 days (2026-01-05 09:00 → 2026-01-12 09:00 UTC)"
    assert lines[2] == "Rule                     │ Fires │ Acks │ Median ack │ Auto-resolved │ Alert:action"
    assert lines[4] == "⚠ latency_spike          │     4 │    1 │ 4 min      │             3 │ 4.0"
    assert lines[5] == "⚠ llm_cost_runaway       │     3 │    0 │ —          │             3 │ never acted on"
    assert lines[6] == "⚠ significant_data_drift │     3 │    1 │ 20 min     │             1 │ 3.0"
    assert lines[7] == "accuracy_degradation     │     2 │    2 │ 8 min      │             0 │ 1.0"
    assert lines[9] == "Total: 12 fires, 4 acted on (3.0 alerts per action)"
    assert "Noisiest rules:" in lines
    assert (
        "⚠ latency_spike (fraud-detector-v2): 4 fires, 1 acted on → add `for: 10m` — 3 of 4 fires auto-resolved "
        "within 15 min with nobody acting (3 in 4 held for 7 min or less)"
    ) in lines


def test_a_quiet_week() -> None:
    assert render_review([], now=NOW, window=WEEK).endswith("No alert fired in this window. 🎉")
