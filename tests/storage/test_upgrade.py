"""Upgrading a database written by the release before incidents (schema 2, ``fixtures/schema_v2.sql``).

Its open alerts carry on as incidents of their own: same Slack message, same escalation step and
deadline, same PagerDuty key (so an acknowledge still reaches the page it answers). New alerts
group into incidents as usual.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.alerts import store as alert_store
from bot.clock import FrozenClock
from bot.config.loader import Config
from bot.incidents import store
from bot.incidents.incident import IncidentState
from bot.notify.outbox import Outbox
from bot.service import AlertService, every_channel
from bot.storage.database import SCHEMA_VERSION, make_engine, migrate, session
from tests.support.recording import RecordingNotifier

FIXTURE = Path(__file__).parent / "fixtures" / "schema_v2.sql"
FIRED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def old_database(tmp_path: Path) -> str:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(FIXTURE.read_text())
    return f"sqlite:///{path}"


def test_an_old_database_is_brought_forward_and_its_open_alerts_become_incidents(tmp_path: Path) -> None:
    engine = make_engine(old_database(tmp_path))

    assert migrate(engine) == 2
    assert migrate(engine) == SCHEMA_VERSION

    with session(engine) as s:
        alerts = alert_store.open_alerts(s)
        drift = alerts["significant_data_drift:fraud-detector-v2"]
        cost = alerts["llm_cost_runaway:support-bot"]
        drift_incident = store.get(s, drift.incident_id or 0)
        cost_incident = store.get(s, cost.incident_id or 0)
        root = store.slack_message(s, drift.incident_id or 0)
    assert drift_incident is not None and cost_incident is not None and drift_incident != cost_incident
    assert (drift_incident.state, drift_incident.severity.value, drift_incident.escalation_step) == (
        IncidentState.FIRING,
        "P2",
        1,
    )
    assert drift_incident.next_escalation_at == FIRED + timedelta(minutes=30), "the climb carries on"
    assert drift_incident.opened_at == FIRED
    assert root == ("C0MLALERTS", "1764493200.000100"), "its Slack message is the incident's"
    assert cost_incident.paged_keys == ("",), "it paged before the upgrade"
    assert cost_incident.occurrence == "llm_cost_runaway:support-bot:20261130T090000Z", "PagerDuty's key is kept"


def test_after_the_upgrade_the_bot_carries_on(tmp_path: Path, config: Config) -> None:
    engine = make_engine(old_database(tmp_path))
    migrate(engine)
    clock = FrozenClock(FIRED + timedelta(minutes=31))
    service = AlertService(engine, clock, lambda: config, every_channel(["recording", "pagerduty"]))
    pager = RecordingNotifier(channel="pagerduty")
    outbox = Outbox(engine, clock, {"recording": RecordingNotifier(), "pagerduty": pager})

    assert service.escalate_due() == 2, "step 2 of both climbs, due at 30 min"
    with session(engine) as s:
        cost = alert_store.open_alerts(s)["llm_cost_runaway:support-bot"]
    service.acknowledge(cost.id or 0, actor="U_ANA")
    service.ingest([("support-bot", "p99_latency_ms", clock.now(), 9000.0)])
    for _ in range(5):  # latency_spike's for: 2m, then a new incident for support-bot
        service.evaluate_once()
        clock.advance(timedelta(minutes=1))
        service.ingest([("support-bot", "p99_latency_ms", clock.now(), 9000.0)])
    while outbox.deliver_due():
        pass

    sent = [(n.kind, str(n.payload["key"])) for n in pager.sent]
    assert ("incident.acknowledged", "llm_cost_runaway:support-bot") in sent, "the old page hears the acknowledge"
    with session(engine) as s:
        latency = alert_store.open_alerts(s)["latency_spike:support-bot"]
        incident = store.get(s, latency.incident_id or 0)
    assert incident is not None and incident.page_key is None and incident.group_key.endswith("model=support-bot")
    assert ("incident.opened", f"incident:{incident.id}") in sent
