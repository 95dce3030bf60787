"""The escalation timeline through the service, on an injected clock: an hour of incident life in milliseconds.

Shipped default policy (seed 001), counted from when the incident opened (its first alert fired):
P3 at 15 min, P2 at 30 min, P1 at 60 min; reaching P1 pages PagerDuty, once per incident.
``significant_data_drift`` is a P2 rule without a
``for:`` (it fires on the first evaluation that sees 9 of 10 features drifted); ``llm_cost_runaway``
is a P1 rule for ``support-bot`` (fires when the day's cost passes 80% of the budget).

Every notification lands in the outbox (channels ``recording`` and ``pagerduty``); the tests read
the rows the service wrote, so they check what would be sent, exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.alerts import store
from bot.alerts.lifecycle import Alert, AlertState, PolicyStep
from bot.clock import FrozenClock
from bot.config.loader import Config
from bot.config.routing_schema import EscalationStep
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident, IncidentEventKind, IncidentState
from bot.service import AlertService, every_channel
from bot.severity import Severity
from bot.storage.database import session
from bot.storage.tables import AlertRow, IncidentEventRow, OutboxRow

FRAUD = "fraud-detector-v2"
SUPPORT = "support-bot"
DRIFT = f"significant_data_drift:{FRAUD}"
COST = f"llm_cost_runaway:{SUPPORT}"
MINUTE = timedelta(minutes=1)
TICK = timedelta(seconds=30)  # the shipped evaluation_interval


@dataclass(frozen=True)
class Note:
    """One outbox row, as much of it as these tests care about."""

    channel: str
    kind: str
    severity: str
    step: object
    routing_key: str
    at: datetime


class Bot:
    """An AlertService on a frozen clock, its configuration swappable like a SIGHUP reload."""

    def __init__(self, engine: Engine, clock: FrozenClock, config: Config) -> None:
        self.engine = engine
        self.clock = clock
        self.config = config
        self.service = self.replica()
        self.start = clock.now()

    def replica(self) -> AlertService:
        """Another AlertService on the same database: a second replica, or this one restarted."""
        return AlertService(self.engine, self.clock, lambda: self.config, every_channel(["recording", "pagerduty"]))

    def at(self, minutes: float) -> datetime:
        return self.start + timedelta(minutes=minutes)

    def drift(self, drifted: float = 9, total: float = 10, model: str = FRAUD) -> None:
        now = self.clock.now()
        self.service.ingest(
            [
                (model, "drifted_feature_count", now, drifted),
                (model, "total_features", now, total),
                (model, "top_drifted_features", now, "amount, merchant_id"),
            ]
        )

    def cost(self, usd: float = 450) -> None:
        self.service.ingest([(SUPPORT, "daily_cost_usd", self.clock.now(), usd)])

    def tick(self, feed: Callable[[], None] | None = None) -> int:
        """One scheduler tick: fresh metrics, an evaluation pass, an escalation sweep."""
        if feed is not None:
            feed()
        self.service.evaluate_once()
        return self.service.escalate_due()

    def run_until(
        self, minutes: float, feed: Callable[[], None] | None = None, every: timedelta = MINUTE
    ) -> dict[float, int]:
        """Tick ``every`` so often until ``minutes`` after the start; return {minute: steps run} where any ran."""
        ran: dict[float, int] = {}
        while self.clock.now() < self.at(minutes):
            self.clock.advance(min(every, self.at(minutes) - self.clock.now()))
            steps = self.tick(feed)
            if steps:
                ran[(self.clock.now() - self.start) / MINUTE] = steps
        return ran

    def alert(self, key: str = DRIFT) -> Alert:
        """The newest alert for ``key``, open or not."""
        with session(self.engine) as s:
            row = s.exec(select(AlertRow).where(AlertRow.dedup_key == key).order_by(col(AlertRow.id).desc())).first()
        assert row is not None, f"no alert for {key}"
        return store.to_alert(row)

    def incident(self, key: str = DRIFT) -> Incident:
        """The incident the newest alert for ``key`` joined."""
        with session(self.engine) as s:
            found = incident_store.get(s, self.alert(key).incident_id or 0)
        assert found is not None, f"the alert for {key} joined no incident"
        return found

    def notes(self, key: str = DRIFT) -> list[Note]:
        """What the incident of ``key``'s newest alert said, in order."""
        incident_id = self.alert(key).incident_id
        with session(self.engine) as s:
            query = select(OutboxRow).where(OutboxRow.incident_id == incident_id).order_by(col(OutboxRow.id))
            rows = s.exec(query).all()
        return [
            Note(
                r.channel,
                r.kind,
                r.payload["severity"],
                r.payload["escalation"].get("step"),
                r.payload.get("pagerduty_routing_key", ""),
                r.created_at,
            )
            for r in rows
        ]

    def pages(self, key: str = DRIFT) -> list[tuple[str, str]]:
        """(kind, routing key) of what went to PagerDuty ("" = the default key)."""
        return [(n.kind, n.routing_key) for n in self.notes(key) if n.channel == "pagerduty"]

    def history(self, key: str = DRIFT) -> list[tuple[IncidentEventKind, str]]:
        with session(self.engine) as s:
            events = incident_store.history(s, self.alert(key).incident_id or 0)
            return [(e.kind, str(e.data.get("to_severity", ""))) for e in events]


