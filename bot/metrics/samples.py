"""Metric samples as the pure core sees them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Sample:
    """The latest value of one metric of one model. ``value`` is a number, or a label text."""

    value: float | str
    at: datetime


LatestSamples = Mapping[str, Mapping[str, Sample]]
"""model → metric name → latest sample."""


@dataclass(frozen=True, slots=True)
class Points:
    """One series' numeric samples, oldest first, as window functions read them: parallel
    sequences of times (seconds since the epoch, UTC) and values."""

    times: Sequence[float]
    values: Sequence[float]
