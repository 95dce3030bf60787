"""An escalation sweep is recorded in bulk (:meth:`bot.recording.Recorder.climbs`), and what it
stores and queues is exactly what recording each step one by one stores and queues (issue 16,
point 3): the same incidents at the same versions, the same events, the same outbox rows in the
same order with the same idempotency keys and payloads -- pages, emails, what shipped, held chat
rows released by a page -- including incidents that take several steps in one sweep after downtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.changes.events import Change, ChangeKind
from bot.changes.log import ChangeLog
from bot.clock import FrozenClock
from bot.config.holder import ConfigHolder
from bot.config.loader import Config
from bot.errors import ConcurrentChange
from bot.escalation.sweep import Step
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident, IncidentEvent, IncidentEventKind
from bot.recording import Recorder
from bot.service import AlertService, every_channel
from bot.storage.database import make_engine, migrate
from bot.storage.database import session as open_session
from bot.storage.tables import IncidentEventRow, IncidentRow, OutboxRow

T0 = datetime(2026, 1, 6, 22, 0, tzinfo=UTC)  # a Tuesday night: chat rows of a P3 go to the quiet channel
MINUTE = timedelta(minutes=1)
STEP_KEY = "s" * 32
MODELS = ["m1", "m2", "m3", "m4", "m5"]
CONFIG = f"""
settings: {{group_wait: 0s}}
metrics: [{{name: drift}}]
models:
  - {{name: m1, channel: '#a', email: [m1-team@example.com]}}
  - {{name: m2, channel: '#a'}}
  - {{name: m3, channel: '#b', email: [m3-team@example.com]}}
  - {{name: m4, channel: '#b'}}
  - {{name: m5, channel: '#b', email: [m5-team@example.com]}}
rules:
  - {{name: drift, condition: drift > 5, severity: P3, title: 'drift on {{model}}', cooldown: 0s}}
escalation:
  default:
    - {{after: 5m, severity: P3, mention: '@here'}}
    - {{after: 10m, severity: P2, pagerduty_routing_key: {STEP_KEY}}}
    - {{after: 20m, severity: P1}}
routing: {{email: [P2], quiet_channel: '#quiet'}}  # emailed from the second step on
business_hours: {{timezone: UTC, days: [mon, tue, wed, thu, fri], start: '09:00', end: '17:00', outside: quiet_channel}}
"""


def one_by_one(self: Recorder, s: Session, due: Sequence[Incident], step: Step, config: Config, now: datetime) -> int:
    """The sweep as it was recorded before batching: each step saved on its own, the next one
    decided on the incident as saved."""
    ran = 0
    for incident in due:
        current = incident
        while (change := step(current)) is not None:
            current = self.incident(s, change, config, now)
            ran += 1
    return ran


def night_of_escalations(engine: Engine, tmp_path: Path) -> AlertService:
    """Five P3 incidents at night: the first sweep runs one step of four of them; one is then
    acknowledged; after 25 minutes of downtime one sweep runs two steps of three of them and
    three of the fifth, which fired later. P2 is emailed: the second step emails an incident first,
    and its third, in the same sweep, tells the readers it has. What shipped to m1 is on its pages."""
    service, clock = four_incidents_due(engine, tmp_path)
    service.ingest([(model, "drift", clock.now(), 9.0) for model in MODELS])
    service.evaluate_once()
    assert service.escalate_due() == 4
    with open_session(engine) as s:
        m4 = incident_store.open_for_model(s, "m4")
    assert m4 is not None and m4.id is not None
    service.acknowledge_incident(m4.id, actor="U_ANA")
    clock.advance(25 * MINUTE)
    assert service.escalate_due() == 3 * 2 + 3
    return service


def four_incidents_due(engine: Engine, tmp_path: Path) -> tuple[AlertService, FrozenClock]:
    """Four P3 incidents (m1 to m4) that fired 6 minutes ago, their first step due."""
    (tmp_path / "rules").mkdir(parents=True)
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "default.md").write_text("# {model}\n")
    (tmp_path / "rules" / "r.yaml").write_text(CONFIG)
    clock = FrozenClock(T0)
    service = AlertService(engine, clock, ConfigHolder(tmp_path), every_channel(["recording", "pagerduty", "email"]))
    ChangeLog(engine).record(
        [
            Change("m1", ChangeKind.PROMPT, "v42", T0 - 4 * MINUTE),
            Change("m3", ChangeKind.DEPLOY, "r9", T0 - timedelta(hours=5)),  # outside the change window
        ]
    )
    service.ingest([(model, "drift", clock.now(), 9.0) for model in MODELS[:4]])
    service.evaluate_once()
    clock.advance(6 * MINUTE)
    return service, clock


def test_a_sweep_that_loses_a_race_to_a_click_reads_again_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite has no row locks: a click can change a due incident between the sweep's read and its
    write, which refuses the whole sweep. The sweep reads again at once, rather than a tick later."""
    engine = make_engine(f"sqlite:///{tmp_path}/race.db")
    migrate(engine)
    service, _clock = four_incidents_due(engine, tmp_path / "config")
    climbs, clicked = Recorder.climbs, []

    def a_click_lands_first(self: Recorder, s: Session, due: Sequence[Incident], step: Step, *rest: Any) -> int:
        if not clicked:
            clicked.append(due[0].id)
            service.acknowledge_incident(due[0].id or 0, actor="U_ANA")  # its own transaction, committed
        return climbs(self, s, due, step, *rest)

    monkeypatch.setattr(Recorder, "climbs", a_click_lands_first)
    assert service.escalate_due() == 3, "the other three climb in the same call"
    with open_session(engine) as s:
        steps = s.exec(select(IncidentEventRow).where(IncidentEventRow.kind == IncidentEventKind.ESCALATED.value)).all()
    assert len(steps) == 3 and clicked[0] not in {event.incident_id for event in steps}
    engine.dispose()


