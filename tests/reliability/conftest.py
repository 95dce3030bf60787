"""Fixtures of the fault-injection tests: emulators that fail on a script."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.harness import ScriptedPagerDuty, ScriptedSlack
from tests.slack.harness import TOKEN


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
