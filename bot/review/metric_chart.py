"""A firing metric's chart for the postmortem: its samples from an hour before the start to the resolve.

Drawn like the error-budget chart (:mod:`bot.slo.chart`): matplotlib's object API on the Agg
canvas, imported on first use, and only with the optional ``charts`` extra; without it
:class:`~bot.errors.MissingExtra` says how to install it and the draft says there are no charts.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

from bot.errors import MissingExtra

SIZE_INCHES = (8.0, 3.5)
DPI = 100


def render_metric_chart(
    points: Sequence[tuple[datetime, float]], *, title: str, started: datetime, resolved: datetime | None
) -> bytes:
    """A PNG: the metric's samples as a step line, the incident's span shaded."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtra(
            f"the postmortem's metric charts need matplotlib, which is not installed ({exc}); "
            "install it with: pip install 'incident-bot[charts]'"
        ) from exc
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    times = date2num([t for t, _ in points])  # type: ignore[no-untyped-call]
    axes.step(times, [v for _, v in points], where="post", color="#2c3e50")
    end = resolved or (points[-1][0] if points else started)
    axes.axvspan(date2num(started), date2num(end), color="#e74c3c", alpha=0.15, label="incident")  # type: ignore[no-untyped-call]
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
