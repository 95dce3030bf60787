"""The bot's own metrics (SPEC §4, issue 7): ``GET /metrics`` in the Prometheus exposition format.

An incident bot that silently stops delivering is worse than none, so its own health is
scraped like any other service: notifications sent / failed / retried per channel, how long an
evaluation pass takes, how late escalation steps run, Slack and PagerDuty API latency, and
gauges read from the database at scrape time (alerts by state and severity, outbox depth, and
notifications that failed for good and wait for ``incident-bot outbox retry`` or ``drop``).

Design choices:

* Each :class:`Metrics` owns its own :class:`~prometheus_client.CollectorRegistry`, never the
  process-wide default one: tests (and ``incident-bot demo``) build several bots in one process,
  and the default registry refuses a second metric of the same name.
* Components take an optional ``metrics`` keyword and record with ``if self._metrics: ...``, so
  a component built without one (most unit tests) records nothing and needs no stub.
* The gauges are computed when ``/metrics`` is scraped, from the database, not kept up to date
  in memory: several replicas share one database, and every replica then reports the same
  truth instead of its own partial view. The queries are ``GROUP BY`` counts over indexed
  columns, cheap at a scrape every 15–60 s.
* This module imports nothing from ``bot.notify`` or ``bot.service``: those import it, and a
  cycle would break whichever is imported first.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Concatenate, Final, Literal, ParamSpec, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.alerts.lifecycle import AlertState
from bot.severity import Severity
from bot.storage.database import session as open_session
from bot.storage.tables import AlertRow, OutboxRow

log = logging.getLogger(__name__)

PATH: Final = "/metrics"

OUTBOX_PENDING: Final = "pending"
"""``bot.notify.outbox.PENDING``, repeated rather than imported (see the module docstring); a test
checks that the two agree."""
OUTBOX_FAILED: Final = "failed"
"""``bot.notify.outbox.FAILED``, likewise."""

Outcome = Literal["sent", "failed", "retried"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("sent", "failed", "retried")
Api = Literal["slack", "pagerduty"]

OPEN_STATES: Final = tuple(state for state in AlertState if state.is_open)
"""The states the alert gauge reports. Resolved alerts are left out: their number only ever grows
(a counter's job, not a gauge's), and counting them would scan the whole alert history on every
scrape, where the open ones are a small set the partial index ``state != 'resolved'`` serves."""

EVALUATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""A pass should take well under the 30 s default interval; the top buckets show one that does not."""

