"""Fixtures of the fault-injection tests: emulators that fail on a script; and the opt-in for
the test that restarts the PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.reliability.harness import ScriptedPagerDuty, ScriptedSlack
from tests.slack.harness import TOKEN

PG_RESTART_OPT_IN = "RUN_PG_RESTART"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``pg_restart`` restart the local PostgreSQL server, cutting off every other
    user of it for seconds (a developer's other databases, a parallel test run): they run only
    when asked with ``RUN_PG_RESTART=1``, as ``.ci/run`` does on its own machine."""
    if os.environ.get(PG_RESTART_OPT_IN) == "1":
        return
    skip = pytest.mark.skip(reason=f"restarts the PostgreSQL server; set {PG_RESTART_OPT_IN}=1 to run it")
    for item in items:
        if item.get_closest_marker("pg_restart") is not None:
            item.add_marker(skip)


@pytest.fixture
def slack() -> Iterator[ScriptedSlack]:
    emulator = ScriptedSlack(token=TOKEN)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def pagerduty() -> Iterator[ScriptedPagerDuty]:
    emulator = ScriptedPagerDuty()
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
