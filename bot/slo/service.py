"""The SLO edge: stored samples in, dashboards and alert transitions out.

The pure core (:mod:`bot.slo.sli`, :mod:`bot.slo.burn_rate`, :mod:`bot.slo.dashboard`) never
touches the database; this module fetches exactly the history it needs
(:meth:`SloSpec.history_needed`) through :func:`bot.metrics.store.series` and hands it over.

**Burn-rate alerts ride the rule pipeline.** Each SLO is observed like a rule on one model:
``rule = slo:<label>``, so its dedup key ``slo:<label>:<model>`` is the finding's
:attr:`~bot.slo.burn_rate.BurnFinding.dedup_key` and the usual ``rule:model``. A finding (a
burning tier, or the SLI's metric gone absent) is a TRUE observation; a healthy SLO with data is
FALSE, which auto-resolves an open alert; everything else is NO_DATA, which changes nothing:

- a tier over its threshold but held back by a guard (``min_events``, ``min_coverage``): too
  little traffic to page on is also too little to declare the incident over;
- a metric that was *never* seen in the window: an SLO configured before its metric is pushed is
  not an incident, and an alert opened when the metric *stopped* stays open until it returns.

Dedup, cooldown (:data:`SLO_COOLDOWN`), silences, routing and the escalation policy snapshot are
the rule pipeline's own (:class:`bot.service.AlertService` records the transitions).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.alerts import store as alert_store
from bot.alerts.lifecycle import Observation, PolicyStep, Timing, Transition, Value, dedup_key, observe
from bot.config.conditions import Outcome
from bot.config.loader import Config
from bot.config.slo_schema import Slo
from bot.evaluation.evaluate import policy_for
from bot.metrics import store as metric_store
from bot.metrics.samples import Sample
from bot.metrics.store import SeriesKey
from bot.slo import text
from bot.slo.burn_rate import DEFAULT_SEVERITIES, BurnFinding, alert_rule, evaluate_burn, evaluate_tiers, tiers_for
from bot.slo.chart import budget_burndown, chart_title, render_budget_chart
from bot.slo.dashboard import ModelDashboard, build_dashboard, render_overview, render_table
from bot.slo.sli import Series
from bot.slo.spec import SloSpec, spec_from_config
from bot.storage.database import session as open_session

SLO_COOLDOWN = timedelta(minutes=30)
"""After an SLO alert resolves, the same SLO cannot alert again for this long (seed 001: 30–60 min)."""
SLO_TIMING = Timing(for_=timedelta(0), cooldown=SLO_COOLDOWN)
"""No ``for:``: the burn-rate windows already demand that the burn lasted (the short window)."""

_UNITS = {"ms": "ms", "s": "s", "seconds": "s", "%": "%", "percent": "%", "usd": "$", "$": "$", "ratio": "ratio"}


def spec_of(config: Config, slo: Slo) -> SloSpec:
    """``slo`` as the core needs it: the engine's ``stale_after``, and a display unit from the
    metrics catalogue (``unit: ms``, ``unit: USD``) when the catalogue names one."""
    info = config.metrics.get(slo.metric)
    unit = _UNITS.get(info.unit.strip().lower(), "") if info is not None else ""
    return spec_from_config(slo, stale_after=config.settings.stale_after, unit=unit)


def specs_of(config: Config, *, model: str | None = None, alerting_only: bool = False) -> list[SloSpec]:
    """Every configured SLO (of one model), in configuration order; ``alerting_only`` leaves out
    those with ``burn_alerts: false``."""
    return [
        spec_of(config, slo)
        for slo in config.slos
        if (model is None or slo.model == model) and (slo.burn_alerts or not alerting_only)
    ]


def load_series(
    session: Session, spec: SloSpec, now: datetime, window: timedelta | None = None
) -> dict[str, list[Sample]]:
    """The samples of ``spec``'s metrics the core needs at ``now``: the window (or ``window``,
    if longer) plus one ``stale_after`` for the sample that still holds into it."""
    return _metrics_since(session, spec, now - spec.history_needed(window), now)


def _metrics_since(session: Session, spec: SloSpec, since: datetime, now: datetime) -> dict[str, list[Sample]]:
    """``spec``'s metrics in ``[since, now]``, read in one query."""
    found = metric_store.series_of(session, {(spec.model, name): since for name in spec.metrics}, until=now)
    return {name: found[(spec.model, name)] for name in spec.metrics}


def alerting_series(session: Session, spec: SloSpec, now: datetime) -> dict[str, list[Sample]]:
    """What a burn-rate decision needs, fetched cheaply: the longest tier's window first (16.8 h of
    a 7-day SLO), which decides every healthy SLO exactly as the whole window would; only when
    that finds something is the whole window fetched, for the budget the alert explains."""
    recent = max(t.long for t in tiers_for(spec.window)) + spec.stale_after
    if recent >= spec.history_needed():
        return load_series(session, spec, now)
    partial = _metrics_since(session, spec, now - recent, now)
    if evaluate_burn(spec, partial, now) is None:
        return partial
    return load_series(session, spec, now)


def load_model_series(
    session: Session, specs: Iterable[SloSpec], now: datetime, window: timedelta | None = None
) -> dict[str, Series]:
    """model → metric → samples for several SLOs, each metric fetched once over the longest
    history any of its SLOs needs (two SLOs on one metric share a query)."""
    since: dict[SeriesKey, datetime] = {}
    for spec in specs:
        for name in spec.metrics:
            key = (spec.model, name)
            since[key] = min(since.get(key, now), now - spec.history_needed(window))
    out: dict[str, dict[str, list[Sample]]] = {}
    for (model, name), samples in metric_store.series_of(session, since, until=now).items():
        out.setdefault(model, {})[name] = samples
    return dict(out)


