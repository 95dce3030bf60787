"""The PromQL pull against a fake Prometheus: every answer shape, error, timeout and no-data case.

The fake serves real HTTP on 127.0.0.1 so the puller's httpx client, timeouts and URL handling
are exercised as against a real server; the answers are the shapes Prometheus' HTTP API documents
(``{"status": "error", "errorType": "bad_data", "error": ...}`` with 400, 422 or 503)."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bot.clock import FrozenClock
from bot.config.loader import Config, load_config
from bot.config.source_schema import PrometheusQuery
from bot.metrics.store import Point
from bot.sources.prometheus import CONCURRENCY, PrometheusPuller, Pulled, interpret, shown_url
from tests.sources.helpers import NOW, config_dir
from tests.support.ports import free_port

Answer = tuple[int, Any, float]
"""(HTTP status, JSON body or raw bytes, delay in seconds)."""


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    result = [{"metric": labels, "value": [1767603600.0, value]} for labels, value in series]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def failure(status: str, error: str) -> dict[str, Any]:
    return {"status": "error", "errorType": status, "error": error}


class FakePrometheus:
    """``GET /api/v1/query``: answers looked up by the PromQL text; records every request."""

    def __init__(self, answers: dict[str, Answer], port: int = 0, *, tls: ssl.SSLContext | None = None) -> None:
        self.answers = answers
        self.requests: list[dict[str, list[str]]] = []
        self.headers: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                params = parse_qs(url.query)
                fake.requests.append({"path": [url.path], **params})
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                status, body, delay = fake.answers.get(params.get("query", [""])[0], (404, b"404 page not found", 0))
                time.sleep(delay)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SECTION = """
prometheus:
  interval: 5s
  timeout: 500ms
  queries:
    - {model: support-bot, metric: daily_cost_usd, query: cost}
    - {model: "*", metric: p99_latency_ms, query: latency}
    - {model: fraud-detector-v2, metric: current_accuracy, query: accuracy}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return load_config(config_dir(tmp_path_factory.mktemp("prom"), SECTION))


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    server = FakePrometheus({})
    yield server
    server.close()


class Recorder:
    def __init__(self) -> None:
        self.points: list[Point] = []

    def __call__(self, points: list[Point]) -> int:
        self.points.extend(points)
        return len(points)


def pull(url: str, config: Config) -> tuple[list[Pulled], list[Point]]:
    recorder = Recorder()
    outcomes = PrometheusPuller(url, lambda: config, recorder, FrozenClock(NOW)).run_once()
    return outcomes, recorder.points


def by_name(outcomes: list[Pulled]) -> dict[str, Pulled]:
    return {o.query.name: o for o in outcomes}


