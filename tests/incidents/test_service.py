"""Incidents through the service, on SQLite and PostgreSQL: one incident per group, one page per
incident, people acting once on the whole incident, storms folded, business hours never hiding a page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.alerts import store as alert_store
from bot.alerts.lifecycle import AlertState
from bot.changes.events import Change, ChangeKind
from bot.changes.log import ChangeLog
from bot.clock import FrozenClock
from bot.config.holder import ConfigHolder
from bot.incidents import store
from bot.incidents.incident import Incident, IncidentState
from bot.notify.outbox import Outbox
from bot.notify.pagerduty import build_event
from bot.pending_actions import PendingAction
from bot.service import AlertService, every_channel
from bot.storage.database import session
from bot.storage.tables import OutboxRow
from tests.support.recording import RecordingNotifier

T0 = datetime(2026, 1, 6, 22, 0, tzinfo=UTC)  # a Tuesday, 22:00 UTC: outside business hours
MINUTE = timedelta(minutes=1)


def write_config(directory: Path, settings: str = "", extra: str = "") -> Path:
    (directory / "rules").mkdir(parents=True)
    (directory / "runbooks").mkdir()
    (directory / "runbooks" / "default.md").write_text("# {model}\n")
    (directory / "rules" / "r.yaml").write_text(
        "settings:\n  group_wait: 10s\n  accept_unknown_models: true\n"
        + settings
        + "metrics:\n  - {name: latency}\n  - {name: drift}\n  - {name: accuracy}\n"
        "models:\n  - {name: m1, channel: '#a'}\n  - {name: m2, channel: '#a'}\n"
        "rules:\n"
        "  - {name: lat, condition: latency > 5, severity: P1, title: 'latency on {model}', cooldown: 0s}\n"
        "  - {name: drift, condition: drift > 5, severity: P2, title: 'drift on {model}', cooldown: 0s}\n"
        "  - {name: acc, condition: accuracy < 0.5, severity: P1, title: 'accuracy on {model}', cooldown: 0s}\n"
        + extra
    )
    return directory


class World:
    def __init__(self, engine: Engine, tmp_path: Path, settings: str = "", extra: str = "") -> None:
        self.engine = engine
        self.clock = FrozenClock(T0)
        self.chat = RecordingNotifier()
        self.pager = RecordingNotifier(channel="pagerduty")
        holder = ConfigHolder(write_config(tmp_path / "config", settings, extra))
        self.service = AlertService(engine, self.clock, holder, every_channel(["recording", "pagerduty"]))
        self.outbox = Outbox(engine, self.clock, {"recording": self.chat, "pagerduty": self.pager})

    def push(self, model: str, **values: float) -> None:
        self.service.ingest([(model, name, self.clock.now(), value) for name, value in values.items()])

    def evaluate(self, after: timedelta = timedelta(seconds=30)) -> None:
        self.clock.advance(after)
        self.service.evaluate_once()
        self.service.escalate_due()
        self.deliver()

    def deliver(self) -> None:
        later = self.clock.now() + timedelta(hours=24)
        saved = self.clock.now()
        self.clock.set(later)  # held rows too: what matters here is what is said, not when
        while self.outbox.deliver_due():
            pass
        self.clock.set(saved)

    def pages(self) -> list[tuple[str, str]]:
        return [(n.kind, str(n.payload["key"])) for n in self.pager.sent]

    def incidents(self) -> list[Incident]:
        with session(self.engine) as s:
            return [i for i in (store.get(s, n) for n in range(1, 500)) if i is not None]


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> World:
    return World(engine, tmp_path)


def test_alerts_of_one_model_are_one_incident_and_one_page(world: World) -> None:
    world.push("m1", latency=9, accuracy=0.1)
    world.evaluate()

    (incident,) = world.incidents()
    with session(world.engine) as s:
        members = store.alerts(s, incident.id or 0)
    assert {a.rule for a in members} == {"lat", "acc"}
    assert world.pages() == [("incident.opened", f"incident:{incident.id}")], "one trigger for two P1 alerts"


def test_a_p1_joining_a_p2_incident_pages_it_once_and_later_p1s_do_not_page_again(world: World) -> None:
    world.push("m1", drift=9)
    world.evaluate()
    assert world.pages() == []

    world.push("m1", drift=9, latency=9)
    world.evaluate()
    world.push("m1", drift=9, latency=9, accuracy=0.1)
    world.evaluate()

    (incident,) = world.incidents()
    assert incident.severity.value == "P1"
    assert world.pages() == [("incident.joined", f"incident:{incident.id}")]


def test_acknowledging_the_incident_acknowledges_its_alerts_and_pagerduty_hears_once(world: World) -> None:
    world.push("m1", latency=9, accuracy=0.1, drift=9)
    world.evaluate()
    (incident,) = world.incidents()
    said_before = len(world.chat.sent)

    acked = world.service.acknowledge_incident(incident.id or 0, actor="U_ANA")
    world.deliver()

    assert acked.state is IncidentState.ACKNOWLEDGED and acked.next_escalation_at is None
    with session(world.engine) as s:
        assert {a.state for a in store.open_alerts(s, incident.id or 0)} == {AlertState.ACKNOWLEDGED}
    assert [k for k, _ in world.pages()] == ["incident.opened", "incident.acknowledged"]
    assert [n.kind for n in world.chat.sent[said_before:]] == ["incident.acknowledged"], "one reply, not three"


def test_the_incident_resolves_with_its_last_alert_and_pagerduty_hears_once(world: World) -> None:
    world.push("m1", latency=9, accuracy=0.1)
    world.evaluate()
    world.push("m1", latency=1, accuracy=0.1)
    world.evaluate()
    (incident,) = world.incidents()
    assert incident.state is IncidentState.FIRING, "one alert is still open"

    world.push("m1", latency=1, accuracy=0.9)
    world.evaluate()

    (incident,) = world.incidents()
    assert incident.state is IncidentState.RESOLVED
    assert [k for k, _ in world.pages()] == ["incident.opened", "incident.auto_resolved"]


def test_a_later_alert_after_the_incident_resolved_opens_a_new_incident(world: World) -> None:
    world.push("m1", latency=9)
    world.evaluate()
    world.push("m1", latency=1)
    world.evaluate()
    world.push("m1", latency=9)
    world.evaluate()

    first, second = world.incidents()
    assert first.state is IncidentState.RESOLVED and second.state is IncidentState.FIRING
    assert [k for k, _ in world.pages()] == ["incident.opened", "incident.auto_resolved", "incident.opened"]
    assert world.pages()[0][1] != world.pages()[2][1], "a new incident is a new PagerDuty incident"


def test_resolving_the_incident_resolves_its_alerts(world: World) -> None:
    world.push("m1", latency=9, drift=9)
    world.evaluate()
    (incident,) = world.incidents()

    world.service.resolve_incident(incident.id or 0, actor="U_BEN")
    world.deliver()

    with session(world.engine) as s:
        assert store.open_alerts(s, incident.id or 0) == []
    assert [k for k, _ in world.pages()] == ["incident.opened", "incident.resolved"]


@pytest.mark.parametrize(("group_by", "incidents"), [("[model]", 2), ("[rule]", 1), ("[model, rule]", 2), ("[]", 1)])
def test_group_by_decides_which_alerts_share_an_incident(
    engine: Engine, tmp_path: Path, group_by: str, incidents: int
) -> None:
    world = World(engine, tmp_path, settings=f"  group_by: {group_by}\n")
    world.push("m1", latency=9)
    world.push("m2", latency=9)
    world.evaluate()

    assert len(world.incidents()) == incidents


def test_two_hundred_models_breaching_one_rule_are_one_storm_incident_and_one_page(world: World) -> None:
    models = [f"fleet-{n:03d}" for n in range(200)]
    for model in models:
        world.push(model, latency=9)
    world.evaluate()

    (storm,) = world.incidents()
    assert storm.storm_rule == "lat"
    with session(world.engine) as s:
        assert len(store.open_alerts(s, storm.id or 0)) == 200
    assert world.pages() == [("incident.opened", f"incident:{storm.id}")]
    assert len(world.pager.sent[0].payload["models"]) == 200, "the page lists the models"

    for model in models[:199]:
        world.push(model, latency=1)
    world.evaluate()
    assert world.incidents()[0].state is IncidentState.FIRING, "open while one model still breaches"
    world.push(models[199], latency=1)
    world.evaluate()
    assert world.incidents()[0].state is IncidentState.RESOLVED
    assert [k for k, _ in world.pages()] == ["incident.opened", "incident.auto_resolved"]


def test_a_few_models_breaching_together_stay_their_own_incidents(world: World) -> None:
    for n in range(10):  # the threshold: more than 10 make a storm
        world.push(f"fleet-{n}", latency=9)
    world.evaluate()

    assert len(world.incidents()) == 10
    assert all(i.storm_rule is None for i in world.incidents())


def test_an_incident_nobody_acknowledges_climbs_once_and_pages_when_it_reaches_p1(world: World) -> None:
    world.push("m1", drift=9)
    world.evaluate()
    world.push("m2", drift=9)
    world.evaluate()

    for _ in range(2 * 61):
        world.push("m1", drift=9)
        world.push("m2", drift=9)
        world.evaluate()

    escalations = [n for n in world.chat.sent if n.kind == "incident.escalated"]
    assert len(escalations) == 6, "three steps per incident, one incident per model"
    assert sorted(k for k, _ in world.pages()) == ["incident.escalated", "incident.escalated"]


BUSINESS_HOURS = (
    "business_hours: {timezone: UTC, days: [mon, tue, wed, thu, fri], start: '09:00', end: '17:00', "
    "outside: quiet_channel}\nrouting: {quiet_channel: '#quiet'}\n"
)


def test_a_page_releases_the_incidents_held_message_to_its_loud_channel(engine: Engine, tmp_path: Path) -> None:
    world = World(engine, tmp_path, extra=BUSINESS_HOURS)
    world.push("m1", drift=9)
    world.clock.advance(30 * timedelta(seconds=1))
    world.service.evaluate_once()
    with session(engine) as s:
        (held,) = s.exec(select(OutboxRow).where(OutboxRow.channel == "recording")).all()
    assert held.payload.get("slack_channel") == "#quiet", "a P2 at night goes to the quiet channel"

    world.push("m1", drift=9, latency=9)
    world.clock.advance(timedelta(seconds=5))
    world.service.evaluate_once()

    with session(engine) as s:
        rows = s.exec(select(OutboxRow).where(OutboxRow.channel == "recording").order_by(col(OutboxRow.id))).all()
    assert all("slack_channel" not in r.payload for r in rows), "the incident pages: everything goes to #a"
    assert all(r.not_before <= world.clock.now() for r in rows)


def alerts_of(engine: Engine, incident: Incident) -> Callable[[], int]:
    def count() -> int:
        with session(engine) as s:
            return len(store.alerts(s, incident.id or 0))

    return count


def test_silenced_alerts_join_no_incident_until_the_silence_ends(world: World) -> None:
    from bot.silences.silence import Silence

    world.service.silence(Silence(rule="lat", model=None, starts_at=T0, ends_at=T0 + 10 * MINUTE, created_by="U_ANA"))
    world.push("m1", latency=9)
    world.evaluate()
    assert world.incidents() == [] and world.pages() == []

    world.clock.advance(11 * MINUTE)
    world.service.release_unmuted()
    world.deliver()
    (incident,) = world.incidents()
    with session(world.engine) as s:
        assert [a.rule for a in store.alerts(s, incident.id or 0)] == ["lat"]
        assert alert_store.open_alerts(s)["lat:m1"].incident_id == incident.id
    assert world.pages() == [("incident.opened", f"incident:{incident.id}")]


def test_a_click_kept_during_an_outage_acknowledges_what_was_there_when_it_was_made(world: World) -> None:
    world.push("m1", latency=9)
    world.evaluate()
    (incident,) = world.incidents()
    clicked_at = world.clock.now()
    world.push("m1", latency=9, accuracy=0.1)  # joins after the click, before the database came back
    world.evaluate()

    world.service.acknowledge_incident(incident.id or 0, actor="U_ANA", at=clicked_at)

    with session(world.engine) as s:
        states = {a.rule: (a.state, a.acknowledged_at) for a in store.open_alerts(s, incident.id or 0)}
    assert states["lat"] == (AlertState.ACKNOWLEDGED, clicked_at), "acknowledged when clicked"
    assert states["acc"][0] is AlertState.FIRING, "an alert that came later fires as itself"


def test_a_kept_click_is_applied_before_the_escalation_it_should_stop(world: World) -> None:
    world.push("m1", drift=9)
    world.evaluate()
    (incident,) = world.incidents()
    world.service.keep_for_later(PendingAction("incident", incident.id or 0, "acknowledge", "U_ANA", world.clock.now()))

    world.clock.advance(timedelta(hours=2))  # every step of the policy is due
    assert world.service.escalate_due() == 0

    (after,) = world.incidents()
    assert after.state is IncidentState.ACKNOWLEDGED and after.acknowledged_by == "U_ANA"
    assert not [n for n in world.chat.sent if n.kind == "incident.escalated"]
    assert len(world.service.pending) == 0


def test_the_page_says_what_shipped_to_the_model_before_the_incident_opened(world: World) -> None:
    ChangeLog(world.engine).record(
        [
            Change("m1", ChangeKind.PROMPT, "v42", world.clock.now() - 4 * MINUTE),
            Change("m1", ChangeKind.MODEL_VERSION, "2.4.0", world.clock.now() - timedelta(hours=3)),  # too long ago
            Change("m2", ChangeKind.DEPLOY, "r17", world.clock.now() - MINUTE),  # another model
        ]
    )
    world.push("m1", latency=9)
    world.evaluate()

    [trigger] = [n for n in world.pager.sent if n.kind == "incident.opened"]
    assert trigger.payload["shipped_before"] == ["m1: prompt v42, 4 min 30 s before"]
    details = build_event("trigger", trigger.payload, "k" * 32)["payload"]["custom_details"]
    assert details["shipped_before"] == ["m1: prompt v42, 4 min 30 s before"]
