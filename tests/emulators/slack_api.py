"""The tests' Slack Web API emulator: it ships with the product as the demo's Slack sandbox.

It lives in :mod:`bot.demo.slack_sandbox` (the product cannot import from ``tests/``); this
module keeps the import path the tests and benchmarks have always used.
"""

from bot.demo.slack_sandbox import *  # noqa: F403
from bot.demo.slack_sandbox import __all__ as __all__