def test_values_are_stored_as_samples_at_the_bots_clock(fake: FakePrometheus, config: Config) -> None:
    fake.answers.update(
        {
            "cost": (200, {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "455.2"]}}, 0),
            "latency": (200, vector(({"model": "support-bot"}, "6100"), ({"model": "fraud-detector-v2"}, "80")), 0),
            "accuracy": (200, vector(({"job": "eval"}, "0.91")), 0),
        }
    )
    outcomes, points = pull(fake.url + "/", config)
    assert all(o.error is None for o in outcomes), outcomes
    assert sorted(points) == sorted(
        [
            ("support-bot", "daily_cost_usd", NOW, 455.2),
            ("fraud-detector-v2", "p99_latency_ms", NOW, 80.0),
            ("support-bot", "p99_latency_ms", NOW, 6100.0),
            ("fraud-detector-v2", "current_accuracy", NOW, 0.91),
        ]
    )
    request = fake.requests[0]
    assert request["path"] == ["/api/v1/query"] and request["timeout"] == ["0.5"]  # Prometheus aborts first


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ((400, failure("bad_data", 'invalid parameter "query": 1:6: parse error: unexpected <EOF>'), 0), "parse error"),
        ((422, failure("execution", "expanding series: context canceled"), 0), "(execution)"),
        ((503, failure("timeout", "query timed out in expression evaluation"), 0), "query timed out"),
        ((502, b"<html>Bad Gateway</html>", 0), "HTTP 502 with a body that is not Prometheus JSON"),
        ((200, {"status": "success", "data": {"resultType": "matrix", "result": []}}, 0), "range vector"),
        ((200, {"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}, 0), "a string"),
        ((200, vector(({}, "1"), ({}, "2")), 0), "returns 2 series"),
        ((200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}, 0), "histogram"),
        ((200, vector(({}, "abc")), 0), "malformed vector result"),
        ((200, b"[]", 0), "unexpected body"),
        ((200, {"status": "success"}, 0), "without a vector or scalar"),
        ((200, vector(({}, "1")), 1.7), "no answer within 0.5 s"),
    ],
)
def test_a_failing_query_stores_nothing_and_says_why(
    fake: FakePrometheus, config: Config, answer: Answer, says: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.answers["cost"] = answer
    fake.answers["accuracy"] = (200, vector(({}, "0.9")), 0)
    with caplog.at_level(logging.WARNING, logger="bot.sources.prometheus"):
        outcomes, points = pull(fake.url, config)
    failed = by_name(outcomes)["support-bot/daily_cost_usd"]
    assert failed.error is not None and says in failed.error, failed.error
    assert ("fraud-detector-v2", "current_accuracy", NOW, 0.9) in points  # the other queries still ran
    assert not any(p[1] == "daily_cost_usd" for p in points)
    logged = [r.getMessage() for r in caplog.records]
    assert any("support-bot/daily_cost_usd" in m and says in m and "(query: cost)" in m for m in logged), logged


@pytest.mark.parametrize(
    "answer",
    [
        vector(),
        vector(({}, "NaN")),
        vector(({}, "+Inf")),
        {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "-Inf"]}},
    ],
)
def test_empty_nan_and_infinite_results_are_no_data(fake: FakePrometheus, config: Config, answer: Any) -> None:
    fake.answers["cost"] = (200, answer, 0)
    outcomes, points = pull(fake.url, config)
    cost = by_name(outcomes)["support-bot/daily_cost_usd"]
    assert cost.error is None and cost.values == {}
    assert points == []


def test_per_model_series_skip_what_names_no_known_model(fake: FakePrometheus, config: Config) -> None:
    fake.answers["latency"] = (
        200,
        vector(
            ({"model": "support-bot"}, "100"),
            ({"model": "support-bot"}, "200"),  # two values for one model: which? neither
            ({"model": "not-configured"}, "1"),
            ({"model": "bad name!"}, "1"),
            ({"job": "x"}, "1"),
            ({"model": "fraud-detector-v2"}, "NaN"),
        ),
        0,
    )
    outcomes, _ = pull(fake.url, config)
    latency = by_name(outcomes)["*/p99_latency_ms"]
    assert latency.error is None and latency.values == {}
    notes = " | ".join(latency.notes)
    for expected in (
        "several series for model 'support-bot'",
        "'not-configured' is not defined",
        "valid model",
        "'model' label",
    ):
        assert expected in notes, notes


def test_warnings_are_kept_as_notes() -> None:
    query = PrometheusQuery(model="support-bot", metric="daily_cost_usd", query="cost")
    body = json.dumps({**vector(({}, "3")), "warnings": ["PromQL info: metric might not be a counter"]}).encode()
    pulled = interpret(query, 200, body, known_models=None)
    assert pulled.values == {"support-bot": 3.0} and "might not be a counter" in pulled.notes[0]


def test_a_scalar_cannot_name_models() -> None:
    query = PrometheusQuery(model="*", metric="daily_cost_usd", query="1")
    body = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "1"]}}).encode()
    assert "set model: to one model" in (interpret(query, 200, body, known_models=None).error or "")


