"""Durations as users write them in rules/ (``30s``, ``5m``, ``1h30m``, ``7d``)."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")

DURATION_HINT = "write a number and a unit, e.g. 30s, 5m, 1h30m, 7d (units: ms, s, m, h, d, w)"


def parse_duration(value: object) -> timedelta:
    """Parse ``value`` into a timedelta; a bare 0 means "no duration".

    Numbers without a unit are refused on purpose: ``for: 5`` is ambiguous (seconds? minutes?)
    and an on-call engineer should not have to guess what the file means.
    """
    if isinstance(value, timedelta):
        return value
    if value == 0 and not isinstance(value, bool):
        return timedelta(0)
    if not isinstance(value, str) or not _WHOLE.match(value.strip()):
        raise ValueError(f"{value!r} is not a duration; {DURATION_HINT}")
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(value.strip()))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:  # past timedelta's 999,999,999 days (or an infinite float)
        raise ValueError(f"{value!r} is too long a duration; {DURATION_HINT}") from None


def format_duration(delta: timedelta) -> str:
    """The short form a person reads in Slack: ``1h 5m``, ``23m``, ``45s``."""
    total = int(delta.total_seconds())
    if total < 60:
        return f"{max(total, 0)}s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    return " ".join(p for p in parts if p)
