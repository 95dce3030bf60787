"""The emulators the end-to-end tests talk to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.emulators.pagerduty_events import PagerDutyEmulator
from tests.emulators.slack_api import SlackEmulator
from tests.slack.harness import TOKEN


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator(token=TOKEN) as emulator:
        yield emulator


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyEmulator]:
    with PagerDutyEmulator() as emulator:
        yield emulator
