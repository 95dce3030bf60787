"""``POST /api/v1/metrics`` over HTTP, against a real AlertService on SQLite.

Every rejected request is followed by a check that nothing reached the database: the ingest
API is all-or-nothing (SPEC §6).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bot.clock import FrozenClock
from bot.config.loader import Config, load_config
from bot.metrics.api import metric_routes
from bot.metrics.store import latest
from bot.service import AlertService, every_channel
from bot.settings import Settings
from bot.storage.database import make_engine, migrate
from bot.storage.tables import MetricSampleRow

REPO = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-ingest-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
URL = "/api/v1/metrics"
LIMIT = 4096
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(REPO)


def build(engine: Engine, config: Config, *, token: str | None = TOKEN, limit: int = LIMIT) -> Starlette:
    clock = FrozenClock(NOW)
    service = AlertService(engine, clock, lambda: config, every_channel(["recording"]))
    settings = Settings(ingest_token=SecretStr(token) if token is not None else None, ingest_max_bytes=limit)
    return Starlette(routes=metric_routes(service=service, settings=settings, config=lambda: config, clock=clock))


def new_engine(directory: Path) -> Engine:
    engine = make_engine(f"sqlite:///{directory}/t.db")
    migrate(engine)
    return engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = new_engine(tmp_path)
    yield engine
    engine.dispose()


@pytest.fixture
def client(engine: Engine, config: Config) -> Iterator[TestClient]:
    with TestClient(build(engine, config)) as c:
        yield c


def stored(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(MetricSampleRow)).one())


def post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    content = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(URL, content=content, headers=AUTH if headers is None else headers)


def assert_refused(response: Any, status: int, engine: Engine, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert fragment in response.json()["error"]
    assert stored(engine) == 0


ITEM = {"model": "fraud-detector-v2", "metrics": {"p99_latency_ms": 6100, "current_accuracy": 0.91}}


# --- success -----------------------------------------------------------------------------------


def test_single_object_is_stored(client: TestClient, engine: Engine) -> None:
    response = post(client, ITEM)
    assert response.status_code == 202
    assert response.json() == {"accepted": 2}
    with Session(engine) as s:
        samples = latest(s)
    assert samples["fraud-detector-v2"]["p99_latency_ms"].value == 6100.0
    assert samples["fraud-detector-v2"]["p99_latency_ms"].at == NOW
    assert samples["fraud-detector-v2"]["current_accuracy"].value == 0.91


def test_a_push_of_50_000_samples_is_stored_whole_within_the_default_limit(engine: Engine, config: Config) -> None:
    """2,500 models × 20 metrics in one request, as a metrics relay batches them (issue 20, point 1)."""
    fleet = replace(config, settings=config.settings.model_copy(update={"accept_unknown_models": True}))
    body = [{"model": f"m-{n:04d}", "metrics": {f"g{k:02d}": n + k / 100 for k in range(20)}} for n in range(2_500)]
    content = json.dumps(body, separators=(",", ":"))
    assert len(content) <= Settings().ingest_max_bytes, "fits INGEST_MAX_BYTES' default"
    with TestClient(build(engine, fleet, limit=Settings().ingest_max_bytes)) as client:
        response = client.post(URL, content=content, headers=AUTH)

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 50_000}
    assert stored(engine) == 50_000
    with Session(engine) as s:
        newest = latest(s)
    assert sum(len(metrics) for metrics in newest.values()) == 50_000
    assert newest["m-2499"]["g19"].value == 2499.19


def test_list_with_labels_and_timestamp_is_stored(client: TestClient, engine: Engine) -> None:
    body = [
        {**ITEM, "labels": {"top_drifted_features": "age,income"}, "timestamp": "2026-01-05T09:58:00+01:00"},
        {"model": "support-bot", "metrics": {"daily_cost_usd": 51.5}},
    ]
    response = post(client, body, {**AUTH, "Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 202
    assert response.json() == {"accepted": 4}
    assert stored(engine) == 4
    with Session(engine) as s:
        samples = latest(s)
    drifted = samples["fraud-detector-v2"]["top_drifted_features"]
    assert drifted.value == "age,income"
    assert drifted.at == datetime(2026, 1, 5, 8, 58, tzinfo=UTC)
    assert samples["support-bot"]["daily_cost_usd"].value == 51.5


def test_plus_json_content_type_and_lowercase_scheme(client: TestClient, engine: Engine) -> None:
    headers = {"Authorization": f"bearer {TOKEN}", "Content-Type": "application/vnd.metrics+json"}
    assert post(client, ITEM, headers).status_code == 202
    assert stored(engine) == 2


def test_body_exactly_at_the_limit_is_accepted(client: TestClient, engine: Engine) -> None:
    raw = json.dumps(ITEM).encode()
    body = raw[:-1] + b" " * (LIMIT - len(raw)) + b"}"
    assert len(body) == LIMIT
    assert post(client, body).status_code == 202


def test_only_post_is_routed(client: TestClient) -> None:
    assert client.get(URL, headers=AUTH).status_code == 405


# --- authentication ----------------------------------------------------------------------------


def test_missing_token(client: TestClient, engine: Engine) -> None:
    response = post(client, ITEM, {"Content-Type": "application/json"})
    assert_refused(response, 401, engine, "missing bearer token")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", "Bearer wrong", f"Bearer {TOKEN[:-1]}", "Bearer ünïcode", "Bearer \u00ff"],
)
def test_wrong_token(client: TestClient, engine: Engine, authorization: str) -> None:
    headers = {"Authorization": authorization, "Content-Type": "application/json"}
    response = client.post(URL, content=json.dumps(ITEM).encode(), headers={k: v.encode() for k, v in headers.items()})
    assert_refused(response, 401, engine, "invalid bearer token")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("authorization", [f"Basic {TOKEN}", TOKEN, "Bearer", "Bearer   "])
def test_malformed_authorization(client: TestClient, engine: Engine, authorization: str) -> None:
    response = post(client, ITEM, {"Authorization": authorization, "Content-Type": "application/json"})
    assert_refused(response, 401, engine, "Bearer <INGEST_TOKEN>")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", [None, ""])
def test_without_configured_token_the_endpoint_is_closed(engine: Engine, config: Config, token: str | None) -> None:
    with TestClient(build(engine, config, token=token)) as c:
        for headers in (AUTH, {"Authorization": "Bearer ", "Content-Type": "application/json"}, {}):
            assert_refused(post(c, ITEM, headers), 503, engine, "INGEST_TOKEN is not set")


def test_token_is_never_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    post(client, ITEM)
    post(client, {"bad": 1})
    post(client, ITEM, {"Authorization": f"Bearer {TOKEN}-wrong", "Content-Type": "application/json"})
    assert TOKEN not in caplog.text


# --- size, type --------------------------------------------------------------------------------


def test_content_length_over_the_limit(client: TestClient, engine: Engine) -> None:
    response = post(client, b" " * (LIMIT + 1))
    assert_refused(response, 413, engine, f"Content-Length is {LIMIT + 1} bytes")
    assert "INGEST_MAX_BYTES" in response.json()["error"]


def test_chunked_body_over_the_limit(client: TestClient, engine: Engine) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'[{"model": "fraud-detector-v2", "metrics": {"x": 1}}'
        for _ in range(LIMIT // 50 + 1):
            yield b', {"model": "fraud-detector-v2", "metrics": {"x": 1}}'
        yield b"]"

    response = client.post(URL, content=chunks(), headers=AUTH)
    assert_refused(response, 413, engine, f"more than {LIMIT} bytes")


def test_chunked_body_under_the_limit_is_accepted(client: TestClient, engine: Engine) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "fraud-detector-v2",'
        yield b' "metrics": {"x": 1}}'

    response = client.post(URL, content=chunks(), headers=AUTH)
    assert response.status_code == 202
    assert stored(engine) == 1


def asgi_post(app: Starlette, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, int]:
    """Drive the app directly: returns (status, chunks the app pulled), to see what it read."""
    pulled = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {TOKEN}".encode()), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    return status, pulled


def test_content_length_over_the_limit_is_refused_before_reading(engine: Engine, config: Config) -> None:
    status, pulled = asgi_post(build(engine, config), [(b"content-length", b"99999999")], [b"x" * 1000] * 10)
    assert (status, pulled) == (413, 0)


def test_streamed_body_stops_being_read_at_the_limit(engine: Engine, config: Config) -> None:
    status, pulled = asgi_post(build(engine, config), [], [b" " * 1000] * 1000)
    assert status == 413
    assert pulled == LIMIT // 1000 + 1
    assert stored(engine) == 0


@pytest.mark.parametrize("length", [b"abc", b"-1"])
def test_invalid_content_length(engine: Engine, config: Config, length: bytes) -> None:
    status, _ = asgi_post(build(engine, config), [(b"content-length", length)], [json.dumps(ITEM).encode()])
    assert status == 400
    assert stored(engine) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "", "application/jsonx"])
def test_wrong_content_type(client: TestClient, engine: Engine, content_type: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type
    assert_refused(post(client, ITEM, headers), 415, engine, "application/json")


def test_non_utf8_charset(client: TestClient, engine: Engine) -> None:
    response = post(client, ITEM, {**AUTH, "Content-Type": "application/json; charset=latin-1"})
    assert_refused(response, 415, engine, "charset")


def test_compressed_body(client: TestClient, engine: Engine) -> None:
    response = post(client, ITEM, {**AUTH, "Content-Encoding": "gzip"})
    assert_refused(response, 415, engine, "Content-Encoding")


def test_auth_is_checked_before_content_type_and_size(client: TestClient, engine: Engine) -> None:
    response = post(client, b" " * (LIMIT + 1), {"Content-Type": "text/plain"})
    assert_refused(response, 401, engine, "missing bearer token")


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "invalid JSON at line 1, column 2"),
        (b"", "empty body"),
        (b"[]", "empty list"),
        (b"42", "must be a JSON object or a list"),
        (b'{"model": "fraud-detector-v2", "metrics": {"x": NaN}}', "NaN"),
        (b'{"model": "fraud-detector-v2", "metrics": {"x": 1e999}}', "too large"),
        (b"[" * 4000, "nested too deeply"),
        ({"model": "nope", "metrics": {"x": 1}}, "known models: fraud-detector-v2, support-bot"),
        ({"model": "fraud-detector-v2", "metrics": {"x": True}}, "item 0: field 'metrics.x' must be a number"),
        ({"model": "fraud-detector-v2", "metrics": {}}, "field 'metrics' is empty"),
        ({"model": "fraud-detector-v2", "metrics": {"x": 1}, "extra": 1}, "unknown key"),
        ({"model": "fraud-detector-v2", "metrics": {"x": 1}, "timestamp": "2026-01-05T09:00:00"}, "no timezone"),
        ({"model": "fraud-detector-v2", "metrics": {"x": 1}, "timestamp": "2026-01-05T10:00:00Z"}, "in the future"),
        ({"model": "fraud-detector-v2", "metrics": {"x": 1}, "labels": {"l": 1}}, "must be a string"),
    ],
)
def test_invalid_bodies(client: TestClient, engine: Engine, body: Any, fragment: str) -> None:
    assert_refused(post(client, body), 422, engine, fragment)


def test_one_bad_item_stores_nothing(client: TestClient, engine: Engine) -> None:
    body = [ITEM, ITEM, {"model": "fraud-detector-v2", "metrics": {"x": "7"}}]
    assert_refused(post(client, body), 422, engine, "item 2: field 'metrics.x'")


def test_too_many_items(client: TestClient, engine: Engine, config: Config) -> None:
    with TestClient(build(engine, config, limit=10 * 1024 * 1024)) as big:
        body = [{"model": "support-bot", "metrics": {"x": 1}}] * 10_001
        assert_refused(post(big, body), 422, engine, "too many items: 10001")


def test_storage_failure_is_a_503_not_a_crash(engine: Engine, config: Config) -> None:
    class Broken:
        def ingest(self, points: Any) -> int:
            from sqlalchemy.exc import OperationalError

            raise OperationalError("INSERT", {}, Exception("database is locked"))

    settings = Settings(ingest_token=SecretStr(TOKEN), ingest_max_bytes=LIMIT)
    app = Starlette(
        routes=metric_routes(service=Broken(), settings=settings, config=lambda: config, clock=FrozenClock(NOW))
    )
    with TestClient(app) as c:
        response = post(c, ITEM)
    assert response.status_code == 503
    assert "nothing was stored" in response.json()["error"]


# --- property: no input crashes the endpoint or stores from a refusal --------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # includes NaN and ±inf: json.dumps writes them as bare NaN/Infinity literals
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
good_names = st.sampled_from(["p99_latency_ms", "current_accuracy", "x"]) | st.from_regex(
    r"[a-z][a-z0-9_]{0,8}", fullmatch=True
)
names = good_names | st.sampled_from(["Bad", "", "a" * 101]) | st.text(max_size=12)
numbers = st.integers() | st.floats()  # floats include NaN and ±inf, written as bare NaN/Infinity literals
good_items = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["fraud-detector-v2", "support-bot"]),
        "metrics": st.dictionaries(good_names, numbers, min_size=1, max_size=4),
    },
    optional={
        "labels": st.dictionaries(good_names, st.text(max_size=5), max_size=2),
        "timestamp": st.sampled_from(
            ["2026-01-05T09:00:00Z", "2026-01-05T10:00:00+01:00", "2025-12-31T23:59:59-05:00"]
        ),
    },
)
"""Mostly valid items, so the property also covers the 202 path and near misses (NaN, 1e308*10…)."""
near_items = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["fraud-detector-v2", "support-bot", "nope", ""]) | json_values,
        "metrics": st.dictionaries(names, json_scalars, max_size=4) | json_values,
        "labels": st.dictionaries(names, st.text(max_size=5) | json_scalars, max_size=3) | json_values,
        "timestamp": st.sampled_from(["2026-01-05T09:00:00Z", "2026-01-05T09:00:00", "2030-01-01T00:00:00Z", "x"])
        | json_values,
        "extra": json_values,
    },
)
items = good_items | near_items
bodies = (
    json_values.map(lambda v: json.dumps(v).encode())
    | items.map(lambda v: json.dumps(v).encode())
    | st.lists(items, max_size=4).map(lambda v: json.dumps(v).encode())
    | st.lists(good_items, min_size=1, max_size=4).map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200)
    | st.binary(min_size=LIMIT - 8, max_size=LIMIT + 8)
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, config: Config) -> Iterator[tuple[TestClient, Engine]]:
    engine = new_engine(tmp_path_factory.mktemp("property"))
    with TestClient(build(engine, config), raise_server_exceptions=True) as c:
        yield c, engine
    engine.dispose()


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_no_body_gives_a_5xx_or_stores_on_refusal(shared: tuple[TestClient, Engine], body: bytes) -> None:
    client, engine = shared
    before = stored(engine)
    response = client.post(URL, content=body, headers=AUTH)
    event(f"status {response.status_code}")
    assert response.status_code < 500, response.text
    assert "error" in response.json() or response.status_code == 202
    if response.status_code == 202:
        assert stored(engine) == before + response.json()["accepted"]
    else:
        assert response.status_code in (413, 422)
        assert stored(engine) == before
