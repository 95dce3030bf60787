"""A firing metric's chart for the postmortem: its samples from an hour before the start to the resolve.

Drawn on the error-budget chart's time axes (:func:`bot.slo.chart.time_chart`), so only with the
optional ``charts`` extra; without it :class:`~bot.errors.MissingExtra` says how to install it and
the draft says there are no charts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.slo.chart import png, time_chart

SIZE_INCHES = (8.0, 3.5)


def render_metric_chart(
    points: Sequence[tuple[datetime, float]], *, title: str, started: datetime, resolved: datetime | None
) -> bytes:
    """A PNG: the metric's samples as a step line, the incident's span shaded."""
    figure, axes = time_chart(what="the postmortem's metric charts", title=title, size=SIZE_INCHES)
    from matplotlib.dates import date2num

    times = date2num([t for t, _ in points])  # type: ignore[no-untyped-call]
    axes.step(times, [v for _, v in points], where="post", color="#2c3e50")
    end = resolved or (points[-1][0] if points else started)
    axes.axvspan(date2num(started), date2num(end), color="#e74c3c", alpha=0.15, label="incident")  # type: ignore[no-untyped-call]
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    return png(figure)