@pytest.fixture
def bot(engine: Engine, clock: FrozenClock, config: Config) -> Bot:
    return Bot(engine, clock, config)


def with_model_policy(config: Config, model: str, name: str, steps: tuple[EscalationStep, ...]) -> Config:
    models = dict(config.models)
    models[model] = models[model].model_copy(update={"escalation": name})
    return replace(config, models=models, escalation={**config.escalation, name: steps})


def fired(bot: Bot, feed: Callable[[], None] | None = None, key: str = DRIFT) -> Alert:
    bot.tick(feed or bot.drift)
    alert = bot.alert(key)
    assert alert.state is AlertState.FIRING and alert.fired_at == bot.start
    return alert


# --------------------------------------------------------------------------- the default hour


def test_nobody_acknowledges_a_p2_alert_for_an_hour(bot: Bot) -> None:
    alert = fired(bot)
    assert alert.severity is Severity.P2
    assert alert.policy == (
        PolicyStep(15 * MINUTE, Severity.P3),
        PolicyStep(30 * MINUTE, Severity.P2),
        PolicyStep(60 * MINUTE, Severity.P1),
    )
    assert bot.incident().next_escalation_at == bot.at(15)

    ran = bot.run_until(90, feed=bot.drift, every=TICK)  # evaluation every 30 s, the condition stays true

    assert ran == {15: 1, 30: 1, 60: 1}
    assert bot.notes() == [
        Note("recording", "alert.fired", "P2", None, "", bot.at(0)),
        Note("recording", "incident.escalated", "P2", 1, "", bot.at(15)),  # P2 stays P2 at the P3 step
        Note("recording", "incident.escalated", "P2", 2, "", bot.at(30)),
        Note("recording", "incident.escalated", "P1", 3, "", bot.at(60)),
        Note("pagerduty", "incident.escalated", "P1", 3, "", bot.at(60)),  # the one page
    ]
    assert bot.history() == [
        (IncidentEventKind.OPENED, ""),
        (IncidentEventKind.ESCALATED, "P2"),
        (IncidentEventKind.ESCALATED, "P2"),
        (IncidentEventKind.ESCALATED, "P1"),
    ]
    final = bot.incident()
    assert (final.state, final.severity, final.escalation_step) == (IncidentState.FIRING, Severity.P1, 3)
    assert final.next_escalation_at is None
    assert final.paged_keys == ("",)
    assert bot.alert().severity is Severity.P2, "the alert is what it is; its incident climbed"


def test_evaluation_ticks_do_not_disturb_the_deadlines(bot: Bot) -> None:
    fired(bot)
    for _ in range(20):  # 10 minutes of evaluation only
        bot.clock.advance(TICK)
        bot.drift()
        assert bot.service.evaluate_once().transitions == []

    incident = bot.incident()
    assert (incident.escalation_step, incident.next_escalation_at, incident.opened_at) == (0, bot.at(15), bot.at(0))


def test_a_step_is_due_at_exactly_its_deadline_not_a_moment_before(bot: Bot) -> None:
    fired(bot)
    bot.clock.set(bot.at(15) - timedelta(milliseconds=1))
    assert bot.service.escalate_due() == 0

    bot.clock.set(bot.at(15))
    assert bot.service.escalate_due() == 1


def test_escalate_due_many_times_at_one_instant_runs_each_step_once(bot: Bot) -> None:
    fired(bot)
    bot.clock.set(bot.at(15))

    runs = [bot.service.escalate_due() for _ in range(5)] + [bot.replica().escalate_due() for _ in range(3)]

    assert runs == [1, 0, 0, 0, 0, 0, 0, 0]
    assert [n.step for n in bot.notes() if n.kind == "incident.escalated"] == [1]


