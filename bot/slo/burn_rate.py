"""Multiwindow, multi-burn-rate SLO alerts (Google SRE workbook, "Alerting on SLOs").

The workbook's recommendation for a 30-day SLO alerts on the share of the *whole budget* spent
within a long window, confirmed by a short window of 1/12 its length (so the alert stops soon
after the burning stops):

=============  ============  ===========  ============  =========
budget spent   long window   short window  burn rate     action
=============  ============  ===========  ============  =========
2%             1 h           5 min         14.4          page
5%             6 h           30 min        6             page
10%            3 d           6 h           1             ticket
=============  ============  ===========  ============  =========

with ``burn rate = spent × W / long`` (``0.02 × 720 h / 1 h = 14.4``). Copying the 30-day table onto
a 7-day SLO would be wrong: 14.4× for 1 h would mean 8.6% of a 7-day budget before anyone is paged.
So the long windows **scale with the SLO window**, ``long = long₃₀ × W / 30 d`` (7 d: 14 min, 84 min,
16.8 h), which keeps every tier's burn-rate threshold and budget share exactly as in the table, and
its detection time proportionate. The short window stays ``long / 12``. Floors (5 min long, 1 min
short by default) keep windows longer than the push interval; where a floor lifts a long window,
the threshold is recomputed from the budget share, ``spent × W / long``, so the share stays true.

A tier fires when the burn rate over **both** its windows exceeds its threshold. Tiers are
checked fastest first and the first that fires is the one finding for the SLO; slower tiers that
also fire are listed as suppressed (one incident, one alert). Two guards stop noise:
a ratio SLO needs ``min_events`` in the long window (one failure of ten requests is a 10% error
rate, but no page), and a threshold SLO needs data over ``min_coverage`` of the long window.
When the SLI's metric has had no sample for ``absent_after``, the finding says so instead — the
SLO cannot be evaluated, which is neither healthy nor burning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from bot.config.alert_names import slo_rule
from bot.config.durations import humanize, window_words
from bot.severity import Severity
from bot.slo import text
from bot.slo.budget import Budget, budget_consumed, burn_rate, error_budget, time_to_exhaustion
from bot.slo.sli import RatioSli, Series, Sli, measure
from bot.slo.spec import SloSpec

Action = Literal["page", "ticket"]
REFERENCE_WINDOW = timedelta(days=30)
MIN_LONG = timedelta(minutes=5)
MIN_SHORT = timedelta(minutes=1)
DEFAULT_SEVERITIES: Mapping[str, Severity] = {"page": Severity.P1, "ticket": Severity.P3, "absent": Severity.P2}


@dataclass(frozen=True, slots=True)
class TierTemplate:
    """A row of the workbook's table for the 30-day reference window."""

    name: str
    budget_spent: float
    long: timedelta
    action: Action


WORKBOOK_TIERS = (
    TierTemplate("fast", 0.02, timedelta(hours=1), "page"),
    TierTemplate("slow", 0.05, timedelta(hours=6), "page"),
    TierTemplate("ticket", 0.10, timedelta(days=3), "ticket"),
)


@dataclass(frozen=True, slots=True)
class BurnTier:
    name: str
    long: timedelta
    short: timedelta
    threshold: float
    budget_spent: float
    action: Action


def tiers_for(
    window: timedelta,
    templates: Sequence[TierTemplate] = WORKBOOK_TIERS,
    *,
    reference: timedelta = REFERENCE_WINDOW,
    min_long: timedelta = MIN_LONG,
    min_short: timedelta = MIN_SHORT,
) -> tuple[BurnTier, ...]:
    """The tiers for an SLO window, fastest first."""
    tiers = []
    for template in templates:
        long = max(template.long * (window / reference), min_long)
        short = max(long / 12, min_short)
        threshold = template.budget_spent * (window / long)
        tiers.append(BurnTier(template.name, long, short, threshold, template.budget_spent, template.action))
    return tuple(sorted(tiers, key=lambda t: t.long))


@dataclass(frozen=True, slots=True)
class TierResult:
    tier: BurnTier
    burn_long: float | None
    burn_short: float | None
    long_sli: Sli
    blocked: str | None
    """Why a tier over its threshold may not fire (too little traffic or data), else ``None``."""

    @property
    def over_threshold(self) -> bool:
        return (
            self.burn_long is not None
            and self.burn_short is not None
            and self.burn_long > self.tier.threshold
            and self.burn_short > self.tier.threshold
        )

    @property
    def firing(self) -> bool:
        return self.over_threshold and self.blocked is None


@dataclass(frozen=True, slots=True)
class BurnFinding:
    """One alert-worthy finding for one SLO: a burning tier, or its metric gone absent."""

    spec: SloSpec
    kind: Literal["burn", "absent"]
    severity: Severity
    explanation: str
    tier: BurnTier | None = None
    burn_long: float | None = None
    burn_short: float | None = None
    budget_spent_in_long: float | None = None
    budget_remaining: float | None = None
    time_to_exhaustion: timedelta | None = None
    suppressed: tuple[str, ...] = ()
    last_seen: datetime | None = None

    @property
    def rule(self) -> str:
        """The alert's rule name, ``slo:<label>``: the colon keeps it apart from every configured
        rule (rule names are identifiers), and silences can name it like any rule."""
        return alert_rule(self.spec)

    @property
    def dedup_key(self) -> str:
        """One key per SLO, whatever the tier or kind: a fast burn that slows to the slow tier, or
        whose metric then stops arriving, stays one alert instead of resolving and re-firing.
        It is the alert pipeline's ``rule:model`` (:func:`bot.alerts.lifecycle.dedup_key`)."""
        return f"{self.rule}:{self.spec.model}"