def test_an_unreachable_server_ends_the_run_with_one_log_line(config: Config, caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://user:secret@127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING, logger="bot.sources.prometheus"):
        outcomes, points = pull(url, config)
    assert outcomes == [] and points == []
    (record,) = caplog.records
    assert "cannot reach http://127.0.0.1:" in record.getMessage() and "3 queries not run" in record.getMessage()
    assert "secret" not in record.getMessage()


def test_without_a_prometheus_section_nothing_runs(fake: FakePrometheus, tmp_path: Path) -> None:
    outcomes, points = pull(fake.url, load_config(config_dir(tmp_path)))
    assert outcomes == [] and points == [] and fake.requests == []


def test_shown_url_hides_credentials() -> None:
    assert shown_url("https://bot:p%40ss@prom.internal:9090/prometheus") == "https://prom.internal:9090/prometheus"
    assert shown_url("http://prom:9090") == "http://prom:9090"


def test_a_reloaded_query_applies_on_the_next_run(fake: FakePrometheus, tmp_path: Path) -> None:
    """The configuration is read each run: a reload (SIGHUP) needs no restart."""
    section = "prometheus:\n  queries: [{model: support-bot, metric: x, query: %s}]\n"
    first = load_config(config_dir(tmp_path / "a", section % "one"))
    second = load_config(config_dir(tmp_path / "b", section % "two"))
    fake.answers.update({"one": (200, vector(({}, "1")), 0), "two": (200, vector(({}, "2")), 0)})
    current = [first]
    recorder = Recorder()
    puller = PrometheusPuller(fake.url, lambda: current[0], recorder, FrozenClock(NOW))
    puller.run_once()
    current[0] = second
    puller.run_once()
    assert [p[3] for p in recorder.points] == [1.0, 2.0]
    assert second.prometheus is not None and second.prometheus.interval == timedelta(seconds=30)


def test_a_lasting_problem_is_logged_when_it_starts_and_ends_not_every_run(
    fake: FakePrometheus, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """Every ``interval`` a broken query would otherwise add a warning: the log would drown."""
    fake.answers.update({"cost": (400, failure("bad_data", "parse error"), 0), "accuracy": (200, vector(), 0)})
    puller = PrometheusPuller(fake.url, lambda: config, Recorder(), FrozenClock(NOW))
    with caplog.at_level(logging.INFO, logger="bot.sources.prometheus"):
        for _ in range(3):
            puller.run_once()
        fake.answers["cost"] = (200, vector(({}, "1")), 0)
        puller.run_once()
    cost = [r for r in caplog.records if "support-bot/daily_cost_usd" in r.getMessage()]
    assert [(r.levelname, "parse error" in r.getMessage()) for r in cost] == [("WARNING", True), ("INFO", False)]
    assert "works again" in cost[1].getMessage()


def test_an_unreachable_server_is_logged_once_until_it_answers_again(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    puller = PrometheusPuller(f"http://127.0.0.1:{port}", lambda: config, Recorder(), FrozenClock(NOW))
    with caplog.at_level(logging.INFO, logger="bot.sources.prometheus"):
        puller.run_once()
        puller.run_once()
        server = FakePrometheus({}, port=port)  # the server comes up
        try:
            puller.run_once()
        finally:
            server.close()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and "prometheus:" in r.getMessage()]
    assert len(messages) == 2 and "cannot reach" in messages[0] and "answers again" in messages[1], messages


def test_queries_are_asked_together_and_stored_in_the_order_configured(tmp_path: Path) -> None:
    """Prometheus evaluates several queries while the bot parses and stores another: a pull
    waits for the slowest few, not the sum. The answers are stored in the configuration's order
    whatever order they arrive in, so logs and stored values read the same every pull."""
    metrics = ("daily_cost_usd", "p99_latency_ms", "current_accuracy", "predictions_last_hour")
    assert 1 < CONCURRENCY <= len(metrics)
    queries = "".join(f"    - {{model: support-bot, metric: {m}, query: q{i}}}\n" for i, m in enumerate(metrics))
    config = load_config(config_dir(tmp_path, f"prometheus:\n  queries:\n{queries}"))
    in_flight = threading.Barrier(CONCURRENCY, timeout=10)  # broken unless that many are asked at once
    answered = [threading.Event() for _ in metrics]

    def answer(request: httpx.Request) -> httpx.Response:
        index = int(request.url.params["query"][1:])
        if index < CONCURRENCY:
            in_flight.wait()
        if index + 1 < len(metrics):  # the last query answers first, then each one before it
            assert answered[index + 1].wait(10)
        answered[index].set()
        return httpx.Response(200, json=vector(({}, str(index))))

    recorder = Recorder()
    puller = PrometheusPuller(
        "http://prometheus.test", lambda: config, recorder, FrozenClock(NOW), transport=httpx.MockTransport(answer)
    )
    outcomes = puller.run_once()
    assert [o.error for o in outcomes] == [None] * len(metrics)
    assert [(p[1], p[3]) for p in recorder.points] == [(m, float(i)) for i, m in enumerate(metrics)]