LATENESS_BUCKETS: Final = (0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""The escalation job runs every few seconds, so seconds are normal and minutes mean trouble
(a stalled scheduler, a replica down): the watchdog's 30 s grace sits between the two."""

API_BUCKETS: Final = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Slack and PagerDuty answer in tens to hundreds of milliseconds; the notifiers time out at 10 s."""

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")


class Metrics:
    """The bot's metrics, in a registry of their own. Thread-safe: the scheduler's jobs, the
    outbox workers and the web app record into one instance concurrently."""

    def __init__(self, engine: Engine | None = None, *, channels: Iterable[str] = ()) -> None:
        """``engine``: where the scrape-time gauges are read (none: counters and histograms only).
        ``channels``: notifier channels whose series should exist, at 0, before their first event."""
        self.registry = CollectorRegistry()
        self.notifications = Counter(
            "incident_bot_notifications",
            "Outbox deliveries by notifier channel and outcome (sent, failed for good, retried later).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.evaluation_seconds = Histogram(
            "incident_bot_evaluation_seconds",
            "Duration of one evaluation pass over every rule and model.",
            buckets=EVALUATION_BUCKETS,
            registry=self.registry,
        )
        self.evaluation_models = Gauge(
            "incident_bot_evaluation_models",
            "Models in this process's share at its last evaluation pass (all of them when it evaluates alone).",
            registry=self.registry,
        )
        self.evaluators = Gauge(
            "incident_bot_evaluators",
            "Live evaluating processes this process counted at its last pass, itself included.",
            registry=self.registry,
        )
        self.evaluations_missed_total = Counter(
            "incident_bot_evaluations_missed",
            "Evaluation ticks skipped entirely because the scheduler ran late (Prometheus' "
            "rule_group_iterations_missed_total).",
            registry=self.registry,
        )
        self.escalation_lateness_seconds = Histogram(
            "incident_bot_escalation_lateness_seconds",
            "How long after its deadline an escalation step ran.",
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.api_seconds = Histogram(
            "incident_bot_api_seconds",
            "Latency of Slack Web API and PagerDuty Events API calls, failed ones included.",
            ["api", "method"],
            buckets=API_BUCKETS,
            registry=self.registry,
        )
        self.rule_evaluation_errors_total = Counter(
            "incident_bot_rule_evaluation_errors",
            "Evaluations of a rule for one model that raised; the rule was skipped, the others ran.",
            ["rule"],
            registry=self.registry,
        )
        self.source_query_up = Gauge(
            "incident_bot_source_query_up",
            "1 when the Prometheus query's latest pull worked, 0 when it failed (its metric keeps its last sample).",
            ["query"],
            registry=self.registry,
        )
        self.source_query_last_success = Gauge(
            "incident_bot_source_query_last_success_timestamp_seconds",
            "When the Prometheus query last worked (Unix time; 0: not since the start).",
            ["query"],
            registry=self.registry,
        )
        self.source_query_seconds = Gauge(
            "incident_bot_source_query_duration_seconds",
            "How long the Prometheus query's latest run took.",
            ["query"],
            registry=self.registry,
        )
        self.source_query_series = Gauge(
            "incident_bot_source_query_series",
            "Values the Prometheus query's latest successful run stored (one per model).",
            ["query"],
            registry=self.registry,
        )
        self._database = DatabaseCollector(engine) if engine is not None else None
        if self._database is not None:
            self.registry.register(self._database)
        self.watch_channels(channels)

    def watch_channels(self, channels: Iterable[str]) -> None:
        """Start these channels' series at 0: ``rate()`` and ``absent()`` alerts in Prometheus need a
        series to exist before its first increment, and an empty outbox should read 0, not nothing."""
        names = tuple(channels)
        for channel in names:
            for outcome in OUTCOMES:
                self.notifications.labels(channel=channel, outcome=outcome)
        if self._database is not None:
            self._database.watch_channels(names)

    def notification(self, channel: str, outcome: Outcome) -> None:
        self.notifications.labels(channel=channel, outcome=outcome).inc()

    def evaluation(self, seconds: float) -> None:
        self.evaluation_seconds.observe(seconds)

    def evaluation_share(self, models: int, evaluators: int) -> None:
        self.evaluation_models.set(models)
        self.evaluators.set(evaluators)

    def evaluations_missed(self, ticks: int) -> None:
        self.evaluations_missed_total.inc(ticks)

    def escalations_ran(self, lateness: Iterable[timedelta]) -> None:
        """Record the steps of one committed escalation sweep (a rolled-back sweep runs them again,
        so the caller records only after its commit and each step is counted once)."""
        for late in lateness:
            self.escalation_lateness_seconds.observe(max(late.total_seconds(), 0.0))

    def api_call(self, api: Api, method: str, seconds: float) -> None:
        """``method``: the Slack Web API method (``chat.postMessage``) or the PagerDuty event action
        (``trigger``); a small fixed set either way, so the label's cardinality stays bounded."""
        self.api_seconds.labels(api=api, method=method).observe(seconds)

    def rule_evaluation_errors(self, rule: str, models: int) -> None:
        """``models`` evaluations of ``rule`` raised in one pass (:mod:`bot.evaluation.rule_errors`);
        the label's cardinality is the number of rules."""
        self.rule_evaluation_errors_total.labels(rule=rule).inc(models)

    def source_query(self, query: str, ok: bool, last_success: datetime | None, seconds: float, series: int) -> None:
        self.source_query_up.labels(query).set(1 if ok else 0)
        self.source_query_last_success.labels(query).set(last_success.timestamp() if last_success else 0)
        self.source_query_seconds.labels(query).set(seconds)
        self.source_query_series.labels(query).set(series)

    def exposition(self) -> bytes:
        """Everything, in the text format ``GET /metrics`` answers with."""
        return generate_latest(self.registry)


class DatabaseCollector(Collector):
    """Gauges computed from the database when scraped (see the module docstring for why).

    If the database cannot be read, the scrape still succeeds with the in-process metrics and
    ``incident_bot_database_up 0``: the moment the database is down is the moment the rest of
    the page (retries climbing, evaluations failing) matters most.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._channels: tuple[str, ...] = ()

    def watch_channels(self, channels: Sequence[str]) -> None:
        self._channels = tuple(dict.fromkeys((*self._channels, *channels)))

    def describe(self) -> Iterator[Metric]:
        """Names only, without touching the database: the registry asks at registration time."""
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        alerts, depth, failed, up = self._families()
        try:
            counts, pending, failures = self._query()
        except SQLAlchemyError as exc:
            log.warning("GET /metrics: cannot read the database for the alert and outbox gauges: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        # every known pair, so an empty database reads 0 rather than nothing; then any pair outside
        # the known sets (a row written by a newer release), so no open alert goes uncounted
        known = [(state.value, severity.value) for state in OPEN_STATES for severity in Severity]
        for pair in [*known, *sorted(counts.keys() - set(known))]:
            alerts.add_metric(list(pair), float(counts.get(pair, 0)))
        for channel in sorted({*self._channels, *pending}):
            depth.add_metric([channel], float(pending.get(channel, 0)))
        for channel in sorted({*self._channels, *failures}):
            failed.add_metric([channel], float(failures.get(channel, 0)))
        up.add_metric([], 1.0)
        yield from (alerts, depth, failed, up)

    def _query(self) -> tuple[dict[tuple[str, str], int], dict[str, int], dict[str, int]]:
        open_states = [state.value for state in OPEN_STATES]
        with open_session(self._engine) as s:
            by_state = s.exec(
                select(AlertRow.state, AlertRow.severity, func.count())
                .where(col(AlertRow.state).in_(open_states))
                .group_by(col(AlertRow.state), col(AlertRow.severity))
            ).all()
            by_channel = {
                status: dict(
                    s.exec(
                        select(OutboxRow.channel, func.count())
                        .where(OutboxRow.status == status)
                        .group_by(col(OutboxRow.channel))
                    ).all()
                )
                for status in (OUTBOX_PENDING, OUTBOX_FAILED)
            }
        alerts = {(state, severity): n for state, severity, n in by_state}
        return alerts, by_channel[OUTBOX_PENDING], by_channel[OUTBOX_FAILED]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "incident_bot_alerts", "Open alerts by state and severity.", labels=["state", "severity"]
            ),
            GaugeMetricFamily(
                "incident_bot_outbox_depth", "Notifications waiting in the outbox, by channel.", labels=["channel"]
            ),
            GaugeMetricFamily(
                "incident_bot_outbox_failed",
                "Notifications that failed for good, by channel (incident-bot outbox list / retry / drop).",
                labels=["channel"],
            ),
            GaugeMetricFamily("incident_bot_database_up", "1 when this scrape could read the database, else 0."),
        )


def times_evaluation(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Decorate :meth:`AlertService.evaluate_once`: observe its duration in the instance's
    ``_metrics``, whichever way it returns or raises.

    A decorator rather than timing code inside the method, because that method has several
    exits and is under active change: this way it carries one line for its metric.
    """

    @functools.wraps(method)
    def timed(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        metrics = getattr(self, "_metrics", None)
        if not isinstance(metrics, Metrics):
            return method(self, *args, **kwargs)
        started = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            metrics.evaluation(time.perf_counter() - started)

    return timed


def metrics_routes(metrics: Metrics) -> list[Route]:
    """``GET /metrics``. A plain (sync) endpoint on purpose: Starlette runs it in its thread pool,
    so the scrape's database queries never block the event loop that serves Slack."""

    def scrape(_request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return [Route(PATH, scrape, methods=["GET"])]
