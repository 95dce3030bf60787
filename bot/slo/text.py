"""Numbers as an on-call engineer reads them: ``2s``, ``92.3%``, ``14.9×``; durations and window
names through :mod:`bot.config.durations` (``11 h 17 min``, ``7-day``)."""

from __future__ import annotations

from datetime import timedelta

from bot.config.durations import humanize

NO_DATA = "no data"

_RATIO_HINTS = ("accuracy", "precision", "recall", "ratio", "_rate", "availability", "f1")


def coverage(fraction: float, window: timedelta) -> str:
    """``data for 3% of 7 d``: how much of a window has data."""
    return f"data for {share(fraction)} of {humanize(window)}"


def share(fraction: float) -> str:
    """A share in whole percent; a sliver shows as ``<1%``, never as ``0%`` (which reads as none)."""
    return "<1%" if 0 < fraction < 0.01 else percent(fraction, digits=0)


def percent(fraction: float | None, *, digits: int = 1) -> str:
    """``0.9234`` → ``92.3%``; trailing ``.0`` dropped (``100%``); ``None`` → ``no data``."""
    if fraction is None:
        return NO_DATA
    text = f"{fraction * 100:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{'0' if text == '-0' else text}%"


def burn(rate: float | None) -> str:
    return NO_DATA if rate is None else f"{rate:.1f}×"


def infer_unit(metric: str, unit: str = "") -> str:
    """The display unit: the configured one, else from the metric's name (``_ms``, ``_seconds``,
    ``cost``/``_usd``, accuracy-like names as ratios); empty for a plain number."""
    if unit:
        return unit
    name = metric.lower()
    if name.endswith("_ms"):
        return "ms"
    if name.endswith(("_seconds", "_s")):
        return "s"
    if name.endswith("_usd") or "cost" in name:
        return "$"
    if name.endswith(("_pct", "_percent")):
        return "%"
    if any(hint in name for hint in _RATIO_HINTS):
        return "ratio"
    return ""


def value(number: float | None, unit: str = "") -> str:
    """A metric value in its unit: ms ≥ 1000 as seconds (``1.8s``, seed 000's "P95 Latency"),
    ratios as percentages, dollars with their cents (``$0.042``)."""
    if number is None:
        return NO_DATA
    if unit == "ms":
        return f"{number / 1000:.3g}s" if abs(number) >= 1000 else f"{number:.4g}ms"
    if unit == "s":
        return f"{number:.3g}s"
    if unit == "ratio":
        return percent(number)
    if unit == "%":
        return f"{number:.3g}%"
    if unit == "$":
        return f"${number:.2f}" if round(number, 2) == round(number, 3) else f"${number:.3f}"
    return f"{number:g}"
