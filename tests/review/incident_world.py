"""A database holding one whole incident, built through the service as production builds it:
samples pushed, the rule fired, a change shipped before, a page, an acknowledgement, a declared
room, a message marked ⏱, a resolve with a note. Its numbers are chosen to be checked by hand:

* ``latency`` is 1 ms every minute for the 90 minutes before T0, then 9 ms (over the rule's 5 and
  the SLO's 5) from T0 to T0+29, and 1 again at T0+30, when Ana resolves: the alert fires for
  exactly 30 minutes;
* the SLO allows 1% of 7 days to be bad (100.8 min): the 30 bad minutes spend 29.8% of it;
* ``cost_usd`` is $2 per minute before and $6 during, against the model's ``cost_usd_baseline: 2``:
  mean $6, 3.0× baseline;
* acknowledged at T0+4 (TTA 4 min), declared at T0+6 (TTD 6 min), resolved at T0+30 (TTR 30 min).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from bot.changes.events import Change, ChangeKind
from bot.changes.log import ChangeLog
from bot.clock import FrozenClock
from bot.config.holder import ConfigHolder
from bot.incident_review import IncidentReview
from bot.incidents import response
from bot.incidents import store as incident_store
from bot.service import AlertService, every_channel
from bot.storage.database import make_engine, migrate
from bot.storage.database import session as open_session

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
ANA, BEN = "U0ANA0001", "U0BEN0002"
ROOM_ID = "C0INCROOM1"
ROOM = "inc-2026-12-04-m1-lat"

CONFIG = """settings:
  group_wait: 0s
  change_window: 2h
metrics:
  - {name: latency, unit: ms}
  - {name: cost_usd, unit: USD}
models:
  - {name: m1, channel: '#a', cost_usd_baseline: 2}
rules:
  - {name: lat, condition: latency > 5, severity: P1, title: 'latency on {model}', cooldown: 0s}
slos:
  - {model: m1, metric: latency, objective: below 5, warning: 6, critical: 8, target_compliance: 0.99,
     window: 7d, burn_alerts: false}
"""


def write_config(directory: Path, settings: str = "") -> Path:
    (directory / "rules").mkdir(parents=True)
    (directory / "runbooks").mkdir()
    (directory / "runbooks" / "default.md").write_text("# {model}\n")
    (directory / "rules" / "r.yaml").write_text(CONFIG.replace("settings:\n", "settings:\n" + settings, 1))
    return directory


@dataclass
class World:
    engine: Engine
    clock: FrozenClock
    service: AlertService
    review: IncidentReview
    config_dir: Path
    incident_id: int = 0


def build_world(tmp_path: Path, *, channels: tuple[str, ...] = ("slack", "pagerduty"), room: bool = True) -> World:
    """The database of the module docstring, the clock at T0+30 (the resolve)."""
    engine = make_engine(f"sqlite:///{tmp_path}/bot.db")
    migrate(engine)
    clock = FrozenClock(T0 - 90 * MIN)
    config_dir = write_config(tmp_path / "config")
    holder = ConfigHolder(config_dir)
    service = AlertService(engine, clock, holder, every_channel(list(channels)))
    world = World(engine, clock, service, IncidentReview(engine, clock, holder, service), config_dir)
    before = [T0 - i * MIN for i in range(90, 0, -1)]
    during = [T0 + i * MIN for i in range(30)]
    service.ingest([("m1", "latency", at, 1.0) for at in before] + [("m1", "cost_usd", at, 2.0) for at in before])
    service.ingest([("m1", "latency", at, 9.0) for at in during] + [("m1", "cost_usd", at, 6.0) for at in during])
    ChangeLog(engine).record([Change("m1", ChangeKind.PROMPT, "v42", T0 - 4 * MIN, author="ben")])
    clock.set(T0)
    service.evaluate_once()
    with open_session(engine) as s:
        incident = incident_store.open_for_group(s, "#a|model=m1")
    assert incident is not None and incident.id is not None
    world.incident_id = incident.id
    clock.set(T0 + 4 * MIN)
    service.acknowledge_incident(incident.id, actor=ANA)
    if room:
        clock.set(T0 + 6 * MIN)
        declare(world, actor=BEN)
        clock.set(T0 + 10 * MIN)
        world.review.mark(ROOM_ID, actor=BEN, text="rolled the prompt back to v41", data={"ts": "1.1", "author": ANA})
    clock.set(T0 + 30 * MIN)
    service.ingest([("m1", "latency", T0 + 30 * MIN, 1.0)])
    return world


def declare(world: World, *, actor: str) -> None:
    """The room, as the other half of incident response records it (declare, then Slack's ID)."""
    with open_session(world.engine) as s, s.begin():
        incident = incident_store.get(s, world.incident_id)
        assert incident is not None
        incident_store.save(s, response.declare(incident, actor=actor, room=ROOM, now=world.clock.now()))
        incident_store.record_room(s, world.incident_id, room_id=ROOM_ID, name=ROOM)


def resolve(world: World, *, cause: str = "prompt v42 broke caching", fix: str = "rolled back to v41") -> None:
    world.service.resolve_incident(world.incident_id, actor=ANA, cause=cause, fix=fix)


def open_engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path}/bot.db")