def alert_rule(spec: SloSpec) -> str:
    """The rule name of ``spec``'s burn-rate and absent-metric alerts."""
    return slo_rule(spec.label)


def evaluate_tiers(spec: SloSpec, series: Series, now: datetime, tiers: Sequence[BurnTier]) -> tuple[TierResult, ...]:
    """Every tier's burn rates and guards, in the order given."""
    results = []
    allowed = spec.allowed_bad_fraction
    for tier in tiers:
        long_sli = measure(spec, series, start=now - tier.long, end=now)
        short_sli = measure(spec, series, start=now - tier.short, end=now)
        results.append(
            TierResult(
                tier, burn_rate(long_sli, allowed), burn_rate(short_sli, allowed), long_sli, _blocked(spec, long_sli)
            )
        )
    return tuple(results)


def _blocked(spec: SloSpec, long_sli: Sli) -> str | None:
    if isinstance(long_sli, RatioSli):
        if long_sli.total_events < spec.min_events:
            return f"only {long_sli.total_events:g} events in the long window (min_events {spec.min_events})"
        return None
    if long_sli.coverage < spec.min_coverage:
        return f"data for {text.percent(long_sli.coverage)} of the long window (min_coverage {spec.min_coverage:g})"
    return None


def evaluate_burn(
    spec: SloSpec,
    series: Series,
    now: datetime,
    *,
    tiers: Sequence[BurnTier] | None = None,
    severities: Mapping[str, Severity] = DEFAULT_SEVERITIES,
) -> BurnFinding | None:
    """The one finding for ``spec`` at ``now``, or ``None`` when its budget is not burning too fast.

    ``series`` holds the model's samples of ``spec.metrics`` over at least
    ``spec.history_needed()`` before ``now``. ``severities`` maps ``page``, ``ticket`` and
    ``absent`` to a severity.
    """
    absent = _absent(spec, series, now, severities)
    if absent is not None:
        return absent
    ordered = tuple(sorted(tiers if tiers is not None else tiers_for(spec.window), key=lambda t: t.long))
    firing = [r for r in evaluate_tiers(spec, series, now, ordered) if r.firing]
    if not firing:
        return None
    top = firing[0]
    if top.burn_long is None:  # pragma: no cover — firing implies both burn rates
        return None
    full = measure(spec, series, start=now - spec.window, end=now)
    budget = error_budget(spec, full)
    spent = budget_consumed(top.burn_long, top.tier.long, spec.window)
    exhaustion = time_to_exhaustion(budget, top.burn_long)
    remaining = budget.remaining_fraction if budget.projectable else None
    return BurnFinding(
        spec=spec,
        kind="burn",
        severity=severities[top.tier.action],
        explanation=explain_burn(spec, top, spent, budget, exhaustion),
        tier=top.tier,
        burn_long=top.burn_long,
        burn_short=top.burn_short,
        budget_spent_in_long=spent,
        budget_remaining=remaining,
        time_to_exhaustion=exhaustion,
        suppressed=tuple(r.tier.name for r in firing[1:]),
    )


def _absent(spec: SloSpec, series: Series, now: datetime, severities: Mapping[str, Severity]) -> BurnFinding | None:
    seen = [s.at for s in series.get(spec.sli_metric, ()) if s.at <= now]
    last = max(seen) if seen else None
    if last is not None and now - last <= spec.absent_after:
        return None
    since = f"since {last:%Y-%m-%d %H:%M} UTC ({humanize(now - last)} ago)" if last else "in the fetched history"
    explanation = (
        f"No `{spec.sli_metric}` sample for {spec.model} {since}: the SLO {spec.label} cannot be evaluated "
        f"(no data is neither good nor bad). Check that the metric is still being pushed or scraped."
    )
    return BurnFinding(spec=spec, kind="absent", severity=severities["absent"], explanation=explanation, last_seen=last)


def explain_burn(
    spec: SloSpec, result: TierResult, spent: float, budget: Budget, exhaustion: timedelta | None
) -> str:
    """``Burning error budget 14.9× too fast (1 h: 15.2×, 5 min: 14.9×): 2.1% of the 30-day budget used
    in the last 1 h; 62% left; at this rate the budget is gone in 1 d 16 h.``; with too little data in
    the window for a budget (:attr:`Budget.projectable`), how much it has instead."""
    tier = result.tier
    slowly = "Slowly burning" if tier.action == "ticket" else "Burning"
    long_rate = f"{humanize(tier.long)}: {text.burn(result.burn_long)}"
    rates = f"{long_rate}, {humanize(tier.short)}: {text.burn(result.burn_short)}"
    head = (
        f"{slowly} error budget of {spec.label} ({spec.model}) {text.burn(result.burn_long)} too fast ({rates}; "
        f"alerts above {tier.threshold:.3g}×): {text.percent(spent)} of the {window_words(spec.window)} budget "
        f"used in the last {humanize(tier.long)}"
    )
    if not budget.projectable:
        return f"{head}; {text.coverage(budget.coverage, spec.window)}, too little to project the budget."
    remaining = budget.remaining_fraction
    if remaining is not None and remaining <= 0:
        return f"{head}; the budget is already spent ({text.percent(1 - remaining, digits=0)} of it used)."
    left = f"; {text.percent(remaining, digits=0)} left" if remaining is not None else ""
    gone = f"; at this rate the budget is gone in {humanize(exhaustion)}" if exhaustion is not None else ""
    return f"{head}{left}{gone}."