def slo_dashboards(
    engine: Engine, config: Config, now: datetime, window: timedelta | None = None, *, model: str | None = None
) -> tuple[ModelDashboard, ...]:
    """Seed 000's dashboard per model (of ``model`` only, if given), worst model first."""
    specs = specs_of(config, model=model)
    with open_session(engine) as s:
        series = load_model_series(s, specs, now, window)
    return build_dashboard(specs, series, now, window=window)


def slo_summary_text(engine: Engine, config: Config, now: datetime) -> str:
    """Every model's SLOs as ``incident-bot slo status`` prints them: the overview, then each
    model's table (the weekly SLO summary email)."""
    boards = slo_dashboards(engine, config, now)
    return "\n".join(render_overview(boards)) + "\n\n" + "\n\n".join(render_table(board) for board in boards)


def slo_chart(engine: Engine, config: Config, model: str, now: datetime, window: timedelta | None = None) -> bytes:
    """The PNG of ``/slo status <model> chart``: every SLO of ``model``'s budget burndown.
    Raises ``LookupError`` when the model has no SLO."""
    specs = specs_of(config, model=model)
    if not specs:
        raise LookupError(f"{model} has no SLOs")
    with open_session(engine) as s:
        series = load_model_series(s, specs, now, window).get(model, {})
    lines = [budget_burndown(spec, series, now, window=window) for spec in specs]
    return render_budget_chart(lines, title=chart_title(model, window or max(spec.window for spec in specs)))


def evaluate_slos(engine: Engine, config: Config, now: datetime) -> list[BurnFinding]:
    """The findings of every SLO with ``burn_alerts`` on, at ``now`` (no alert state involved)."""
    findings = []
    with open_session(engine) as s:
        for spec in specs_of(config, alerting_only=True):
            finding = evaluate_burn(spec, alerting_series(s, spec, now), now)
            if finding is not None:
                findings.append(finding)
    return findings


def slo_transitions(session: Session, config: Config, now: datetime) -> list[Transition]:
    """One SLO pass against the open alerts: the transitions to record, in configuration order."""
    open_alerts = alert_store.open_alerts(session)
    last_resolved = alert_store.last_fired_resolutions(session, since=now - SLO_COOLDOWN)
    transitions = []
    for spec in specs_of(config, alerting_only=True):
        seen = observation_for(spec, alerting_series(session, spec, now), now, policy_for(config, spec.model))
        key = dedup_key(seen.rule, seen.model)
        change = observe(open_alerts.get(key), seen, SLO_TIMING, last_fired_resolved_at=last_resolved.get(key), now=now)
        if change is not None:
            transitions.append(change)
    return transitions


def observation_for(spec: SloSpec, series: Series, now: datetime, policy: tuple[PolicyStep, ...] = ()) -> Observation:
    """What one SLO pass sees for ``spec`` (pure): see the module docstring for TRUE/FALSE/NO_DATA."""
    rule = alert_rule(spec)
    finding = evaluate_burn(spec, series, now)
    if finding is None:
        held_back = any(
            r.over_threshold and r.blocked for r in evaluate_tiers(spec, series, now, tiers_for(spec.window))
        )
        outcome = Outcome.NO_DATA if held_back else Outcome.FALSE
        return Observation(rule, spec.model, DEFAULT_SEVERITIES["page"], outcome)  # severity unused: nothing opens
    if finding.kind == "absent" and finding.last_seen is None:
        return Observation(rule, spec.model, finding.severity, Outcome.NO_DATA)
    return Observation(
        rule,
        spec.model,
        finding.severity,
        Outcome.TRUE,
        finding_values(finding),
        title=finding_title(finding),
        description=finding_description(finding),
        policy=policy,
    )


def finding_title(finding: BurnFinding) -> str:
    """The alert's headline: which SLO, and how fast (or that it cannot be measured)."""
    spec = finding.spec
    if finding.kind == "absent":
        return f"SLO {spec.label} of {spec.model}: no {spec.sli_metric} data"
    pace = "slowly burning" if finding.tier is not None and finding.tier.action == "ticket" else "burning"
    return f"SLO {spec.label} of {spec.model}: error budget {pace} {text.burn(finding.burn_long)} too fast"


def finding_description(finding: BurnFinding) -> str:
    """The core's explanation of the numbers, plus the slower tiers this one alert stands for."""
    if not finding.suppressed:
        return finding.explanation
    tiers = ", ".join(finding.suppressed)
    return f"{finding.explanation} The slower {tiers} tier(s) fire too; they are folded into this alert."


def finding_values(finding: BurnFinding) -> dict[str, Value]:
    """The numbers behind the alert, for the message's fields."""
    if finding.kind == "absent":
        seen = finding.last_seen.isoformat() if finding.last_seen else "never"
        return {"metric": finding.spec.sli_metric, "last_seen": seen}
    values: dict[str, Value] = {}
    if finding.tier is not None:
        values["tier"] = finding.tier.name
        values["threshold"] = round(finding.tier.threshold, 2)
    if finding.burn_long is not None:
        values["burn_rate_long"] = round(finding.burn_long, 2)
    if finding.burn_short is not None:
        values["burn_rate_short"] = round(finding.burn_short, 2)
    if finding.budget_remaining is not None:
        values["budget_left"] = text.percent(finding.budget_remaining, digits=1)
    return values
