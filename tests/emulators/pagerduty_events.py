"""The tests' PagerDuty Events API v2 emulator: it ships with the product as the demo's PagerDuty lane.

It lives in :mod:`bot.demo.pagerduty_events` (the product cannot import from ``tests/``); this
module keeps the import path the tests and benchmarks have always used.
"""

from bot.demo.pagerduty_events import *  # noqa: F403
from bot.demo.pagerduty_events import __all__ as __all__
