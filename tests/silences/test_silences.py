"""Silences: a muted rule or model is recorded, not notified, and speaks up when the silence ends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.alerts import store
from bot.clock import FrozenClock
from bot.service import AlertService
from bot.silences.silence import Silence, silenced
from bot.storage.database import session
from bot.storage.tables import AlertEventRow, OutboxRow

SUPPORT = "support-bot"
COST = f"llm_cost_runaway:{SUPPORT}"
HOUR = timedelta(hours=1)


def outbox_kinds(engine: Engine) -> list[tuple[str, str]]:
    with session(engine) as s:
        return [(r.channel, r.kind) for r in s.exec(select(OutboxRow).order_by(OutboxRow.id)).all()]  # type: ignore[arg-type]


def fire_cost_alert(service: AlertService, clock: FrozenClock) -> None:
    service.ingest([(SUPPORT, "daily_cost_usd", clock.now(), 455.0)])
    service.evaluate_once()


def test_a_silence_matches_its_rule_its_model_or_both_while_it_lasts(clock: FrozenClock) -> None:
    now = clock.now()
    rule_only = Silence("llm_cost_runaway", None, now, now + HOUR, "U1")
    model_only = Silence(None, SUPPORT, now, now + HOUR, "U1")
    both = Silence("latency_spike", SUPPORT, now, now + HOUR, "U1")
    assert rule_only.matches("llm_cost_runaway", "any-model")
    assert model_only.matches("any_rule", SUPPORT)
    assert both.matches("latency_spike", SUPPORT)
    assert not both.matches("latency_spike", "fraud-detector-v2")
    assert silenced([rule_only], rule="llm_cost_runaway", model=SUPPORT, now=now + HOUR - timedelta(seconds=1))
    assert not silenced([rule_only], rule="llm_cost_runaway", model=SUPPORT, now=now + HOUR)


def test_a_silenced_alert_is_recorded_but_not_notified(
    engine: Engine, clock: FrozenClock, make_service: object
) -> None:
    service: AlertService = make_service()  # type: ignore[operator]
    service.silence(Silence(None, SUPPORT, clock.now(), clock.now() + HOUR, "U1", "deploying"))
    fire_cost_alert(service, clock)
    with session(engine) as s:
        alert = store.open_alerts(s)[COST]
        kinds = [e.kind for e in s.exec(select(AlertEventRow)).all()]
    assert alert.state.value == "firing"
    assert kinds == ["fired"]
    assert outbox_kinds(engine) == []


def test_when_the_silence_ends_a_still_firing_alert_is_announced_once(
    engine: Engine, clock: FrozenClock, make_service: object
) -> None:
    service: AlertService = make_service()  # type: ignore[operator]
    service.silence(Silence("llm_cost_runaway", None, clock.now(), clock.now() + HOUR, "U1"))
    fire_cost_alert(service, clock)
    assert service.release_unmuted() == 0  # still silenced
    clock.advance(HOUR)
    assert service.release_unmuted() == 1
    assert service.release_unmuted() == 0
    assert outbox_kinds(engine) == [("recording", "alert.fired")]


def test_ending_a_silence_early_unmutes_at_once(engine: Engine, clock: FrozenClock, make_service: object) -> None:
    service: AlertService = make_service()  # type: ignore[operator]
    muted = service.silence(Silence(None, SUPPORT, clock.now(), clock.now() + HOUR, "U1"))
    fire_cost_alert(service, clock)
    assert muted.id is not None
    assert service.unsilence(muted.id)
    assert service.release_unmuted() == 1


@pytest.mark.parametrize("target", [("latency_spike", None), (None, "fraud-detector-v2")])
def test_a_silence_of_something_else_does_not_mute(
    engine: Engine, clock: FrozenClock, make_service: object, target: tuple[str | None, str | None]
) -> None:
    service: AlertService = make_service()  # type: ignore[operator]
    service.silence(Silence(target[0], target[1], clock.now(), clock.now() + HOUR, "U1"))
    fire_cost_alert(service, clock)
    assert ("recording", "alert.fired") in outbox_kinds(engine)