def test_after_downtime_the_overdue_steps_run_once_each_in_order(bot: Bot) -> None:
    fired(bot)
    bot.clock.set(bot.at(75))  # the bot was down from 0 to 75 min

    assert bot.replica().escalate_due() == 3  # the restarted process picks up the deadlines from the DB
    assert bot.replica().escalate_due() == 0

    assert [(n.channel, n.severity, n.step, n.at) for n in bot.notes() if n.kind == "incident.escalated"] == [
        ("recording", "P2", 1, bot.at(75)),
        ("recording", "P2", 2, bot.at(75)),
        ("recording", "P1", 3, bot.at(75)),
        ("pagerduty", "P1", 3, bot.at(75)),
    ]


# --------------------------------------------------------------------------- people step in


def test_acknowledging_at_twenty_minutes_stops_the_climb(bot: Bot) -> None:
    alert = fired(bot)
    bot.run_until(20, feed=bot.drift)
    bot.service.acknowledge(alert.id or 0, actor="U_ANA")

    ran = bot.run_until(120, feed=bot.drift, every=5 * MINUTE)

    assert ran == {}
    assert bot.alert().state is AlertState.ACKNOWLEDGED
    acked = bot.incident()
    assert (acked.state, acked.severity, acked.escalation_step) == (IncidentState.ACKNOWLEDGED, Severity.P2, 1)
    assert acked.next_escalation_at is None
    assert [(n.channel, n.kind) for n in bot.notes()] == [
        ("recording", "alert.fired"),
        ("recording", "incident.escalated"),
        ("recording", "alert.acknowledged"),
    ]
    assert bot.pages() == []  # never paged, so PagerDuty hears nothing of the acknowledge


def test_acknowledging_a_paged_alert_tells_pagerduty(bot: Bot) -> None:
    alert = fired(bot)
    bot.run_until(61, feed=bot.drift)
    bot.service.acknowledge(alert.id or 0, actor="U_ANA")
    bot.run_until(70, feed=bot.drift)
    bot.service.resolve(alert.id or 0, actor="U_ANA")

    assert bot.pages() == [("incident.escalated", ""), ("incident.acknowledged", ""), ("incident.resolved", "")]


def test_resolving_ends_the_climb(bot: Bot) -> None:
    alert = fired(bot)
    bot.run_until(40, feed=bot.drift)
    bot.service.resolve(alert.id or 0, actor="U_BEN")

    assert bot.run_until(120, every=5 * MINUTE) == {}
    done = bot.incident()
    assert (done.state, done.severity, done.escalation_step) == (IncidentState.RESOLVED, Severity.P2, 2)
    assert done.next_escalation_at is None
    kinds = [n.kind for n in bot.notes()]
    assert kinds == ["alert.fired", "incident.escalated", "incident.escalated", "alert.resolved"]


def test_an_auto_resolve_ends_the_climb(bot: Bot) -> None:
    fired(bot)
    bot.run_until(20, feed=bot.drift)
    bot.tick(lambda: bot.drift(drifted=0))  # the drift went away

    assert bot.run_until(120, feed=lambda: bot.drift(drifted=0), every=5 * MINUTE) == {}
    assert bot.alert().state is AlertState.RESOLVED
    assert [n.kind for n in bot.notes()] == ["alert.fired", "incident.escalated", "alert.auto_resolved"]
    assert bot.incident().state is IncidentState.RESOLVED


def test_no_data_neither_resolves_nor_stops_the_climb(bot: Bot) -> None:
    """The exporter dies after the fire: the samples go stale, and the climb carries on."""
    fired(bot)

    assert bot.run_until(61) == {15: 1, 30: 1, 60: 1}
    assert bot.pages() == [("incident.escalated", "")]


# --------------------------------------------------------------------------- P1 rules


def test_a_p1_alert_pages_at_fire_and_its_p1_step_does_not_page_again(bot: Bot) -> None:
    alert = fired(bot, bot.cost, COST)
    assert alert.severity is Severity.P1 and bot.incident(COST).paged_keys == ("",)

    assert bot.run_until(90, feed=bot.cost) == {15: 1, 30: 1, 60: 1}

    assert [(n.channel, n.kind, n.severity, n.step) for n in bot.notes(COST)] == [
        ("recording", "alert.fired", "P1", None),
        ("pagerduty", "incident.opened", "P1", None),  # paged at once (written as the pass ends)
        ("recording", "incident.escalated", "P1", 1),  # a P1 incident stays P1 at the P3 and P2 steps
        ("recording", "incident.escalated", "P1", 2),
        ("recording", "incident.escalated", "P1", 3),  # and its P1 step does not page a second time
    ]
    bot.service.acknowledge(alert.id or 0, actor="U_ANA")
    assert bot.pages(COST) == [("incident.opened", ""), ("incident.acknowledged", "")]


# --------------------------------------------------------------------------- configuration


