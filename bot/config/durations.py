"""Durations both ways, and the one module that formats them: read as users write them in rules/
and commands (``30s``, ``5m``, ``1h30m``, ``7d``), and shown as people say them (``20 s``,
``1 min 45 s``, ``2 h 5 min``).

:func:`humanize` is the formatter for every duration a person reads (Slack messages, thread
replies, the SLO dashboard, the review, CLI and error messages), so "23 min" means the same
thing everywhere and nothing prints ``0.333333 min`` or ``0:02:00``. :func:`written` gives a
duration back in the notation :func:`parse_duration` reads (the review's suggested ``for: 5m``, a
rule test's ``at 2m30s``), and :func:`window_words` / :func:`window_title` name an SLO's window.
"""

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


_SPOKEN = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def is_duration(text: str) -> bool:
    """Whether ``text`` reads as a duration (``24h``, ``1h30m``): how commands tell a window from a name."""
    try:
        parse_duration(text)
    except ValueError:
        return False
    return True


def humanize(delta: timedelta) -> str:
    """``20 s``, ``1 min 45 s``, ``2 h 5 min``, ``7 d``: the largest unit and, if not zero, the next.

    Cut rather than rounded, so 59 min 59 s never reads as "1 h" before the hour is up; what is
    cut is less than one of the smaller unit shown. Under a second shows its fraction (``0.25 s``,
    the demo's seconds-long timelines); a negative duration (a clock skew) shows as ``0 s``.
    """
    seconds = delta.total_seconds()
    if seconds <= 0:
        return "0 s"
    if seconds < 1:
        return f"{seconds:.2g} s"
    whole = int(seconds)
    index = next(i for i, (_, size) in enumerate(_SPOKEN) if whole >= size)
    unit, size = _SPOKEN[index]
    count, rest = divmod(whole, size)
    if index + 1 < len(_SPOKEN):
        smaller, smaller_size = _SPOKEN[index + 1]
        if rest >= smaller_size:
            return f"{count} {unit} {rest // smaller_size} {smaller}"
    return f"{count} {unit}"


_WRITTEN = (("d", 86400), ("h", 3600), ("m", 60))


def written(delta: timedelta, *, days: bool = True) -> str:
    """``5m``, ``2m30s``, ``1h5m``, ``1d``, ``-30s``: as rules/ and rule test files write a duration,
    so :func:`parse_duration` reads it back. ``days=False`` keeps hours whole (``25h``), as a rule
    test's offsets are written."""
    total = delta.total_seconds()
    if total == 0:
        return "0s"
    sign, total = ("-", -total) if total < 0 else ("", total)
    rest, fraction = int(total), total - int(total)
    parts = []
    for unit, size in _WRITTEN if days else _WRITTEN[1:]:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    if rest or fraction:
        parts.append(f"{rest + fraction:g}s")
    return sign + "".join(parts)


def window_words(window: timedelta) -> str:
    """``7-day``, ``28-day``, ``12-hour``; any other length as a span."""
    seconds = int(window.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}-day"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}-hour"
    return humanize(window)


def window_title(window: timedelta) -> str:
    """``Last 7 Days`` (seed 000's heading), ``Last 24 Hours``, ``Last 1 Day``."""
    seconds = int(window.total_seconds())
    for size, word in ((86400, "Day"), (3600, "Hour"), (60, "Minute")):
        if seconds % size == 0:
            count = seconds // size
            return f"Last {count} {word}{'' if count == 1 else 's'}"
    return f"Last {humanize(window)}"
