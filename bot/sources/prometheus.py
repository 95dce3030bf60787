"""Pulling metrics from Prometheus (SPEC §2 source b): one PromQL instant query per metric.

Every ``interval`` each query of the ``prometheus:`` section runs against ``PROMETHEUS_URL``'s
``GET /api/v1/query``, and its value is stored through :meth:`AlertService.ingest` exactly like a
pushed sample, so rules, ``for:``, SLOs and staleness treat pulled and pushed metrics alike. A
windowed term over a pulled metric (``avg_over_time(m, "1h")``) is one more query, written in PromQL
from the metric's (:mod:`bot.config.promql_windows`), whose value is stored under the term's name;
it is run, sharded, logged and watched like the configured queries.

*No data* is never a crash and never a value: an empty result, ``NaN`` or ``±Inf``, a refused or
timed-out query all store nothing, so the metric keeps its last sample until ``stale_after`` turns
it into no data -- the same rule as a push client that stops sending. A dead Prometheus must not
look like a recovery, and one bad query must not stop the others.

:func:`interpret` (an answer → values by model, or the reason there are none) is pure, so every
answer shape is tested without a server; :class:`PrometheusPuller` is the scheduler job around it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import ssl
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx

from bot.alerts.lifecycle import Alert, Transition
from bot.clock import Clock
from bot.config.durations import humanize
from bot.config.loader import Config
from bot.config.promql_windows import term_queries
from bot.config.source_schema import ANY_MODEL, PrometheusQuery
from bot.metrics.store import Point
from bot.observability import Metrics
from bot.settings import Settings
from bot.sources.prometheus_shards import SHARDS, WHOLE, splits, with_shard
from bot.sources.source_health import QueryHealth, source_alerts

log = logging.getLogger(__name__)

QUERY_PATH = "/api/v1/query"
DEFAULT_INTERVAL = timedelta(seconds=30)
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_NOTES = 5
CONCURRENCY = 4
"""Queries of one pull in flight at once. Asked one by one, a 10,000-model pull of 20 queries
waited 2.6 s, most of it on Prometheus' own evaluation, with this process idle."""
"""Skipped series listed per query and run; beyond that the note says how many more."""

SourcePlan = Callable[[Config, Mapping[str, Alert], Mapping[str, datetime], datetime], list[Transition]]
"""The service's external plan (:data:`bot.service.ExternalPlan`): the source alerts to record."""
Job = tuple[Callable[[], object], str, timedelta]
"""A scheduler job: what to run, its name, its interval."""


@dataclass(frozen=True)
class Pulled:
    """What one query gave this run: finite values by model, or the reason there are none."""

    query: PrometheusQuery
    values: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    """Why the query gave nothing (Prometheus' own message where it sent one)."""
    notes: tuple[str, ...] = ()
    """Series left out and Prometheus warnings: worth a log line, not a failure."""
    series: int = 0
    """Series in the answer, kept or not (``max_series`` compares it)."""


@dataclass
class _Reach:
    """Whether one pull has found the server unreachable, shared by its query threads."""

    problem: str | None = None


class PrometheusUnreachable(Exception):
    """The server did not answer at all: the remaining queries of the run would fail the same way."""


def _timed(query: PrometheusQuery, reach: _Reach, run: Callable[[], Pulled]) -> tuple[Pulled, float, bool]:
    """One query on a pool thread: its outcome, its seconds, and whether it ran (a query after
    the server proved unreachable is not asked: it would wait for the same failure)."""
    started = time.monotonic()
    if reach.problem is None:
        try:
            return run(), time.monotonic() - started, True
        except PrometheusUnreachable as exc:
            reach.problem = reach.problem or str(exc)
    return Pulled(query, error=f"cannot reach Prometheus ({reach.problem})"), time.monotonic() - started, False


