"""Block Kit limits as Slack checks them: they ship with the product in
:mod:`bot.demo.block_kit_limits`; this module keeps the tests' import path."""

from bot.demo.block_kit_limits import *  # noqa: F403
from bot.demo.block_kit_limits import __all__ as __all__
