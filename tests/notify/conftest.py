"""Fixtures of the Slack notifier tests (the harness itself is in ``slack_harness.py``)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.clock import FrozenClock
from bot.config.loader import Config
from bot.incident_review import IncidentReview
from bot.notify.outbox import Outbox
from bot.notify.slack import ChannelPacer, SlackNotifier, make_client
from bot.service import AlertService, every_channel
from bot.storage.database import make_engine, migrate
from tests.emulators.slack_api import SlackEmulator
from tests.notify.slack_harness import FakeTime, Harness


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file; a test module may override it (``engine`` runs on PostgreSQL too)."""
    engine = make_engine(f"sqlite:///{tmp_path}/bot.db")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def slack(clock: FrozenClock, fake_time: FakeTime) -> Iterator[SlackEmulator]:
    # message ts follow the bot's clock (so history's ``oldest`` matches) plus the pacer's sleeps
    with SlackEmulator(clock=lambda: clock.now().timestamp() + fake_time.now) as emulator:
        yield emulator


@pytest.fixture
def make_harness(
    db: Engine, clock: FrozenClock, config: Config, slack: SlackEmulator, fake_time: FakeTime
) -> Callable[..., Harness]:
    def build(
        *,
        timeout: float = 5.0,
        token: str = "xoxb-test",
        group_wait: timedelta = timedelta(0),
        group_interval: timedelta | None = None,
        base: Config | None = None,
        **options: Any,
    ) -> Harness:
        """``base``: the configuration (default: the shipped one). ``group_wait`` defaults to 0
        so a test can deliver right after an evaluation; the grouping tests pass the shipped 10 s."""
        changes: dict[str, Any] = {"group_wait": group_wait}
        if group_interval is not None:
            changes["group_interval"] = group_interval
        start = base or config
        chosen = replace(start, settings=start.settings.model_copy(update=changes))
        client = make_client(token, base_url=options.pop("base_url", slack.base_url), timeout=timeout)
        pacer = ChannelPacer(monotonic=fake_time.monotonic, sleep=fake_time.sleep)
        notifier = SlackNotifier(client, engine=db, config=lambda: chosen, clock=clock, pacer=pacer, **options)
        notifier.drafts = IncidentReview(db, clock, lambda: chosen).draft  # postmortems, as the app wires them
        service = AlertService(db, clock, lambda: chosen, every_channel(["slack"]))
        outbox = Outbox(db, clock, {"slack": notifier}, rng=random.Random(7))
        return Harness(db, clock, slack, service, outbox, notifier)

    return build


@pytest.fixture
def bot(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
