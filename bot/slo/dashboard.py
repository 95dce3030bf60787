"""The data and the text of ``/slo status``: seed 000's "SLO Dashboard - Last 7 Days".

Per SLO a :class:`SloRow`: the current value and its status (✅ ok, ⚠️ warning, 🔴 critical,
⚪ no data), compliance over the window, error budget remaining and the burn rate over the last
hour. The budget is shown only when enough of the window has data (:attr:`Budget.projectable`,
10%); below that the cell says how much has ("data for 3% of 7 d"). Status and budget never
contradict each other: a current value that meets its objective while the window's budget is spent
is "⚠️ budget spent", not ✅. Per model a :class:`ModelDashboard` whose overall compliance is the share of its *measured*
SLOs that are ok (seed 000's "Overall SLO Compliance: 100%"); an SLO with no data is counted apart,
neither ok nor failing, and a model with no data at all has compliance ``None``. Models sort worst
first: by their worst status, then by lower compliance, then by name.

:func:`render_table` draws the monospace table (for a Slack code block and the terminal); the
status column comes last because emoji have no reliable width in monospace fonts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config.durations import humanize, window_title
from bot.slo import text
from bot.slo.budget import MIN_PROJECTION_COVERAGE, Budget, burn_rate, error_budget
from bot.slo.sli import Current, Series, Status, current, measure
from bot.slo.spec import SloSpec

DEFAULT_BURN_LOOKBACK = timedelta(hours=1)
HEADERS = ("Metric", "Target", "Current", "Budget left", "Burn", "Compliance", "Status")
RULE = "─"
SEPARATOR = " │ "


@dataclass(frozen=True, slots=True)
class SloRow:
    spec: SloSpec
    window: timedelta
    current: Current
    compliance: float | None
    budget: Budget
    burn_rate: float | None
    burn_lookback: timedelta

    @property
    def coverage(self) -> float:
        """The share of the window that has data."""
        return self.budget.coverage

    @property
    def budget_remaining(self) -> float | None:
        """The budget left, as a fraction; ``None`` without enough data to say."""
        return self.budget.remaining_fraction if self.budget.projectable else None

    @property
    def status(self) -> Status:
        spent = self.budget_remaining is not None and self.budget_remaining <= 0
        return Status.BUDGET_SPENT if self.current.status is Status.OK and spent else self.current.status

    @property
    def unit(self) -> str:
        if self.spec.kind == "ratio":
            return "ratio"
        return text.infer_unit(self.spec.numerator_metric or self.spec.metric, self.spec.unit)

    @property
    def target_text(self) -> str:
        sign = "≤" if self.spec.direction == "below" else "≥"
        return f"{sign} {text.value(self.spec.target, self.unit)}"

    @property
    def current_text(self) -> str:
        return text.value(self.current.value, self.unit)

    @property
    def budget_text(self) -> str:
        """``60% (1 h)``, ``spent (119% used)``, ``data for 3% of 7 d``, or ``no data``."""
        budget = self.budget
        remaining, left = budget.remaining_fraction, budget.remaining_time
        if remaining is None or left is None:
            return text.NO_DATA
        if not budget.projectable:
            return text.coverage(budget.coverage, self.window)
        if remaining <= 0:
            return f"spent ({text.percent(1 - remaining, digits=0)} used)"
        return f"{text.percent(remaining, digits=0)} ({humanize(left)})"

    @property
    def cells(self) -> tuple[str, ...]:
        return (
            self.spec.label,
            self.target_text,
            self.current_text,
            self.budget_text,
            text.burn(self.burn_rate),
            text.percent(self.compliance, digits=2),
            f"{self.status.emoji} {self.status.label}",
        )


def slo_row(
    spec: SloSpec,
    series: Series,
    now: datetime,
    *,
    window: timedelta | None = None,
    burn_lookback: timedelta = DEFAULT_BURN_LOOKBACK,
) -> SloRow:
    """One SLO's row; ``window`` (``/slo status model 24h``) replaces the SLO's own window for
    compliance and budget. ``series`` must reach ``spec.history_needed(window)`` back."""
    span = window or spec.window
    whole = measure(spec, series, start=now - span, end=now)
    recent = measure(spec, series, start=now - burn_lookback, end=now)
    return SloRow(
        spec=spec,
        window=span,
        current=current(spec, series, now),
        compliance=whole.compliance,
        budget=error_budget(spec, whole, span),
        burn_rate=burn_rate(recent, spec.allowed_bad_fraction),
        burn_lookback=burn_lookback,
    )


@dataclass(frozen=True, slots=True)
class ModelDashboard:
    model: str
    rows: tuple[SloRow, ...]
    """Worst status first; rows of equal status keep the configuration's order."""

    @property
    def measured(self) -> int:
        return sum(1 for r in self.rows if r.status is not Status.NO_DATA)

    @property
    def ok(self) -> int:
        return sum(1 for r in self.rows if r.status is Status.OK)

    @property
    def no_data(self) -> int:
        return len(self.rows) - self.measured

    @property
    def compliance(self) -> float | None:
        """The share of measured SLOs that are ok; ``None`` when none is measured."""
        return None if self.measured == 0 else self.ok / self.measured

    @property
    def worst(self) -> Status:
        return min((r.status for r in self.rows), key=lambda s: s.rank, default=Status.NO_DATA)

    @property
    def sort_key(self) -> tuple[int, float, str]:
        """Worst status first; then lower compliance, a model with no data at all first (blind is
        worse than partly seen); then by name."""
        return (self.worst.rank, -1.0 if self.compliance is None else self.compliance, self.model)


