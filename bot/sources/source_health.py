"""How each Prometheus query is doing, and the bot's own alert when one keeps failing (pure).

A query that fails stores nothing, so its metric keeps its last sample until ``stale_after`` and
then is no data: rules over it stop firing. That is a monitoring gap, and nobody looking at Slack
would know. So every query's health is kept (last success, last error, duration, series returned)
for ``/healthz`` and ``/metrics``, and after ``prometheus.failing_after`` failed pulls in a row
the bot raises an alert of its own -- "metric source failing: p99_latency_ms for all models,
since 14:02: too many series" -- resolved by the first pull that works again. Its alerts share the
model :data:`SOURCE_MODEL`, so under the default ``group_by: [model]`` a Prometheus outage is one
incident however many queries fail, told in ``default_channel``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.alerts.lifecycle import Alert, AlertState, Observation, Timing, Transition, dedup_key, observe
from bot.config.conditions import Outcome
from bot.config.loader import Config
from bot.config.source_schema import ANY_MODEL, PrometheusQuery
from bot.evaluation.evaluate import policy_for
from bot.severity import Severity

SOURCE_MODEL = "prometheus"
"""The model of the bot's source alerts: one group, one incident for the source."""
SOURCE_RULE_PREFIX = "source:"
SOURCE_SEVERITY = Severity.P2
"""A monitoring gap is told, not paged; unacknowledged, it climbs the escalation policy like any alert."""


def source_rule(query: PrometheusQuery) -> str:
    """The alert rule of a failing query: ``source:*/p99_latency_ms``."""
    return SOURCE_RULE_PREFIX + query.name


@dataclass(frozen=True)
class QueryHealth:
    """One query's record, updated after every pull."""

    query: PrometheusQuery
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    seconds: float = 0.0
    """How long its latest run took."""
    series: int = 0
    """Values its latest successful run stored (one per model)."""
    failures: int = 0
    """Failed pulls in a row (0 once one works)."""
    failing_since: datetime | None = None

    def after(self, *, error: str | None, series: int, seconds: float, now: datetime) -> QueryHealth:
        """The record after a pull that failed with ``error`` or stored ``series`` values."""
        if error is None:
            return replace(self, last_success=now, seconds=seconds, series=series, failures=0, failing_since=None)
        return replace(
            self,
            last_error=error,
            last_error_at=now,
            seconds=seconds,
            failures=self.failures + 1,
            failing_since=self.failing_since or now,
        )

    @property
    def ok(self) -> bool:
        return self.failures == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "failing_since": self.failing_since.isoformat() if self.failing_since else None,
            "failures_in_a_row": self.failures,
            "seconds": round(self.seconds, 3),
            "series": self.series,
        }


def source_alerts(
    health: Mapping[str, QueryHealth],
    *,
    failing_after: int,
    config: Config,
    open_alerts: Mapping[str, Alert],
    now: datetime,
) -> list[Transition]:
    """Fire the alert of each query failing ``failing_after`` pulls in a row that has none open;
    resolve the open ones whose query works again, or is no longer configured."""
    changes: list[Transition] = []
    current: set[str] = set()
    for record in health.values():
        rule = source_rule(record.query)
        current.add(rule)
        alert = open_alerts.get(dedup_key(rule, SOURCE_MODEL))
        if alert is None and record.failures >= failing_after:
            changes.append(_fire(record, rule, config, now))
        elif alert is not None and record.ok:
            changes.append(_resolve(alert, now, why="the query works again"))
    for alert in open_alerts.values():
        gone = alert.rule.startswith(SOURCE_RULE_PREFIX) and alert.model == SOURCE_MODEL and alert.rule not in current
        if gone and alert.state is not AlertState.PENDING:
            changes.append(_resolve(alert, now, why="the query is no longer configured"))
    return changes


def _fire(record: QueryHealth, rule: str, config: Config, now: datetime) -> Transition:
    query = record.query
    models = "all models" if query.model == ANY_MODEL else query.model
    since = record.failing_since or now
    title = f"metric source failing: {query.metric} for {models}, since {since:%H:%M} UTC: {record.last_error}"
    seen = Observation(
        rule,
        SOURCE_MODEL,
        SOURCE_SEVERITY,
        Outcome.TRUE,
        {"query": query.query[:500], "failed_pulls": record.failures},
        title=_clip(title),
        description=(
            f"The Prometheus query for {query.metric} ({models}) has failed {record.failures} pulls in a row, so "
            "its metric is stale and rules over it cannot fire. Check the query and Prometheus; this resolves "
            "when a pull works again."
        ),
        policy=policy_for(config, SOURCE_MODEL),
    )
    change = observe(None, seen, Timing(), last_fired_resolved_at=None, now=now)
    assert change is not None  # a true observation with no open alert and no cooldown fires
    return change


def _resolve(alert: Alert, now: datetime, *, why: str) -> Transition:
    seen = Observation(alert.rule, alert.model, alert.severity, Outcome.FALSE)
    change = observe(alert, seen, Timing(), last_fired_resolved_at=None, now=now)
    assert change is not None  # an open alert whose condition is false resolves (no keep_firing_for)
    return Transition(change.alert, replace(change.event, detail=why))


def _clip(title: str, limit: int = 300) -> str:
    return title if len(title) <= limit else title[: limit - 1] + "…"
