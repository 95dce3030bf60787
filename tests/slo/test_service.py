"""SLO burn-rate alerts through the real alert pipeline (AlertService, outbox) on SQLite and PostgreSQL.

The shipped ``response_time_p95_ms`` SLO of support-bot: ``below 2000`` over 7 days, 99% of the
time, so the tiers are fast (14 min / 70 s, 14.4×, P1), slow (84 min / 7 min, 6×, P1) and ticket
(16.8 h / 84 min, 1×, P3). Samples are pushed every minute of simulated time on a FrozenClock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from bot.alerts import store
from bot.alerts.lifecycle import Alert, AlertState
from bot.clock import FrozenClock
from bot.config.conditions import Outcome
from bot.config.loader import Config
from bot.evaluation.evaluate import policy_for
from bot.notify.outbox import Outbox
from bot.service import AlertService
from bot.severity import Severity
from bot.slo.service import evaluate_slos, observation_for, slo_dashboards, spec_of, specs_of
from bot.slo.spec import SloSpec
from bot.storage.database import session
from tests.slo.helpers import MIN, every
from tests.support.recording import RecordingNotifier

BOT = "support-bot"
LATENCY = "response_time_p95_ms"
KEY = f"slo:{LATENCY}:{BOT}"
AVAILABILITY_KEY = f"slo:availability:{BOT}"


def push(service: AlertService, clock: FrozenClock, metrics: dict[str, float], at: datetime | None = None) -> None:
    service.ingest([(BOT, name, at or clock.now(), value) for name, value in metrics.items()])


def healthy_week(service: AlertService, clock: FrozenClock, metrics: dict[str, float]) -> None:
    """A week of good samples every 5 minutes up to now: full coverage for every tier."""
    now = clock.now()
    points = [
        (BOT, name, s.at, s.value)
        for name, value in metrics.items()
        for s in every(value, start=now - timedelta(days=7), end=now, step=5 * MIN)
    ]
    service.ingest(points)


def minutes(
    service: AlertService, clock: FrozenClock, count: int, metrics: dict[str, float]
) -> list[tuple[datetime, str]]:
    """``count`` simulated minutes: advance, push, run an SLO pass; the transitions seen."""
    seen = []
    for _ in range(count):
        clock.advance(MIN)
        push(service, clock, metrics)
        for change in service.evaluate_slos_once().transitions:
            seen.append((clock.now(), change.event.kind.value))
    return seen


def slo_alert(engine: Engine, key: str = KEY) -> Alert | None:
    with session(engine) as s:
        return store.open_alerts(s).get(key)


@pytest.fixture
def delivered(engine: Engine, clock: FrozenClock) -> Callable[[], list[tuple[str, str]]]:
    recorder = RecordingNotifier()
    outbox = Outbox(engine, clock, {"recording": recorder})

    def run() -> list[tuple[str, str]]:
        while outbox.deliver_due():
            pass
        return recorder.events()

    return run


def test_a_latency_incident_fires_one_burn_alert_and_auto_resolves(
    service: AlertService,
    clock: FrozenClock,
    engine: Engine,
    config: Config,
    delivered: Callable[[], list[tuple[str, str]]],
) -> None:
    healthy_week(service, clock, {LATENCY: 1500})
    assert service.evaluate_slos_once().transitions == []

    start = clock.now()
    seen = minutes(service, clock, 4, {LATENCY: 6000})
    # a sample holds until the next one: at minute 4, 3 of the last 14 minutes were bad = 21% of the
    # time, 21× the 1% budget, over the fast tier's 14.4× (at minute 3: 2 of 14, 14.3×, not yet)
    assert seen == [(start + 4 * MIN, "fired")]
    alert = slo_alert(engine)
    assert alert is not None and alert.state is AlertState.FIRING
    assert (alert.rule, alert.model, alert.severity) == (f"slo:{LATENCY}", BOT, Severity.P1)
    assert alert.title == f"SLO {LATENCY} of {BOT}: error budget burning 21.4× too fast"
    assert alert.description.startswith(f"Burning error budget of {LATENCY} ({BOT}) 21.4× too fast (14 min: 21.4×")
    assert alert.values["tier"] == "fast"
    assert alert.policy == policy_for(config, BOT)  # escalates like any rule's alert

    # 30 minutes on, the slow and ticket tiers burn too: still one alert, the slower tiers folded in
    assert minutes(service, clock, 26, {LATENCY: 6000}) == []
    (finding,) = [f for f in evaluate_slos(engine, config, clock.now()) if f.spec.metric == LATENCY]
    assert finding.tier is not None and finding.tier.name == "fast"
    assert finding.suppressed == ("slow", "ticket")

    # recovery: the fast and slow tiers clear within minutes, but 29 bad minutes spent 29% of the
    # week's budget, so the ticket tier (1×, 84-minute short window) holds the one alert open until
    # the last bad minute has left its short window: 84 minutes after the last bad sample
    recovered = clock.now()
    seen = minutes(service, clock, 120, {LATENCY: 1500})
    assert len(seen) == 1 and seen[0][1] == "auto_resolved"
    assert timedelta(minutes=84) <= seen[0][0] - recovered <= timedelta(minutes=86)
    assert slo_alert(engine) is None
    assert delivered() == [("fired", KEY), ("auto_resolved", KEY)]


def test_a_resolved_slo_alert_cools_down_for_30_minutes(
    service: AlertService, clock: FrozenClock, engine: Engine
) -> None:
    healthy_week(service, clock, {LATENCY: 1500})
    minutes(service, clock, 4, {LATENCY: 6000})
    alert = slo_alert(engine)
    assert alert is not None and alert.id is not None
    service.resolve(alert.id, actor="U_ANA")

    assert minutes(service, clock, 20, {LATENCY: 6000}) == []  # still burning, but cooling down
    seen = minutes(service, clock, 15, {LATENCY: 6000})
    assert [kind for _, kind in seen] == ["fired"]
    assert seen[0][0] - alert.fired_at >= timedelta(minutes=30)  # type: ignore[operator]


def test_a_metric_that_stops_arriving_is_its_own_alert_and_data_resolves_it(
    service: AlertService, clock: FrozenClock, engine: Engine
) -> None:
    healthy_week(service, clock, {LATENCY: 1500})
    last = clock.now()
    clock.advance(15 * MIN)
    assert service.evaluate_slos_once().transitions == []  # 15 min is stale_after: not yet absent
    clock.advance(MIN)
    (change,) = service.evaluate_slos_once().transitions
    assert change.event.kind.value == "fired"
    alert = slo_alert(engine)
    assert alert is not None and alert.severity is Severity.P2
    assert alert.title == f"SLO {LATENCY} of {BOT}: no {LATENCY} data"
    assert f"since {last:%Y-%m-%d %H:%M} UTC (16 min ago)" in alert.description
    assert alert.values == {"metric": LATENCY, "last_seen": last.isoformat()}

    seen = minutes(service, clock, 1, {LATENCY: 1500})
    assert [kind for _, kind in seen] == ["auto_resolved"]


def test_slos_whose_metrics_never_arrived_do_not_alert(service: AlertService, clock: FrozenClock) -> None:
    # the shipped SLOs, no sample at all: "no data" on the dashboard, not five absent-metric pages
    assert service.evaluate_slos_once().transitions == []
    clock.advance(timedelta(hours=2))
    assert service.evaluate_slos_once().transitions == []


def test_min_traffic_guard_no_page_on_a_trickle_of_failures(
    service: AlertService, clock: FrozenClock, engine: Engine, config: Config
) -> None:
    # availability: above 0.995 of responses, min_events 100 in the long window; a quiet week
    healthy_week(service, clock, {"responses_ok": 0, "responses_total": 0})
    few = {"responses_ok": 2.0, "responses_total": 5.0}  # 60% errors, but 5 responses a minute
    assert minutes(service, clock, 10, few) == []  # 50 responses in every long window: under the guard
    seen = minutes(service, clock, 2, {"responses_ok": 600.0, "responses_total": 1000.0})
    assert [kind for _, kind in seen] == ["fired"]
    alert = slo_alert(engine, AVAILABILITY_KEY)
    assert alert is not None and alert.title.startswith(f"SLO availability of {BOT}: error budget burning")

    # a tier over its threshold but under the guard is unknown, not healthy: it never auto-resolves
    spec = next(s for s in specs_of(config) if s.label == "availability")
    now = clock.now()
    trickle = {
        "responses_ok": every(2, start=now - timedelta(days=7), end=now, step=MIN),
        "responses_total": every(5, start=now - timedelta(days=7), end=now, step=MIN),
    }
    short = {name: [x for x in samples if x.at > now - 15 * MIN] for name, samples in trickle.items()}
    assert observation_for(spec, short, now).outcome is Outcome.NO_DATA  # 70 events in 14 min: held back


def test_observation_outcomes(config: Config, clock: FrozenClock) -> None:
    now = clock.now()
    spec = next(s for s in specs_of(config) if s.metric == LATENCY)
    good = {LATENCY: every(1500, start=now - timedelta(days=7), end=now, step=5 * MIN)}
    assert observation_for(spec, good, now).outcome is Outcome.FALSE
    # the service fetches only the ticket tier's 16.8 h (+ stale_after) for a healthy SLO: same answer
    recent = {LATENCY: [x for x in good[LATENCY] if x.at >= now - timedelta(hours=17, minutes=3)]}
    assert observation_for(spec, recent, now) == observation_for(spec, good, now)
    assert observation_for(spec, {}, now).outcome is Outcome.NO_DATA  # never seen
    # ten bad minutes after days without data: the fast tier's 14 min are covered well enough to page
    sparse = {LATENCY: every(6000, start=now - 10 * MIN, end=now, step=MIN)}
    seen = observation_for(spec, sparse, now)
    assert seen.outcome is Outcome.TRUE and seen.values["tier"] == "fast"
    held = {LATENCY: every(6000, start=now - 4 * MIN, end=now, step=MIN)}  # 4 of 14 min: 29% coverage
    assert observation_for(spec, held, now).outcome is Outcome.NO_DATA


def test_burn_alerts_false_and_catalogue_units(config: Config) -> None:
    quiet = replace(config, slos=tuple(s.model_copy(update={"burn_alerts": False}) for s in config.slos))
    assert specs_of(quiet, alerting_only=True) == []
    assert len(specs_of(quiet)) == len(config.slos)  # still on the dashboard
    latency = next(s for s in config.slos if s.metric == LATENCY)
    assert spec_of(config, latency).unit == "ms"  # rules/models.yaml: unit: ms


def test_dashboards_read_the_database(
    service: AlertService, clock: FrozenClock, engine: Engine, config: Config
) -> None:
    healthy_week(service, clock, {LATENCY: 1500, "current_accuracy": 0.8})
    boards = slo_dashboards(engine, config, clock.now())
    assert [b.model for b in boards] == [BOT, "fraud-detector-v2"]  # support-bot has a warning: worst first
    rows = {r.spec.label: r for r in boards[0].rows}
    assert rows["current_accuracy"].status.label == "warning"
    assert rows[LATENCY].compliance == 1.0 and rows["helpfulness"].status.label == "no data"
    (one,) = slo_dashboards(engine, config, clock.now(), timedelta(hours=1), model=BOT)
    assert {r.window for r in one.rows} == {timedelta(hours=1)}


def test_spec_defaults_follow_the_engine_settings(config: Config) -> None:
    stale = replace(config, settings=config.settings.model_copy(update={"stale_after": timedelta(minutes=5)}))
    spec: SloSpec = specs_of(stale)[0]
    assert spec.stale_after == spec.absent_after == timedelta(minutes=5)
