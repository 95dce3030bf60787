"""``incident-bot demo``: the bot, a replayed metric feed and a local Slack sandbox in one command.

See :mod:`bot.demo.runner` for how the parts fit together. ``run_demo`` is imported lazily so
that the tests' Web API emulator (:mod:`bot.demo.slack_sandbox`) does not pull in the whole bot.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_demo", "running_demo"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bot.demo import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'bot.demo' has no attribute {name!r}")
