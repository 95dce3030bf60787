"""A windowed rule through the whole pass: samples stored, read in one query, evaluated, shown."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bot.alerts.lifecycle import AlertState
from bot.clock import FrozenClock
from bot.service import AlertService

SUPPORT = "support-bot"
KEY = f"helpfulness_drop:{SUPPORT}"


def test_the_shipped_helpfulness_rule_fires_on_the_hours_average(
    service: AlertService, clock: FrozenClock, engine: Engine
) -> None:
    now = clock.now()
    # the last hour averages 0.7 although the newest sample (0.95) is fine: the window decides
    service.ingest([(SUPPORT, "helpfulness", now - timedelta(seconds=30 * k), 0.7) for k in range(1, 120)])
    service.ingest([(SUPPORT, "helpfulness", now, 0.95)])
    service.ingest([(SUPPORT, "helpfulness", now - timedelta(hours=2), 0.0)])  # outside the window

    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    result = service.evaluate_once(at=now)

    [change] = [c for c in result.transitions if c.alert.key == KEY]
    expected = (0.7 * 119 + 0.95) / 120
    assert change.alert.state is AlertState.FIRING
    assert change.alert.values == {"avg_over_time_helpfulness_1h": expected}
    assert f"Average helpfulness over the last hour: {expected:.2f} (threshold: 0.80)." in change.alert.description
    assert sum("FROM metric_samples" in s for s in statements) == 1

    # recovers: an hour of good samples later the alert resolves
    later = now + timedelta(hours=1)
    service.ingest([(SUPPORT, "helpfulness", later - timedelta(seconds=30 * k), 0.9) for k in range(120)])
    statements.clear()
    result = service.evaluate_once(at=later)
    [change] = [c for c in result.transitions if c.alert.key == KEY]
    assert change.alert.state is AlertState.RESOLVED
    assert sum("FROM metric_samples" in s for s in statements) == 1  # the new rows only


def test_an_empty_window_is_no_data_and_keeps_the_alert(service: AlertService, clock: FrozenClock) -> None:
    now = clock.now()
    service.ingest([(SUPPORT, "helpfulness", now - timedelta(minutes=k), 0.5) for k in range(10)])
    assert any(c.alert.key == KEY for c in service.evaluate_once(at=now).transitions)

    # two hours without a sample: the window is empty, which neither fires nor resolves
    result = service.evaluate_once(at=now + timedelta(hours=2))
    assert [c for c in result.transitions if c.alert.key == KEY] == []
