"""The rule names alerts carry besides the configured rules' own.

An alert's rule name is how it is stored, deduplicated (``rule:model``), silenced and routed. An
SLO's alerts are ``slo:<label>``; a rule's absence alert (``absent_after:``, see
:mod:`bot.evaluation.absence`) is ``absent:<rule>``. Configured rule names are identifiers, with
no colon, so neither can ever name a configured rule.
"""

from __future__ import annotations

ABSENT_PREFIX = "absent:"


def absence_rule(rule: str) -> str:
    """The rule name the absence alert of ``rule`` carries."""
    return f"{ABSENT_PREFIX}{rule}"


def watched_rule(name: str) -> str | None:
    """The configured rule an ``absent:<rule>`` alert watches, or None for any other name."""
    return name.removeprefix(ABSENT_PREFIX) if name.startswith(ABSENT_PREFIX) else None


def slo_rule(label: str) -> str:
    """The rule name of the burn-rate and absent-metric alerts of the SLO labelled ``label``."""
    return f"slo:{label}"
