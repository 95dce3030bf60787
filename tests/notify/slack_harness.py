"""The Slack notifier test harness: the real service, outbox and notifier against the Slack
emulator over real HTTP, with alerts created by ingesting metrics, as in production.
Fixtures that build it live in ``conftest.py`` beside this file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.alerts import store
from bot.clock import FrozenClock
from bot.incidents import store as incident_store
from bot.notify.outbox import Outbox
from bot.notify.slack import SlackNotifier
from bot.service import AlertService
from bot.storage.database import session as open_session
from bot.storage.tables import AlertRow, OutboxRow
from tests.emulators.slack_api import SlackEmulator

CHANNEL = "#llm-alerts"
COST_KEY = "llm_cost_runaway:support-bot"
ACCURACY_KEY = "accuracy_degradation:support-bot"
DRIFT_KEY = "significant_data_drift:support-bot"
INCIDENT_BUTTONS = [
    "incident_acknowledge",
    "incident_resolve",
    "incident_runbook",
    "incident_silence",
    "incident_declare",
]


@dataclass
class FakeTime:
    """Monotonic time that only moves when the pacer sleeps: pacing is checked without waiting."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Harness:
    engine: Engine
    clock: FrozenClock
    slack: SlackEmulator
    service: AlertService
    outbox: Outbox
    notifier: SlackNotifier

    def metrics(self, model: str = "support-bot", **values: float) -> None:
        self.service.ingest([(model, name, self.clock.now(), value) for name, value in values.items()])
        self.service.evaluate_once()

    def deliver(self) -> int:
        return self.outbox.deliver_due()

    def alert_id(self, key: str = COST_KEY) -> int:
        """The newest alert for ``key``, open or not."""
        with open_session(self.engine) as s:
            row = s.exec(select(AlertRow).where(AlertRow.dedup_key == key).order_by(col(AlertRow.id).desc())).first()
        assert row is not None and row.id is not None, f"no alert {key}"
        return row.id

    def root(self, key: str = COST_KEY) -> tuple[str, str]:
        with open_session(self.engine) as s:
            where = store.slack_message(s, self.alert_id(key))
        assert where is not None
        return where

    def incident_id(self, key: str = COST_KEY) -> int:
        """The incident the newest alert of ``key`` joined."""
        with open_session(self.engine) as s:
            alert = store.get(s, self.alert_id(key))
        assert alert is not None and alert.incident_id is not None, f"{key} joined no incident"
        return alert.incident_id

    def incident_root(self, key: str = COST_KEY) -> tuple[str, str] | None:
        with open_session(self.engine) as s:
            return incident_store.slack_message(s, self.incident_id(key))

    def root_message(self, key: str = COST_KEY) -> dict[str, Any]:
        channel, ts = self.root(key)
        return next(m for m in self.slack.messages(channel) if m["ts"] == ts)

    def rows(self) -> list[OutboxRow]:
        with open_session(self.engine) as s:
            return list(s.exec(select(OutboxRow).order_by(col(OutboxRow.id))).all())


def action_ids(message: dict[str, Any]) -> list[str]:
    """The action buttons' ids: link buttons (a URL, such as the model's dashboard) left out."""
    elements = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    return [e["action_id"] for e in elements if "url" not in e]


def mrkdwn(message: dict[str, Any]) -> str:
    return str(message["blocks"])
