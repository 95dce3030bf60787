"""The promtool-style series notation of rule test files: ``"100 6100x5 _ 200"`` into values."""

from __future__ import annotations

import re

MAX_VALUES = 100_000
"""Per series, and evaluation steps per test: a typo such as ``1x10000000`` must not eat the machine."""

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_ITEM = re.compile(rf"^(?P<start>[+-]?{_NUMBER})(?:(?P<step>[+-]{_NUMBER})?x(?P<times>\d+))?$")
_GAP = re.compile(r"^_(?:x(?P<times>\d+))?$")
_NOTATION_HINT = "write values as '1 2 3', 'axN' (a, N+1 times), 'a+bxN' or 'a-bxN', and '_' or '_xN' for gaps"


# --- series notation ---------------------------------------------------------------------------


def expand_series(text: str) -> list[float | None]:
    """Expand promtool notation into one value per interval; ``None`` is a missing sample."""
    out: list[float | None] = []
    for token in text.split():
        out.extend(_expand_token(token))
        if len(out) > MAX_VALUES:
            raise ValueError(f"series {text!r} expands to more than {MAX_VALUES:,} values; shorten it")
    return out


def _expand_token(token: str) -> list[float | None]:
    gap = _GAP.match(token)
    if gap:
        return [None] * (int(gap["times"]) if gap["times"] else 1)
    lowered = token.lower().lstrip("+-")
    if lowered.startswith("stale"):
        raise ValueError(
            f"{token!r}: there are no stale markers here; a metric goes stale by itself "
            "settings.stale_after after its last sample, so stop the series or use '_' for gaps"
        )
    if lowered.startswith(("nan", "inf")):
        raise ValueError(f"{token!r}: NaN and Inf are refused, as the ingest API refuses them")
    item = _ITEM.match(token)
    if item is None:
        if re.match(rf"^[+-]?{_NUMBER}[+-]{_NUMBER}$", token):
            raise ValueError(f"{token!r}: a step needs a count, e.g. {token}x5")
        raise ValueError(f"{token!r} is not a value; {_NOTATION_HINT}")
    value = float(item["start"])
    if item["times"] is None:
        return [value]
    if int(item["times"]) >= MAX_VALUES:
        raise ValueError(f"{token!r} expands to more than {MAX_VALUES:,} values; shorten it")
    step = float(item["step"]) if item["step"] else 0.0
    values: list[float | None] = []
    for _ in range(int(item["times"]) + 1):  # promtool: 'a+bxn' is a, then n further values
        values.append(value)
        value += step  # accumulated like promtool, so float results match it bit for bit
    return values