def build_dashboard(
    specs: Sequence[SloSpec],
    series: Mapping[str, Series],
    now: datetime,
    *,
    window: timedelta | None = None,
    burn_lookback: timedelta = DEFAULT_BURN_LOOKBACK,
) -> tuple[ModelDashboard, ...]:
    """Every model's dashboard, worst model first. ``series`` maps model → its series."""
    by_model: dict[str, list[SloRow]] = {}
    for spec in specs:
        row = slo_row(spec, series.get(spec.model, {}), now, window=window, burn_lookback=burn_lookback)
        by_model.setdefault(spec.model, []).append(row)
    boards = [
        ModelDashboard(model, tuple(sorted(rows, key=lambda r: r.status.rank))) for model, rows in by_model.items()
    ]
    return tuple(sorted(boards, key=lambda b: b.sort_key))


def overall_text(board: ModelDashboard) -> str:
    """``Overall SLO Compliance: 100%``, with what was not measured said aloud."""
    line = f"Overall SLO Compliance: {text.percent(board.compliance, digits=0)}"
    if board.no_data and board.measured:
        line += f" ({board.ok} of {board.measured} measured SLOs ok; {board.no_data} with no data)"
    return line


def coverage_text(rows: Sequence[SloRow]) -> str:
    """``Data for 96% of the window (least: helpfulness 40%)``: how much of the window the numbers
    rest on — the mean over the SLOs shown, the thinnest one when it is thinner, and why a budget
    is missing when one had too little data to be projected."""
    if not rows:
        return ""
    mean = sum(r.coverage for r in rows) / len(rows)
    line = f"Data for {text.share(mean)} of the window"
    least = min(rows, key=lambda r: r.coverage)
    if len(rows) > 1 and least.coverage < mean:
        line += f" (least: {least.spec.label} {text.share(least.coverage)})"
    if any(r.coverage > 0 and not r.budget.projectable for r in rows):
        line += f"; a budget is projected once {text.share(MIN_PROJECTION_COVERAGE)} of the window has data"
    return line


def _title_window(rows: Sequence[SloRow]) -> str:
    windows = {r.window for r in rows}
    return window_title(windows.pop()) if len(windows) == 1 else "each SLO's window"


def render_table(board: ModelDashboard) -> str:
    """Seed 000's dashboard as aligned plain text, ready for a code block."""
    lookback = board.rows[0].burn_lookback if board.rows else DEFAULT_BURN_LOOKBACK
    headers = (*HEADERS[:4], f"Burn ({humanize(lookback)})", *HEADERS[5:])
    lines = [headers, *(r.cells for r in board.rows)]
    widths = [max(len(cells[i]) for cells in lines) for i in range(len(headers) - 1)]

    def joined(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) for c, w in zip(cells[:-1], widths, strict=True)]
        return SEPARATOR.join([*padded, cells[-1]])

    rule = RULE * (sum(widths) + len(SEPARATOR) * len(widths) + len(headers[-1]))
    title = f"SLO Dashboard - {board.model} - {_title_window(board.rows)}"
    body = [joined(cells) for cells in lines[1:]]
    return "\n".join([title, rule, joined(headers), rule, *body, rule, overall_text(board), coverage_text(board.rows)])


def render_overview(boards: Sequence[ModelDashboard]) -> list[str]:
    """``/slo status`` without a model: one line per model, in the order given (worst first)."""
    lines = []
    for board in boards:
        counts = f"{board.ok}/{board.measured} ok" + (f", {board.no_data} no data" if board.no_data else "")
        line = (
            f"{board.worst.emoji} {board.model} — SLO compliance {text.percent(board.compliance, digits=0)} ({counts})"
        )
        worst = board.rows[0] if board.rows else None
        if worst is not None and worst.status is not Status.OK:
            line += f" · worst: {worst.spec.label} {worst.current_text} vs {worst.target_text} ({worst.status.label})"
        thin = [r for r in board.rows if r.coverage > 0 and not r.budget.projectable]
        if thin:
            shown = ", ".join(f"{r.spec.label} {text.coverage(r.coverage, r.window)}" for r in thin)
            line += f" · too little data for a budget: {shown}"
        lines.append(line)
    return lines
