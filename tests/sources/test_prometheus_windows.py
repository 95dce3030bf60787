"""Windowed terms over pulled metrics asked of Prometheus (issue 20, point 2): the puller runs each
term's PromQL beside the configured queries, stores the answer under the term's name, shards it
like its query, and a rule over it fires with the value a real Prometheus computes while the
pulled metric keeps no sample rows.

The real-Prometheus test skips, with the reason, where ``/usr/bin/prometheus`` is missing;
``REQUIRE_PROMETHEUS=1`` turns that skip into a failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot.alerts.lifecycle import AlertState
from bot.clock import FrozenClock, SystemClock
from bot.config.loader import Config, load_config
from bot.metrics import store as metric_store
from bot.service import AlertService, every_channel
from bot.sources.prometheus import PrometheusPuller
from bot.sources.prometheus_shards import SHARDS, WHOLE, with_shard
from bot.storage.database import make_engine, migrate
from bot.storage.database import session as open_session
from bot.storage.tables import MetricSampleRow
from tests.sources.helpers import NOW, PROMETHEUS, Exporter, require_binary, running_prometheus, wait_until
from tests.sources.test_prometheus_client import FakePrometheus, Recorder, failure, vector

LATENCY = 'max by (model) (lat{model=~"{shard}"})'
TERM = "avg_over_time_p99_latency_ms_1h"
TERM_QUERY = f"avg_over_time(({LATENCY})[1h:5s])"
MODELS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]


def own_config(root: Path, rules: str, queries: str, *, extra: str = "", interval: str = "5s") -> Config:
    (root / "rules").mkdir(parents=True)
    (root / "runbooks").mkdir()
    (root / "runbooks" / "default.md").write_text("# {model}\n")
    (root / "rules" / "all.yaml").write_text(
        f"settings: {{accept_unknown_models: true}}\nrules:\n{rules}"
        f"prometheus:\n  interval: {interval}\n  timeout: 1s\n{extra}  queries:\n{queries}",
        encoding="utf-8",
    )
    return load_config(root)


def latency_config(root: Path, *, extra: str = "") -> Config:
    rule = "  - {name: slow, condition: 'avg_over_time(p99_latency_ms, \"1h\") > 100', severity: P3, title: slow}\n"
    query = f"    - {{model: '*', metric: p99_latency_ms, query: '{LATENCY}'}}\n"
    return own_config(root, rule, query, extra=extra)


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    server = FakePrometheus({})
    yield server
    server.close()


def test_a_windowed_term_is_asked_beside_its_query_and_stored_under_its_name(
    fake: FakePrometheus, tmp_path: Path
) -> None:
    fake.answers[with_shard(LATENCY, WHOLE)] = (200, vector(({"model": "alpha"}, "90")), 0)
    fake.answers[with_shard(TERM_QUERY, WHOLE)] = (200, vector(({"model": "alpha"}, "120.5")), 0)
    config = latency_config(tmp_path / "config")
    recorder = Recorder()

    outcomes = PrometheusPuller(fake.url, lambda: config, recorder, FrozenClock(NOW)).run_once()

    assert [(o.query.metric, o.error) for o in outcomes] == [("p99_latency_ms", None), (TERM, None)]
    assert recorder.points == [("alpha", "p99_latency_ms", NOW, 90.0), ("alpha", TERM, NOW, 120.5)]


def test_a_terms_query_too_big_for_one_answer_is_asked_in_shards_like_its_query(
    fake: FakePrometheus, tmp_path: Path
) -> None:
    fake.answers[with_shard(LATENCY, WHOLE)] = (200, vector(({"model": "alpha"}, "90")), 0)
    every = vector(*(({"model": m}, "1") for m in MODELS))
    fake.answers[with_shard(TERM_QUERY, WHOLE)] = (200, every, 0)
    for shard in SHARDS:
        first = shard[1]  # "[aA].*" → a
        answer = vector(*(({"model": m}, str(len(m))) for m in MODELS if m.startswith(first)))
        fake.answers[with_shard(TERM_QUERY, shard)] = (200, answer, 0)
    config = latency_config(tmp_path / "config", extra="  max_series: 5\n")
    recorder = Recorder()

    [_, term] = PrometheusPuller(fake.url, lambda: config, recorder, FrozenClock(NOW)).run_once()

    assert term.error is None and term.notes[0] == "asked in 27 shards: 6 series, over max_series 5"
    assert term.values == {m: float(len(m)) for m in MODELS}
    assert 'avg_over_time((max by (model) (lat{model=~"[cC].*"}))[1h:5s])' in [r["query"][0] for r in fake.requests]


def test_a_failing_term_query_is_watched_like_a_configured_one(fake: FakePrometheus, tmp_path: Path) -> None:
    fake.answers[with_shard(LATENCY, WHOLE)] = (200, vector(({"model": "alpha"}, "90")), 0)
    fake.answers[with_shard(TERM_QUERY, WHOLE)] = (422, failure("execution", "query too expensive"), 0)
    config = latency_config(tmp_path / "config")
    recorder = Recorder()
    puller = PrometheusPuller(fake.url, lambda: config, recorder, FrozenClock(NOW))

    puller.run_once()

    assert recorder.points == [("alpha", "p99_latency_ms", NOW, 90.0)]  # the term is no data, its metric is kept
    record = puller.health_report()[f"*/{TERM}"]
    assert record["failures_in_a_row"] == 1 and "query too expensive" in record["last_error"]


# ---------------------------------------------------------------------------- a real Prometheus

QUALITY = 'quality_score{model="support-bot"}'
QUALITY_TERM = "avg_over_time_quality_1h"


def quality_config(root: Path) -> Config:
    rule = (
        "  - {name: quality_drop, condition: 'avg_over_time(quality, \"1h\") < 0.8', severity: P3,"
        " title: 'quality {avg_over_time_quality_1h:.3f}', cooldown: 0s}\n"
    )
    query = "    - {model: '*', metric: quality, query: 'max by (model) (quality_score)'}\n"
    return own_config(root, rule, query, interval="1s")


def answer(url: str, query: str) -> list[float]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
    return [float(series["value"][1]) for series in body["data"]["result"]]


def test_a_rule_over_a_pulled_gauge_fires_with_prometheus_average_and_stores_no_samples(tmp_path: Path) -> None:
    """On SQLite alone: the stores' differences are pinned in tests/evaluation/test_promql_windowed_pass.py."""
    require_binary(PROMETHEUS)
    config = quality_config(tmp_path / "config")
    engine = make_engine(f"sqlite:///{tmp_path}/bot.db")
    migrate(engine)
    service = AlertService(engine, SystemClock(), lambda: config, every_channel(["recording"]))
    with Exporter() as exporter:
        exporter.set(QUALITY, 0.3)
        with running_prometheus(tmp_path, exporter, scrape="500ms") as url:
            puller = PrometheusPuller(url, lambda: config, service.ingest_pulled, SystemClock())
            wait_until(lambda: answer(url, f"count_over_time({QUALITY}[1h])") >= [10.0], timeout=30, what="10 scrapes")
            exporter.set(QUALITY, 0.95)
            wait_until(lambda: answer(url, f"min_over_time({QUALITY}[3s])") == [0.95], timeout=10, what="0.95 scraped")
            puller.run_once()  # the gauge is live: its newest value is 0.95, which breaches nothing
            exporter.remove(QUALITY)
            # once the series is stale its hour's average no longer moves, so it can be compared
            wait_until(lambda: answer(url, QUALITY) == [], timeout=10, what="the series to go stale")
            [outcome] = [o for o in puller.run_once() if o.query.metric == QUALITY_TERM]
            [computed] = answer(url, "avg_over_time((max by (model) (quality_score))[1h:1s])")

    assert outcome.error is None and outcome.values == {"support-bot": computed}
    assert 0.3 < computed < 0.8
    [change] = service.evaluate_once().transitions
    assert (change.alert.rule, change.alert.state) == ("quality_drop", AlertState.FIRING)
    assert change.alert.values == {QUALITY_TERM: computed}
    with open_session(engine) as s:
        assert s.exec(select(MetricSampleRow)).all() == []
        assert metric_store.latest(s)["support-bot"]["quality"].value == 0.95
    engine.dispose()
