"""Windowed terms over pulled metrics, evaluated by Prometheus in PromQL (issue 20, point 2; pure).

A metric pulled from Prometheus already has its history there, so copying every sample into our
table only to average it again would duplicate the store. Instead, for each windowed term over a
metric a ``prometheus:`` query provides, the puller asks Prometheus for the term itself, written
from that query as a subquery stepped at the pull interval, so Prometheus evaluates the query at
the same instants our stored samples would have been taken:

- ``avg_over_time(m, "1h")`` → ``avg_over_time((<query>)[1h:30s])``, and so ``min``/``max``/
  ``sum``/``count_over_time``, ``rate((<query>)[5m:30s])`` (ours is Prometheus' ``rate``) and
  ``quantile_over_time(0.95, (<query>)[5m:30s])``;
- ``ago(m, "1d")`` → ``last_over_time((<query>)[<stale_after>:30s] offset 1d)``: the newest value
  at or before ``t - 1d`` unless it is older than ``stale_after`` there, our definition;
- ``delta`` stays on stored samples: ours is last minus first, Prometheus' extrapolates to the
  window's edges, and no stable PromQL function gives the first sample of a range.

The answer for each model is stored as that model's latest value under the term's name
(``avg_over_time_helpfulness_1h``), so a pass reads it with the other latest values, as of its
tick, and a missing answer is no data once ``stale_after`` has passed, never a recovery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from bot.config.loader import Config
from bot.config.source_schema import ANY_MODEL, PrometheusQuery
from bot.config.windows import AGO, QUANTILE, WindowTerm

KEPT_ON_SAMPLES = frozenset({"delta"})
"""Window functions without an exact PromQL form: evaluated from stored samples even when pulled."""
NAME_LIMIT = 100
"""The longest metric name ``metric_latest`` stores; a longer term name stays on stored samples."""
_UNITS = (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def promql_duration(duration: timedelta) -> str:
    """The duration as PromQL writes it, in the largest unit that divides it (``90m``, ``1d``)."""
    millis = round(duration.total_seconds() * 1000)
    if millis <= 0:
        raise ValueError(f"a PromQL range must be longer than 0s, got {duration}")
    unit, size = next((unit, size) for unit, size in _UNITS if millis % size == 0)
    return f"{millis // size}{unit}"


def has_promql_form(term: WindowTerm, *, stale_after: timedelta) -> bool:
    """Whether Prometheus can answer ``term`` exactly, under a name ``metric_latest`` can hold
    (``ago`` with a zero ``stale_after`` would be an empty range, which PromQL refuses)."""
    if term.function in KEPT_ON_SAMPLES or len(term.name) > NAME_LIMIT:
        return False
    return term.function != AGO or stale_after > timedelta(0)


def term_promql(term: WindowTerm, query: str, *, step: timedelta, stale_after: timedelta) -> str:
    """The PromQL whose instant value at ``t`` is ``term``'s value at ``t`` over a metric pulled by ``query``."""
    if term.function in KEPT_ON_SAMPLES:
        raise ValueError(f"{term.function} has no exact PromQL form; it is evaluated from stored samples")
    every = promql_duration(step)
    if term.function == AGO:
        back = promql_duration(term.window)
        return f"last_over_time(({query})[{promql_duration(stale_after)}:{every}] offset {back})"
    subquery = f"({query})[{promql_duration(term.window)}:{every}]"
    if term.function == QUANTILE:
        return f"quantile_over_time({term.phi!r}, {subquery})"
    return f"{term.function}({subquery})"


@dataclass(frozen=True)
class PulledTerms:
    """Which windowed terms Prometheus answers, for which models; empty without a ``prometheus:``
    section (and in rule tests, which compute every term from their own series)."""

    queries: Mapping[str, tuple[PrometheusQuery, ...]] = field(default_factory=dict)
    """term name → the queries answering it, one per configured query of its metric."""

    def answered_for(self, model: str) -> frozenset[str]:
        """The terms whose value for ``model`` comes from Prometheus, not from stored samples."""
        return self._by_model.get(model, self._fleet)

    def everywhere(self, term: str) -> bool:
        """Whether Prometheus answers ``term`` for every model (a ``"*"`` query), so no pass reads
        its stored samples."""
        return term in self._fleet

    @cached_property
    def _fleet(self) -> frozenset[str]:
        return frozenset(term for term, covered in self.queries.items() if any(q.model == ANY_MODEL for q in covered))

    @cached_property
    def _by_model(self) -> dict[str, frozenset[str]]:
        """Per model a one-model query covers: its terms and the fleet's (a pass asks once per model)."""
        named: dict[str, set[str]] = {}
        for term, covered in self.queries.items():
            for query in covered:
                if query.model != ANY_MODEL:
                    named.setdefault(query.model, set()).add(term)
        return {model: self._fleet | terms for model, terms in named.items()}


def pulled_terms(config: Config) -> PulledTerms:
    """The windowed terms of the rules whose metric a ``prometheus:`` query provides, and their queries."""
    if config.prometheus is None:
        return PulledTerms()
    by_metric: dict[str, list[PrometheusQuery]] = {}
    for query in config.prometheus.queries:
        by_metric.setdefault(query.metric, []).append(query)
    answered: dict[str, tuple[PrometheusQuery, ...]] = {}
    for rule in config.rules:
        for term in rule.condition.windows:
            if term.metric in by_metric and has_promql_form(term, stale_after=config.settings.stale_after):
                answered[term.name] = tuple(by_metric[term.metric])
    return PulledTerms(answered)


def term_queries(config: Config) -> list[PrometheusQuery]:
    """The queries the puller runs for the pulled terms: each query of a term's metric rewritten
    into the term's PromQL, its ``metric`` the term's name (under which the value is stored)."""
    section = config.prometheus
    if section is None:
        return []
    terms = {term.name: term for rule in config.rules for term in rule.condition.windows}
    stale_after = config.settings.stale_after
    return [
        query.model_copy(
            update={
                "metric": name,
                "query": term_promql(terms[name], query.query, step=section.interval, stale_after=stale_after),
            }
        )
        for name, queries in pulled_terms(config).queries.items()
        for query in queries
    ]