def interpret(query: PrometheusQuery, status_code: int, body: bytes, *, known_models: Collection[str] | None) -> Pulled:
    """Turn one ``/api/v1/query`` answer into values. ``known_models`` None accepts any model name."""
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Pulled(query, error=f"HTTP {status_code} with a body that is not Prometheus JSON: {_snippet(body)}")
    if not isinstance(envelope, dict):
        return Pulled(query, error=f"HTTP {status_code} with an unexpected body: {_snippet(body)}")
    if envelope.get("status") != "success" or not 200 <= status_code < 300:
        kind = envelope.get("errorType") or f"HTTP {status_code}"
        message = envelope.get("error") or _snippet(body)
        return Pulled(query, error=f"Prometheus refused the query ({kind}): {message}")
    notes = tuple(f"Prometheus warning: {w}" for w in envelope.get("warnings") or [])
    data = envelope.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    try:
        if kind == "scalar":
            return _scalar(query, result, notes)
        if kind == "vector" and isinstance(result, list):
            return _vector(query, result, notes, known_models)
    except (ValueError, TypeError, AttributeError) as exc:
        return Pulled(query, error=f"malformed {kind} result: {exc}", notes=notes)
    if kind == "matrix":
        return Pulled(
            query,
            error="the query returns a range vector; an instant query needs one value per series: "
            "wrap the range in a function such as rate(...[5m]) or max_over_time(...[5m])",
        )
    if kind == "string":
        return Pulled(query, error="the query returns a string; it must return a number")
    return Pulled(query, error=f"unexpected answer without a vector or scalar result: {_snippet(body)}")


def _scalar(query: PrometheusQuery, result: Any, notes: tuple[str, ...]) -> Pulled:
    if query.model == ANY_MODEL:
        return Pulled(query, error='a scalar has no labels to name a model; set model: to one model instead of "*"')
    value = _number(result)
    if value is None:
        return Pulled(query, notes=(*notes, "the value is NaN or infinite: no data"))
    return Pulled(query, {query.model: value}, notes=notes)


def _vector(query: PrometheusQuery, series: list[Any], notes: tuple[str, ...], known: Collection[str] | None) -> Pulled:
    if query.model != ANY_MODEL:
        if not series:
            return Pulled(query, notes=notes)  # an empty result is no data, not an error
        if len(series) > 1:
            return Pulled(
                query,
                error=f"the query returns {len(series)} series; a query for one model must return one: "
                f'aggregate them (sum, max, avg ...) or use model: "*" with a {query.model_label!r} label',
                notes=notes,
            )
        value = _number(_sample(series[0]))
        if value is None:
            return Pulled(query, notes=(*notes, "the value is NaN or infinite: no data"))
        return Pulled(query, {query.model: value}, notes=notes)
    values: dict[str, float] = {}
    skipped: list[str] = []
    seen: set[str] = set()
    repeated: set[str] = set()
    for one in series:
        labels = one.get("metric") or {}
        model = labels.get(query.model_label)
        if not isinstance(model, str) or not model:
            skipped.append(f"a series without a {query.model_label!r} label ({_labels(labels)})")
        elif not MODEL_NAME.match(model):
            skipped.append(f"{query.model_label}={model!r} is not a valid model name")
        elif known is not None and model not in known:
            skipped.append(f"model {model!r} is not defined under models:")
        elif model in seen:
            repeated.add(model)  # which of two values is the model's? neither: no data
        elif (value := _number(_sample(one))) is not None:
            seen.add(model)
            values[model] = value
        else:
            seen.add(model)
    values = {m: v for m, v in values.items() if m not in repeated}
    skipped += [f"several series for model {m!r}; aggregate by {query.model_label}" for m in sorted(repeated)]
    if len(skipped) > MAX_NOTES:
        skipped = [*skipped[:MAX_NOTES], f"and {len(skipped) - MAX_NOTES} more series"]
    return Pulled(query, values, notes=(*notes, *(f"skipped {s}" for s in skipped)), series=len(series))


def _sample(series: Any) -> Any:
    if "value" not in series:
        raise ValueError("a native histogram sample; query a number, e.g. histogram_quantile() or histogram_sum()")
    return series["value"]


def _number(pair: Any) -> float | None:
    """A ``[time, "text"]`` sample's value; None for NaN and ±Inf, which mean "no value" here."""
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str)):
        raise ValueError(f"expected [time, value], got {_snippet(json.dumps(pair).encode())}")
    value = float(pair[1])
    return value if math.isfinite(value) else None


def _labels(labels: Mapping[str, Any]) -> str:
    return _snippet(", ".join(f"{k}={v}" for k, v in sorted(labels.items())).encode() or b"no labels", 120)


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown_url(url: str) -> str:
    """The URL without user and password, for logs."""
    return re.sub(r"//[^/@]*@", "//", url)