def test_a_reload_does_not_change_a_climb_in_progress_but_new_alerts_get_the_new_policy(bot: Bot) -> None:
    fired(bot)
    bot.run_until(5, feed=bot.drift)
    faster = (EscalationStep(after=2 * MINUTE, severity=Severity.P1, mention="@ml-oncall"),)
    bot.config = replace(bot.config, escalation={**bot.config.escalation, "default": faster})  # SIGHUP

    new = fired_later(bot)
    assert new.policy == (PolicyStep(2 * MINUTE, Severity.P1, "@ml-oncall"),)
    assert bot.alert().policy[0] == PolicyStep(15 * MINUTE, Severity.P3)  # the old alert kept its snapshot

    def both_drift() -> None:
        bot.drift()
        bot.drift(model=SUPPORT)

    ran = bot.run_until(61, feed=both_drift)

    assert ran == {7: 1, 15: 1, 30: 1, 60: 1}  # the new alert's step at 5+2 min, the old one's at 15/30/60
    assert bot.pages(f"significant_data_drift:{SUPPORT}") == [("incident.escalated", "")]
    assert bot.pages() == [("incident.escalated", "")]
    assert [n.step for n in bot.notes() if n.channel == "recording" and n.kind == "incident.escalated"] == [1, 2, 3]


def fired_later(bot: Bot) -> Alert:
    bot.drift(model=SUPPORT)
    bot.service.evaluate_once()
    alert = bot.alert(f"significant_data_drift:{SUPPORT}")
    assert alert.fired_at == bot.clock.now()
    return alert


def test_a_per_model_policy_step_with_a_routing_key_pages_that_service_too(bot: Bot) -> None:
    l2 = (
        EscalationStep(after=15 * MINUTE, severity=Severity.P3),
        EscalationStep(after=30 * MINUTE, severity=Severity.P2),
        EscalationStep(
            after=60 * MINUTE, severity=Severity.P1, mention="@ml-platform-team", pagerduty_routing_key="L2-KEY"
        ),
    )
    bot.config = with_model_policy(bot.config, FRAUD, "fraud_l2", l2)
    alert = fired(bot)
    assert alert.policy[-1].routing_key == "L2-KEY"

    bot.run_until(61, feed=bot.drift)
    bot.service.acknowledge(alert.id or 0, actor="U_ANA")

    assert bot.incident().paged_keys == ("", "L2-KEY")
    assert bot.pages() == [
        ("incident.escalated", ""),  # P2 → P1 pages the default service
        ("incident.escalated", "L2-KEY"),  # and the step names the L2 service
        ("incident.acknowledged", ""),  # the acknowledge reaches both
        ("incident.acknowledged", "L2-KEY"),
    ]
    last = [n for n in bot.notes() if n.kind == "incident.escalated"][-1]
    with session(bot.engine) as s:
        data = s.exec(select(IncidentEventRow.data).where(IncidentEventRow.kind == "escalated")).all()[-1]
    assert data["mention"] == "@ml-platform-team" and data["routing_key"] == "L2-KEY"
    assert last.step == 3


def test_a_step_key_below_paging_severity_pages_only_that_key(bot: Bot) -> None:
    early_l2 = (EscalationStep(after=15 * MINUTE, severity=Severity.P3, pagerduty_routing_key="L2-KEY"),)
    bot.config = with_model_policy(bot.config, FRAUD, "early_l2", early_l2)
    alert = fired(bot)

    bot.run_until(16, feed=bot.drift)
    bot.service.resolve(alert.id or 0, actor="U_BEN")

    assert bot.pages() == [("incident.escalated", "L2-KEY"), ("incident.resolved", "L2-KEY")]


# --------------------------------------------------------------------------- the watchdog


def test_the_watchdog_lists_an_escalation_that_did_not_run_in_time(bot: Bot) -> None:
    fired(bot)
    incident = bot.incident()

    bot.clock.set(bot.at(15) + timedelta(seconds=30))
    assert bot.service.overdue_escalations() == []  # within the 30 s grace

    bot.clock.set(bot.at(15) + timedelta(seconds=31))
    assert bot.service.overdue_escalations() == [(incident.id, incident.group_key, bot.at(15))]
    assert bot.service.overdue_escalations(grace=timedelta(minutes=1)) == []

    bot.service.escalate_due()
    assert bot.service.overdue_escalations() == []


def test_the_watchdog_ignores_acknowledged_and_resolved_incidents(bot: Bot) -> None:
    alert = fired(bot)
    bot.service.acknowledge(alert.id or 0, actor="U_ANA")
    fired_later(bot)
    bot.service.resolve(bot.alert(f"significant_data_drift:{SUPPORT}").id or 0, actor="U_BEN")

    bot.clock.set(bot.at(120))
    assert bot.service.overdue_escalations() == []
