"""Recording a pass: new alerts that open incidents are written together (batched INSERTs), and
what is stored and queued is exactly what the one-by-one path stores and queues (issue 16)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.alerts.lifecycle import Transition
from bot.config.loader import Config
from bot.recording import Recorder
from bot.silences.silence import Silence
from bot.storage.database import make_engine, migrate
from bot.storage.database import session as open_session
from bot.storage.tables import AlertEventRow, AlertRow, IncidentEventRow, IncidentRow, OutboxRow
from tests.incidents.test_service import World

STORM_MODELS = [f"fleet-{n:02d}" for n in range(12)]  # more than storm_threshold 5: one storm incident
SETTINGS = "  storm_threshold: 5\n"


def one_by_one(
    self: Recorder,
    s: Any,
    transitions: Sequence[Transition],
    config: Config,
    now: Any,
    silences: list[Silence],
    *,
    storms: set[tuple[str, str]],
) -> None:
    """The pass as it was recorded before batching: each transition on its own."""
    with self.whole_pass():
        for change in transitions:
            self.alert(s, change, config, now, silences, storms=storms)


def first_pass(engine: Engine, tmp_path: Path) -> World:
    world = World(engine, tmp_path, settings=SETTINGS)
    for model in STORM_MODELS:
        world.push(model, drift=9)  # drift (P2) breaches on twelve models: a storm
    world.push("m1", latency=9, accuracy=0.1)  # two P1 alerts of one model: one incident, one page
    world.push("m2", latency=9)
    world.clock.advance(timedelta(seconds=30))
    world.service.evaluate_once()
    return world


def stored(engine: Engine) -> dict[str, Any]:
    """Everything the pass wrote, with row ids replaced by what they name (ids may be assigned
    in another order)."""
    with open_session(engine) as s:
        incidents = {row.id: row for row in s.exec(select(IncidentRow)).all()}
        alerts = {row.id: row for row in s.exec(select(AlertRow)).all()}
        group = {i: row.group_key for i, row in incidents.items()}
        key = {i: row.dedup_key for i, row in alerts.items()}

        def named(text: str) -> str:
            for i, name in [*key.items(), *group.items()]:
                text = text.replace(f":{i}:", f":<{name}>:")
            return text

        return {
            "incidents": sorted(
                (r.group_key, r.severity, r.state, r.title, r.version, tuple(r.paged_keys), r.storm_rule)
                for r in incidents.values()
            ),
            "incident events": sorted(
                (group[e.incident_id], e.kind, e.detail, str(e.data))
                for e in s.exec(select(IncidentEventRow).order_by(col(IncidentEventRow.id))).all()
            ),
            "alerts": sorted(
                (r.dedup_key, r.state, r.version, group.get(r.incident_id or 0), r.severity) for r in alerts.values()
            ),
            "alert events": sorted((key[e.alert_id], e.kind, e.actor) for e in s.exec(select(AlertEventRow)).all()),
            "outbox": sorted(
                (r.channel, r.kind, named(r.idempotency_key), r.payload.get("title"), str(r.not_before))
                for r in s.exec(select(OutboxRow)).all()
            ),
        }


def stored_one_by_one(
    scenario: Callable[[Engine, Path], World], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """What ``scenario`` stores when every transition is recorded one by one, on a SQLite file of
    its own: the reference the batched path must match row for row."""
    reference = make_engine(f"sqlite:///{tmp_path}/one-by-one.db")
    migrate(reference)
    monkeypatch.setattr(Recorder, "whole_pass_of", one_by_one)
    try:
        return stored(scenario(reference, tmp_path / "one-by-one").engine)
    finally:
        reference.dispose()


def test_a_first_pass_stores_and_queues_what_the_one_by_one_path_does(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    together = stored(first_pass(engine, tmp_path / "together").engine)
    assert together == stored_one_by_one(first_pass, tmp_path, monkeypatch)
    assert len(together["incidents"]) == 3, "the storm, m1 and m2"
    storm = next(i for i in together["incidents"] if i[-1] == "drift")
    assert storm[4] == 12, "opened by one alert, joined by eleven: version 12 as if saved twelve times"
    assert any(i[5] for i in together["incidents"]), "a P1 incident paged"


def test_a_second_pass_joins_the_open_incident_one_by_one(engine: Engine, tmp_path: Path) -> None:
    world = first_pass(engine, tmp_path)
    world.push("m2", accuracy=0.1)  # joins m2's open incident
    world.evaluate()

    [m2] = [i for i in world.incidents() if i.group_key.endswith("model=m2")]
    assert m2.version == 2
    with open_session(engine) as s:
        kinds = [e.kind for e in s.exec(select(IncidentEventRow).where(IncidentEventRow.incident_id == m2.id))]
    assert kinds == ["opened", "joined"]


def resolve_then_fire_in_one_group(engine: Engine, tmp_path: Path) -> World:
    """Pass 2 resolves m1's accuracy alert and fires its latency alert: in evaluation order the
    latency alert comes first and joins the open incident, so the incident stays open."""
    world = World(engine, tmp_path)
    world.push("m1", accuracy=0.1)
    world.evaluate()
    world.push("m1", accuracy=0.9, latency=9)
    world.evaluate()
    return world


def test_a_new_alert_and_a_resolve_in_one_group_keep_their_order(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batched = resolve_then_fire_in_one_group(engine, tmp_path / "batched")
    assert stored(engine) == stored_one_by_one(resolve_then_fire_in_one_group, tmp_path, monkeypatch)
    assert [i.state.value for i in batched.incidents()] == ["firing"], "one incident, still open: no second page"


def recorded_as_one_by_one(
    scenario: Callable[[Engine, Path], World], engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[World, list[str]]:
    """Run ``scenario`` on ``engine`` and require every row and notification it stores to be what
    the one-by-one path stores; its world, and the kinds of the transitions that still went one
    by one (through :meth:`Recorder.alert`) rather than together."""
    reference = stored_one_by_one(scenario, tmp_path, monkeypatch)
    monkeypatch.undo()
    seen: list[str] = []
    alert = Recorder.alert

    def counted(self: Recorder, s: Any, change: Transition, *args: Any, **kwargs: Any) -> Any:
        seen.append(change.event.kind.value)
        return alert(self, s, change, *args, **kwargs)

    monkeypatch.setattr(Recorder, "alert", counted)
    world = scenario(engine, tmp_path / "together")
    assert stored(engine) == reference
    return world, seen


def resolutions_beside_a_storm(engine: Engine, tmp_path: Path) -> World:
    """Pass 2 resolves m1's accuracy alert (its incident keeps its latency alert), m2's only alert
    (its incident resolves), half the storm's alerts while a new model's drift joins the storm
    (evaluated first: models are evaluated in name order), and m3's latency alert, which fired
    silenced and joined no incident."""
    world = World(engine, tmp_path, settings=SETTINGS)
    now = world.clock.now()
    world.service.silence(
        Silence(rule="lat", model="m3", starts_at=now, ends_at=now + timedelta(hours=1), created_by="U")
    )
    for model in STORM_MODELS:
        world.push(model, drift=9)
    world.push("m1", latency=9, accuracy=0.1)
    world.push("m2", latency=9)
    world.push("m3", latency=9)
    world.evaluate()
    for model in STORM_MODELS[:6]:
        world.push(model, drift=1)
    world.push("a-new", drift=9)
    world.push("m1", latency=9, accuracy=0.9)
    world.push("m2", latency=1)
    world.push("m3", latency=1)
    world.evaluate()
    return world


def test_a_pass_that_resolves_alerts_and_joins_a_storm_records_them_together(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, one_by_one_kinds = recorded_as_one_by_one(resolutions_beside_a_storm, engine, tmp_path, monkeypatch)

    assert one_by_one_kinds == ["fired"], "only pass 1's silenced alert went one by one"
    states = {i.group_key.rsplit("=", 1)[-1]: i.state.value for i in world.incidents()}
    assert states["m1"] == "firing" and states["m2"] == "resolved"
    [storm] = [i for i in world.incidents() if i.storm_rule == "drift"]
    assert storm.state.value == "firing" and storm.version == 13, "opened and joined by 12 alerts, joined once more"


def storm_emptied_then_refilled(engine: Engine, tmp_path: Path) -> World:
    """Pass 2 resolves every alert of the storm, then (a later model in name order) a new drift
    alert fires into the storm's group: one by one, the storm resolves first and the new alert
    opens a new storm incident."""
    world = World(engine, tmp_path, settings=SETTINGS)
    for model in STORM_MODELS:
        world.push(model, drift=9)
    world.evaluate()
    for model in STORM_MODELS:
        world.push(model, drift=1)
    world.push("zz-late", drift=9)
    world.evaluate()
    return world


def test_a_storm_that_resolves_before_a_new_alert_fires_into_its_group_is_recorded_one_by_one(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, one_by_one_kinds = recorded_as_one_by_one(storm_emptied_then_refilled, engine, tmp_path, monkeypatch)

    assert sorted(one_by_one_kinds) == ["auto_resolved"] * 12 + ["fired"]
    storms = sorted((i.state.value, i.version) for i in world.incidents() if i.storm_rule == "drift")
    assert storms == [("firing", 1), ("resolved", 13)], "the old storm resolved, a new one opened"
