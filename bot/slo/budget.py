"""Error budgets and burn rates.

The **error budget** is the bad share the SLO allows: ``allowed = 1 − target_compliance`` for a
threshold SLO (a fraction of the time), ``allowed = 1 − objective`` for a ratio SLO (a fraction of
the events). Over a window ``W`` that is ``allowed × W`` of "budget time": a 99% threshold SLO over
7 days may be bad for 1.68 h.

- **remaining** (fraction) ``= 1 − bad_fraction / allowed``: 1 untouched, 0 spent, negative overspent.
  ``bad_fraction`` is over the *measured* part of the window (no data is neither good nor bad).
- **remaining** (time) ``= remaining × allowed × W``. With data over the whole window this is exactly
  ``allowed × W − bad_time``; with gaps the observed bad share is extrapolated to the whole window.
- **burn rate** over a lookback ``L`` ``= bad_fraction(L) / allowed``: 1 spends the budget exactly by
  the end of the window, 14.4 spends a 30-day budget in 50 h. Budget consumed during ``L`` is
  ``burn × L / W``.
- **time to exhaustion** at burn rate ``b`` ``= remaining × W / b``: the remaining budget time
  ``remaining × allowed × W`` divided by the rate at which bad time accrues, ``b × allowed``. This is
  the conservative reading: it ignores old bad time that will roll out of a rolling window.

Example: W = 7 d, allowed 1%, bad fraction 0.4% → remaining 1 − 0.4 = 60% = 0.6 × 1.68 h = 60.48 min;
at burn rate 2 the remaining budget lasts 0.6 × 168 h / 2 = 50.4 h.

**Too little data is not a budget.** Extrapolating the bad share of 15 measured minutes to a whole
week turns one bad sample into "−8764%". A budget is only *projected* (shown as "60% left") when at
least :data:`MIN_PROJECTION_COVERAGE` (10%) of the window has data (:attr:`Budget.projectable`):
17 h of a 7-day window, 2.4 h of a day. Below that the dashboard says how much of the window has
data ("data for 3% of 7 d") instead of a number nobody should believe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.slo.sli import RatioSli, Series, Sli, TimeSli, measure
from bot.slo.spec import SloSpec

MIN_PROJECTION_COVERAGE = 0.10
"""The share of the window that must have data before its budget is projected to the whole window."""


@dataclass(frozen=True, slots=True)
class Budget:
    window: timedelta
    allowed_bad_fraction: float
    bad_fraction: float | None
    """Over the measured part of the window; ``None`` when the window has no data."""
    coverage: float = 1.0
    """The share of the window that has data (:attr:`TimeSli.coverage`, :attr:`RatioSli.coverage`)."""

    @property
    def projectable(self) -> bool:
        """Whether enough of the window has data for the remaining budget to mean something."""
        return self.bad_fraction is not None and self.coverage >= MIN_PROJECTION_COVERAGE

    @property
    def total_time(self) -> timedelta:
        """The whole budget as time: ``allowed × W``."""
        return self.window * self.allowed_bad_fraction

    @property
    def consumed_fraction(self) -> float | None:
        return None if self.bad_fraction is None else self.bad_fraction / self.allowed_bad_fraction

    @property
    def remaining_fraction(self) -> float | None:
        consumed = self.consumed_fraction
        return None if consumed is None else 1.0 - consumed

    @property
    def remaining_time(self) -> timedelta | None:
        """Negative when overspent."""
        remaining = self.remaining_fraction
        return None if remaining is None else self.total_time * remaining


def error_budget(spec: SloSpec, sli: Sli, window: timedelta | None = None) -> Budget:
    """The budget of ``spec`` given the SLI measured over ``window`` (default: the SLO's)."""
    return Budget(window or spec.window, spec.allowed_bad_fraction, sli.bad_fraction, sli.coverage)


def burn_rate(sli: Sli, allowed_bad_fraction: float) -> float | None:
    """How many times faster than sustainable the budget burns over the SLI's window."""
    bad = sli.bad_fraction
    return None if bad is None else bad / allowed_bad_fraction


def budget_consumed(burn: float, lookback: timedelta, window: timedelta) -> float:
    """The fraction of the whole window's budget a burn rate spends in ``lookback``."""
    return burn * (lookback / window)


def time_to_exhaustion(budget: Budget, burn: float | None) -> timedelta | None:
    """When the remaining budget is gone if ``burn`` goes on: ``0`` if it already is, ``None`` if it
    never will (nothing burning) or cannot be told (too little data: :attr:`Budget.projectable`)."""
    remaining = budget.remaining_fraction
    if remaining is None or not budget.projectable or burn is None or burn <= 0:
        return None
    if remaining <= 0:
        return timedelta(0)
    return budget.window * (remaining / burn)


def spent_between(spec: SloSpec, series: Series, start: datetime, end: datetime) -> float | None:
    """The share of the SLO's whole error budget that ``[start, end]`` spent (an incident's impact):
    threshold SLOs, its bad time over the budget time ``allowed × W``; ratio SLOs, its bad events
    over the budget in events of the window ending at ``end`` (``allowed × events``). ``None``
    when there is nothing to measure (no events in the window)."""
    during = measure(spec, series, start=start, end=end)
    if isinstance(during, TimeSli):
        budget = (spec.window * spec.allowed_bad_fraction).total_seconds()
        return during.bad_time.total_seconds() / budget if budget > 0 else None
    assert isinstance(during, RatioSli)
    window = measure(spec, series, start=end - spec.window, end=end)
    assert isinstance(window, RatioSli)
    budget = window.total_events * spec.allowed_bad_fraction
    return during.bad_events / budget if budget > 0 else None