class PrometheusPuller:
    """The scheduler job: run every query once, store what came back, log what did not."""

    def __init__(
        self,
        url: str,
        config: Callable[[], Config],
        ingest: Callable[[list[Point]], int],
        clock: Clock,
        *,
        alerts: Callable[[SourcePlan], object] | None = None,
        metrics: Metrics | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``alerts``: records the source alerts a plan decides (the service's ``apply_external``)."""
        self._endpoint = url.rstrip("/") + QUERY_PATH
        self._config = config
        self._ingest = ingest
        self._clock = clock
        self._alerts = alerts
        self._metrics = metrics
        self._transport = transport
        self.health: dict[str, QueryHealth] = {}
        """Each configured query's record (:mod:`bot.sources.source_health`), for ``/healthz``."""
        self._raised: set[str] | None = None
        """Queries whose alert this process knows is open (None: not asked yet since the start)."""
        self._reported: dict[str, str] = {}
        """What was last logged per query (and for the server): a problem that persists is logged
        at WARNING when it starts and at INFO when it ends, not every ``interval``."""

    def job(self) -> Job:
        """The scheduler's job, at the interval the configuration has at start."""
        section = self._config().prometheus
        return self.run_once, "prometheus", section.interval if section else DEFAULT_INTERVAL

    def health_report(self) -> dict[str, dict[str, Any]]:
        """``/healthz``'s per-query detail."""
        return {name: record.to_json() for name, record in self.health.items()}

    def run_once(self) -> list[Pulled]:
        """One pull of every query, and of every windowed term Prometheus evaluates (stored under the
        term's name); the configuration is read each run, so a reload applies at once.

        Up to :data:`CONCURRENCY` queries are in flight while the answers are stored in the order
        of the configuration, each as it comes: Prometheus evaluates the next queries while this
        process parses and stores the last one."""
        current = self._config()
        section = current.prometheus
        if section is None:
            return []
        known = None if current.settings.accept_unknown_models else set(current.models)
        queries = [*section.queries, *term_queries(current)]
        now = self._clock.now()
        outcomes: list[Pulled] = []
        not_run = 0
        # Prometheus is told the timeout, so it aborts the query itself (503) and says why; the
        # client waits one second longer so that answer can still arrive.
        timeout = section.timeout.total_seconds()
        reach = _Reach()
        verify = ssl.create_default_context(cafile=str(section.ca_file)) if section.ca_file is not None else True
        headers = section.request_headers()
        with (
            httpx.Client(timeout=timeout + 1.0, transport=self._transport, headers=headers, verify=verify) as http,
            ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="prometheus") as pool,
        ):
            asked = [
                pool.submit(_timed, query, reach, partial(self._run, http, query, timeout, known, section.max_series))
                for query in queries
            ]
            for answer in asked:
                outcome, seconds, ran = answer.result()
                self._record(outcome, seconds=seconds, now=now)
                if not ran:
                    not_run += 1
                    continue
                outcomes.append(outcome)
                self._log(outcome)
                if outcome.values:
                    self._ingest([(m, outcome.query.metric, now, v) for m, v in sorted(outcome.values.items())])
        if reach.problem is not None:
            self._server(reach.problem, not_run)
        elif outcomes:
            self._server(None, 0)
        self._raise_or_resolve(queries, section.failing_after)
        return outcomes

    def _record(self, outcome: Pulled, *, seconds: float, now: datetime) -> None:
        name = outcome.query.name
        before = self.health.get(name) or QueryHealth(outcome.query)
        after = before.after(error=outcome.error, series=len(outcome.values), seconds=seconds, now=now)
        self.health[name] = replace(after, query=outcome.query)
        if self._metrics is not None:
            self._metrics.source_query(name, after.ok, after.last_success, after.seconds, after.series)

    def _raise_or_resolve(self, queries: list[PrometheusQuery], failing_after: int) -> None:
        """Record the source alerts: after every pull while a query has failed ``failing_after``
        times in a row (its alert may have been resolved by hand meanwhile), once when the last one
        works again, and at the first pull after a start (an alert left open by an earlier process)."""
        self.health = {q.name: self.health[q.name] for q in queries if q.name in self.health}
        failing = {name for name, record in self.health.items() if record.failures >= failing_after}
        if self._alerts is None or (not failing and self._raised == set()):
            return
        records = dict(self.health)

        def plan(
            config: Config, open_alerts: Mapping[str, Alert], _resolved: Mapping[str, datetime], at: datetime
        ) -> list[Transition]:
            return source_alerts(records, failing_after=failing_after, config=config, open_alerts=open_alerts, now=at)

        try:
            self._alerts(plan)
        except Exception:  # the database may be away: decided again after the next pull
            log.exception("prometheus: could not record the metric source alerts; trying again next pull")
            return
        if failing - (self._raised or set()):
            raised = ", ".join(sorted(failing))
            log.warning("prometheus: %s failed %d pulls in a row: alert raised", raised, failing_after)
        self._raised = failing

    def _run(
        self,
        http: httpx.Client,
        query: PrometheusQuery,
        timeout: float,
        known: Collection[str] | None,
        max_series: int | None,
    ) -> Pulled:
        """One query: whole, and again in shards when its answer is too big (:mod:`.prometheus_shards`)."""
        whole = self._ask(http, query, with_shard(query.query, WHOLE), timeout, known)
        if not splits(query.query, max_series=max_series, series=whole.series, error=whole.error):
            return whole
        why = whole.error or f"{whole.series} series, over max_series {max_series}"
        parts = [self._ask(http, query, with_shard(query.query, shard), timeout, known) for shard in SHARDS]
        failed = next((p for p in parts if p.error is not None), None)
        if failed is not None:
            return replace(failed, error=f"asked in {len(SHARDS)} shards ({why}); a shard failed: {failed.error}")
        values = {model: value for part in parts for model, value in part.values.items()}
        notes = (f"asked in {len(SHARDS)} shards: {why}", *(note for part in parts for note in part.notes))
        return Pulled(query, values, notes=notes[: MAX_NOTES + 1], series=sum(p.series for p in parts))

    def _ask(
        self, http: httpx.Client, query: PrometheusQuery, text: str, timeout: float, known: Collection[str] | None
    ) -> Pulled:
        try:
            answer = http.get(self._endpoint, params={"query": text, "timeout": f"{timeout:g}"})
        except httpx.TimeoutException:
            waited = humanize(timedelta(seconds=timeout))
            return Pulled(query, error=f"no answer within {waited} (the section's timeout); no data this time")
        except httpx.TransportError as exc:
            raise PrometheusUnreachable(f"{type(exc).__name__}: {exc}") from exc
        return interpret(query, answer.status_code, answer.content, known_models=known)

    def _log(self, outcome: Pulled) -> None:
        name, text = outcome.query.name, outcome.query.query
        state = "\n".join([outcome.error or "", *outcome.notes])
        before = self._reported.get(name, "")
        changed = state != before
        self._reported[name] = state
        if outcome.error is not None:
            log.log(
                logging.WARNING if changed else logging.DEBUG,
                "prometheus query %s failed: %s (query: %s)",
                name,
                outcome.error,
                text,
            )
        elif changed and before.split("\n")[0]:
            log.info("prometheus query %s works again", name)
        for note in outcome.notes:
            log.log(logging.INFO if changed else logging.DEBUG, "prometheus query %s: %s", name, note)
        if outcome.error is None and not outcome.values:
            log.debug("prometheus query %s: no data", name)

    def _server(self, problem: str | None, left: int) -> None:
        before = self._reported.get("", "")
        self._reported[""] = problem or ""
        if problem is not None:
            log.log(
                logging.WARNING if problem != before else logging.DEBUG,
                "prometheus: cannot reach %s (%s); %d queries not run this time, their metrics keep their last "
                "samples until stale_after",
                shown_url(self._endpoint),
                problem,
                left,
            )
        elif before:
            log.info("prometheus: %s answers again", shown_url(self._endpoint))


def prometheus_puller(
    settings: Settings,
    config: Callable[[], Config],
    ingest: Callable[[list[Point]], int],
    clock: Clock,
    *,
    alerts: Callable[[SourcePlan], object] | None = None,
    metrics: Metrics | None = None,
) -> PrometheusPuller | None:
    """The puller when ``PROMETHEUS_URL`` is set (its :meth:`~PrometheusPuller.job` is the scheduler's)."""
    section = config().prometheus
    if not settings.prometheus_url:
        if section is not None:
            log.warning("rules/ has a prometheus: section but PROMETHEUS_URL is not set: its queries are not run")
        return None
    if section is None:
        log.warning("PROMETHEUS_URL is set but rules/ has no prometheus: section: there is nothing to pull yet")
    log.info("pulling metrics from Prometheus at %s", shown_url(settings.prometheus_url))
    return PrometheusPuller(settings.prometheus_url, config, ingest, clock, alerts=alerts, metrics=metrics)
