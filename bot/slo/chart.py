"""The error-budget chart of ``/slo status <model> chart``: a PNG rendered on the server.

**What is drawn: the budget burndown over the window.** At each point ``t`` of ``[now − W, now]``
the line shows how much of the window's error budget is left after the bad time (threshold
SLOs) or bad events (ratio SLOs) counted from the start of the window up to ``t``::

    remaining(t) = 1 − bad(start, t) / (allowed × measured(start, now))

``measured`` is the time with data (threshold) or all events (ratio) over the whole window, so
the last point equals the dashboard's "Budget left" exactly, no-data gaps included, and the
line only falls: a flat stretch is a good (or unmeasured) stretch, a cliff is an incident.
Points are hourly for windows of a day or more, else 60 per window. A window with no data at
all has no line, and says so in the legend, rather than a reassuring 100%; so does a window with
too little data for a budget (:attr:`~bot.slo.budget.Budget.projectable`, as on the dashboard),
whose line would plunge to "−5900%" on one bad sample. The time axis always spans the window, and
a chart with no line at all says "no data in the window" across it instead of drawing an empty
1970 axis.

The maths is pure (:func:`budget_burndown`); :func:`render_budget_chart` draws with
matplotlib's object API on the Agg canvas (no pyplot global state, no display: safe in the
scheduler's and the web server's threads). matplotlib is imported on first use, so commands
that never draw a chart do not pay for it, and it is the optional ``charts`` extra: without it
only the chart is unavailable (:class:`~bot.errors.MissingExtra` says how to install it).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING

from bot.config.durations import window_title
from bot.errors import MissingExtra
from bot.slo import text
from bot.slo.budget import error_budget
from bot.slo.sli import RatioSli, Series, TimeSli, measure
from bot.slo.spec import SloSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

HOURLY_FROM = timedelta(days=1)
POINTS_IF_SHORT = 60
SIZE_INCHES = (8.0, 4.0)
DPI = 100
"""800×400 px: legible in a Slack preview, under 100 kB."""
NO_DATA_TEXT = "no data in the window"
TOO_LITTLE_TEXT = "too little data in the window for a budget"


@dataclass(frozen=True, slots=True)
class Burndown:
    """One SLO's line over ``[end − window, end]``: ``points`` are ``(t, remaining fraction)``; empty
    when the window has too little data for a budget (``coverage``, the share that has data)."""

    spec: SloSpec
    window: timedelta
    end: datetime
    points: tuple[tuple[datetime, float], ...]
    coverage: float = 1.0

    @property
    def legend(self) -> str:
        """``P95 latency (60% left)``, ``P95 latency (data for 3% of 7 d)``, ``P95 latency (no data)``."""
        if self.points:
            return f"{self.spec.label} ({text.percent(self.points[-1][1], digits=0)} left)"
        if self.coverage > 0:
            return f"{self.spec.label} ({text.coverage(self.coverage, self.window)})"
        return f"{self.spec.label} ({text.NO_DATA})"


def step_for(window: timedelta) -> timedelta:
    return timedelta(hours=1) if window >= HOURLY_FROM else window / POINTS_IF_SHORT


def _bad_and_measured(spec: SloSpec, series: Series, start: datetime, end: datetime) -> tuple[float, float]:
    """Bad and measured amounts of ``[start, end]``, in seconds (threshold) or events (ratio)."""
    sli = measure(spec, series, start=start, end=end)
    if isinstance(sli, RatioSli):
        return sli.bad_events, sli.total_events
    assert isinstance(sli, TimeSli)
    return sli.bad_time.total_seconds(), sli.measured_time.total_seconds()


def budget_burndown(
    spec: SloSpec, series: Series, now: datetime, *, window: timedelta | None = None, step: timedelta | None = None
) -> Burndown:
    """The burndown of ``spec`` over ``window`` (default: its own) ending at ``now``.

    Measured slice by slice (each slice once: both SLI kinds add up over adjacent slices), so a
    7-day window of 30-second samples costs one pass, not one per point.
    """
    span = window or spec.window
    every = step or step_for(span)
    start = now - span
    edges = [start]
    while edges[-1] + every < now:
        edges.append(edges[-1] + every)
    edges.append(now)
    slices = [_bad_and_measured(spec, series, a, b) for a, b in pairwise(edges)]
    measured = sum(m for _, m in slices)
    whole = error_budget(spec, measure(spec, series, start=start, end=now), span)
    if measured <= 0 or not whole.projectable:
        return Burndown(spec, span, now, (), whole.coverage if measured > 0 else 0.0)
    budget = spec.allowed_bad_fraction * measured
    points = [(start, 1.0)]
    bad = 0.0
    for edge, (slice_bad, _) in zip(edges[1:], slices, strict=True):
        bad += slice_bad
        points.append((edge, 1.0 - bad / budget))
    return Burndown(spec, span, now, tuple(points), whole.coverage)


def render_budget_chart(lines: Sequence[Burndown], *, title: str) -> bytes:
    """A PNG of one or more burndowns on shared axes: percent of budget left over time."""
    return png(budget_figure(lines, title=title))


def budget_figure(lines: Sequence[Burndown], *, title: str) -> Figure:
    """The chart as a matplotlib figure on an Agg canvas (what :func:`render_budget_chart` saves)."""
    figure, axes = time_chart(what="the error-budget chart", title=title, size=SIZE_INCHES)
    from matplotlib.dates import date2num
    from matplotlib.ticker import PercentFormatter

    lowest = 0.0
    for line in lines:
        if not line.points:
            axes.plot([], [], label=line.legend)
            continue
        times = date2num([t for t, _ in line.points])  # type: ignore[no-untyped-call]
        remaining = [value * 100 for _, value in line.points]
        lowest = min(lowest, *remaining)
        axes.step(times, remaining, where="post", label=line.legend)
    if lines:
        start, end = min(line.end - line.window for line in lines), max(line.end for line in lines)
        axes.set_xlim(date2num(start), date2num(end))  # type: ignore[no-untyped-call]
    if not any(line.points for line in lines):
        empty = TOO_LITTLE_TEXT if any(line.coverage > 0 for line in lines) else NO_DATA_TEXT
        axes.text(0.5, 0.5, empty, transform=axes.transAxes, ha="center", va="center", color="#7f8c8d")
    axes.axhline(0, color="#c0392b", linewidth=1, linestyle="--")
    axes.set_ylim(min(lowest * 1.05, -5), 105)
    axes.yaxis.set_major_formatter(PercentFormatter())
    axes.set_ylabel("error budget left")
    if lines:
        axes.legend(loc="lower left", fontsize="small")
    figure.tight_layout()
    return figure


def time_chart(*, what: str, title: str, size: tuple[float, float]) -> tuple[Figure, Axes]:
    """A titled, gridded figure on the Agg canvas whose x axis reads dates: what the error-budget
    chart and the postmortem's metric charts draw on. matplotlib is imported here, on first use;
    without the ``charts`` extra :class:`~bot.errors.MissingExtra` names ``what`` needs it."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtra(
            f"{what} needs matplotlib, which is not installed ({exc}); "
            "install it with: pip install 'incident-bot[charts]'"
        ) from exc
    figure = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return figure, axes


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def chart_title(model: str, window: timedelta) -> str:
    return f"Error budget — {model} — {window_title(window)} (UTC)"