def stored(engine: Engine) -> dict[str, Any]:
    """Every incident, incident event and outbox row, whole and in id order (the databases are
    filled by the same steps, so the ids agree)."""
    with open_session(engine) as s:
        incidents = s.exec(select(IncidentRow).order_by(col(IncidentRow.id))).all()
        events = s.exec(select(IncidentEventRow).order_by(col(IncidentEventRow.id))).all()
        outbox = s.exec(select(OutboxRow).order_by(col(OutboxRow.id))).all()
        return {
            "incidents": [incident_store.to_incident(row) for row in incidents],
            "events": [(e.incident_id, e.kind, e.actor, str(e.at), e.detail, e.data) for e in events],
            "outbox": [
                (r.channel, r.kind, r.idempotency_key, r.payload, str(r.not_before), r.alert_id, r.incident_id)
                for r in outbox
            ],
        }


def test_a_bulk_sweep_stores_and_queues_what_the_one_by_one_path_does(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    together = stored(night_of_escalations(engine, tmp_path / "together").engine)

    reference = make_engine(f"sqlite:///{tmp_path}/one-by-one.db")
    migrate(reference)
    with monkeypatch.context() as patched:
        patched.setattr(Recorder, "climbs", one_by_one)
        alone = stored(night_of_escalations(reference, tmp_path / "one-by-one").engine)
    reference.dispose()

    assert together == alone
    # and the scenario reaches what the bulk path must get right
    kinds = [(row[0], row[1]) for row in together["outbox"]]
    assert ("email", "incident.escalated") in kinds, "an emailed incident's readers hear its steps"
    assert ("pagerduty", "incident.escalated") in kinds
    pages = [row[3] for row in together["outbox"] if row[0] == "pagerduty"]
    assert any(p.get("shipped_before") == ["m1: prompt v42, 4 min before"] for p in pages)
    steps = [e for e in together["events"] if e[1] == IncidentEventKind.ESCALATED.value]
    assert len(steps) == 4 + 9
    paged = {row[6] for row in together["outbox"] if row[0] == "pagerduty"}
    quiet = {row[6] for row in together["outbox"] if "slack_channel" in row[3]}
    assert len(paged) == 4 and quiet, "m4, acknowledged before any page, is still told in the quiet channel"
    assert not paged & quiet, "a page released its incident's held rows to their loud channel"


def test_a_bulk_sweep_that_finds_an_incident_moved_on_is_refused_whole(engine: Engine, tmp_path: Path) -> None:
    service = night_of_escalations(engine, tmp_path)
    with open_session(service.engine) as s:
        first, second = (incident_store.to_incident(row) for row in s.exec(select(IncidentRow).limit(2)))
    moved_on = _escalated(second, version=second.version + 2)  # one step, but read a version ago
    with pytest.raises(ConcurrentChange, match="1 of 2"), open_session(service.engine) as s, s.begin():
        incident_store.save_moved(s, [_escalated(first, version=first.version + 1), moved_on])
    with open_session(service.engine) as s:
        assert [incident_store.to_incident(r).version for r in s.exec(select(IncidentRow).limit(2))] == [
            first.version,
            second.version,
        ]


def _escalated(incident: Incident, *, version: int) -> tuple[Incident, list[IncidentEvent]]:
    event = IncidentEvent(IncidentEventKind.ESCALATED, "system", T0, "test")
    return replace(incident, version=version), [event]
