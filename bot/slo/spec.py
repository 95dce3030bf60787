"""One SLO as the maths needs it.

Two kinds of SLI:

- ``threshold``: one metric sampled over time (``response_time_p95_ms``, ``helpfulness``) and an
  objective on its value (``below 2000``, ``above 0.85``). The SLI is the fraction of *time* the
  objective held; the SLO promises it holds ``target_compliance`` of the time (default 99%), so the
  error budget is the other 1% — 1.68 h of a 7-day window.
- ``ratio``: two counts pushed per interval, good events and all events (``requests_ok`` /
  ``requests_total``). The SLI is good / total over the window and the objective is that ratio
  (``above 0.995``), so the error budget is 0.5% of the events.

``warning`` and ``critical`` are levels on the *current* value (seed 000's table); they colour the
dashboard, while alerts come from the burn rate of the error budget (:mod:`bot.slo.burn_rate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from bot.config.slo_schema import Slo

Kind = Literal["threshold", "ratio", "quotient"]
Direction = Literal["below", "above"]

DEFAULT_WINDOW = timedelta(days=7)
DEFAULT_TARGET_COMPLIANCE = 0.99
"""A threshold must hold 99% of the window: 1.68 h of a 7-day window, 7.2 h of 30 days may be bad."""
DEFAULT_MIN_EVENTS = 100
"""A ratio SLO never alerts on fewer events than this in the long window: 1 failure of 10 is no page."""
DEFAULT_MIN_COVERAGE = 0.5
"""A threshold SLO never alerts on a long window that has data for less than half its length."""
DEFAULT_STALE_AFTER = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class SloSpec:
    model: str
    metric: str
    """Threshold SLOs: the sampled metric. Ratio SLOs: a label for the SLI (e.g. ``availability``)."""
    direction: Direction
    target: float
    warning: float
    critical: float
    window: timedelta = DEFAULT_WINDOW
    kind: Kind = "threshold"
    name: str | None = None
    good_metric: str | None = None
    total_metric: str | None = None
    bad_metric: str | None = None
    """Ratio SLOs counting errors: ``bad_metric / total_metric`` is held *below* the objective."""
    numerator_metric: str | None = None
    denominator_metric: str | None = None
    """Quotient SLOs: ``numerator / denominator`` per push (cost per query) is held to the objective."""
    target_compliance: float = DEFAULT_TARGET_COMPLIANCE
    min_events: int = DEFAULT_MIN_EVENTS
    min_coverage: float = DEFAULT_MIN_COVERAGE
    stale_after: timedelta = DEFAULT_STALE_AFTER
    """A sample holds at most this long; time beyond it is no data."""
    absent_after: timedelta = DEFAULT_STALE_AFTER
    """No sample of the SLI's metric for longer than this is an alert of its own."""
    unit: str = ""
    """For display only: ``ms``, ``s``, ``%``, ``ratio``, ``$``; empty infers from the metric name."""

    def __post_init__(self) -> None:
        if self.window <= timedelta(0):
            raise ValueError("an SLO window must be positive")
        if self.stale_after <= timedelta(0) or self.absent_after <= timedelta(0):
            raise ValueError("stale_after and absent_after must be positive")
        if not 0.0 < self.target_compliance < 1.0:
            raise ValueError(f"target_compliance must lie strictly between 0 and 1 (got {self.target_compliance:g})")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(f"min_coverage must lie between 0 and 1 (got {self.min_coverage:g})")
        if self.kind == "ratio":
            if not self.total_metric or not (self.good_metric or self.bad_metric):
                raise ValueError("a ratio SLO needs total_metric and good_metric or bad_metric")
            wanted = "below" if self.bad_metric else "above"
            if self.direction != wanted or not 0.0 < self.target < 1.0:
                raise ValueError(f"this ratio SLO's objective reads '{wanted} <ratio>' with a ratio between 0 and 1")
        if self.kind == "quotient" and not (self.numerator_metric and self.denominator_metric):
            raise ValueError("a quotient SLO needs numerator_metric and denominator_metric")

    @property
    def label(self) -> str:
        return self.name or self.metric

    @property
    def key(self) -> str:
        """Unique per SLO (the loader refuses two SLOs of one model with one label): ``model:label``.
        Its alerts' dedup key is ``slo:<label>:<model>`` (:attr:`BurnFinding.dedup_key`)."""
        return f"{self.model}:{self.label}"

    @property
    def sli_metric(self) -> str:
        """The metric whose absence means the SLO cannot be evaluated."""
        if self.kind == "ratio" and self.total_metric:
            return self.total_metric
        if self.kind == "quotient" and self.denominator_metric:
            return self.denominator_metric  # the traffic: no queries, no cost per query
        return self.metric

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric to fetch for this SLO."""
        if self.kind == "ratio":
            return tuple(m for m in (self.good_metric, self.bad_metric, self.total_metric) if m)
        if self.kind == "quotient":
            return tuple(m for m in (self.numerator_metric, self.denominator_metric) if m)
        return (self.metric,)

    @property
    def allowed_bad_fraction(self) -> float:
        """The error budget as a fraction: of the time (threshold, quotient) or of the events
        (ratio: one minus the good share, or the bad share itself)."""
        if self.kind != "ratio":
            return 1.0 - self.target_compliance
        return self.target if self.bad_metric else 1.0 - self.target

    def history_needed(self, window: timedelta | None = None) -> timedelta:
        """How far back to fetch samples: the window, plus one ``stale_after`` so the sample that
        was current when the window opened (and still holds into it) is included."""
        longest = max(window or self.window, self.window)
        return longest + self.stale_after


def spec_from_config(slo: Slo, *, stale_after: timedelta = DEFAULT_STALE_AFTER, unit: str = "") -> SloSpec:
    """Adapt a ``slos:`` entry of ``rules/``; keys left out (``None``) take this module's defaults,
    and ``absent_after`` defaults to ``stale_after``: a metric gone stale is a metric gone."""

    def chosen(value: Any, default: Any) -> Any:
        return default if value is None else value

    return SloSpec(
        model=slo.model,
        metric=slo.metric,
        direction=slo.objective.direction,
        target=slo.objective.target,
        warning=slo.warning,
        critical=slo.critical,
        window=slo.window,
        kind=slo.kind,
        name=slo.name,
        good_metric=slo.good_metric,
        total_metric=slo.total_metric,
        bad_metric=slo.bad_metric,
        numerator_metric=slo.numerator_metric,
        denominator_metric=slo.denominator_metric,
        target_compliance=float(chosen(slo.target_compliance, DEFAULT_TARGET_COMPLIANCE)),
        min_events=int(chosen(slo.min_events, DEFAULT_MIN_EVENTS)),
        min_coverage=float(chosen(slo.min_coverage, DEFAULT_MIN_COVERAGE)),
        stale_after=stale_after,
        absent_after=chosen(slo.absent_after, stale_after),
        unit=unit,
    )
