"""``POST /api/v1/changes`` over HTTP against SQLite: the metrics ingest's answers, all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bot.changes.api import change_routes
from bot.changes.events import ChangeKind
from bot.changes.log import ChangeLog
from bot.clock import FrozenClock
from bot.config.loader import load_config
from bot.settings import Settings
from bot.storage.database import make_engine, migrate

REPO = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-ingest-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    config = load_config(REPO)
    settings = Settings(ingest_token=SecretStr(TOKEN), ingest_max_bytes=4096)
    routes = change_routes(changes=ChangeLog(engine), settings=settings, config=lambda: config, clock=FrozenClock(NOW))
    with TestClient(Starlette(routes=routes)) as c:
        yield c


def test_a_deploy_job_records_a_change_and_it_reads_back(client: TestClient, engine: Engine) -> None:
    answer = client.post(
        "/api/v1/changes",
        headers=AUTH,
        json={"model": "support-bot", "kind": "prompt", "version": "v42", "timestamp": "2026-01-05T08:56:00Z"},
    )
    assert (answer.status_code, answer.json()) == (202, {"accepted": 1})
    [change] = ChangeLog(engine).between("support-bot", NOW - DAY, NOW)
    assert (change.kind, change.version, change.at) == (ChangeKind.PROMPT, "v42", NOW - timedelta(minutes=4))


def test_a_bad_item_stores_nothing_and_says_why(client: TestClient, engine: Engine) -> None:
    answer = client.post(
        "/api/v1/changes",
        headers=AUTH,
        json=[{"model": "support-bot", "kind": "prompt", "version": "v1"}, {"model": "support-bot", "kind": "x"}],
    )
    assert answer.status_code == 422
    assert "item 1: field 'kind'" in answer.json()["error"]
    assert ChangeLog(engine).between(None, NOW - DAY, NOW + DAY) == []


def test_the_ingest_token_guards_it(client: TestClient) -> None:
    body = {"model": "support-bot", "kind": "prompt", "version": "v1"}
    assert client.post("/api/v1/changes", json=body).status_code == 401
    wrong = {**AUTH, "Authorization": "Bearer nope"}
    assert client.post("/api/v1/changes", headers=wrong, json=body).status_code == 401
    assert (
        client.post("/api/v1/changes", headers={**AUTH, "Content-Type": "text/plain"}, content=b"x").status_code == 415
    )
    assert client.post("/api/v1/changes", headers=AUTH, content=b"{" * 5000).status_code == 413


def test_changes_read_newest_first_per_model_or_for_all(client: TestClient, engine: Engine) -> None:
    pushes = [
        {"model": "support-bot", "kind": "dataset", "version": "d1", "timestamp": "2026-01-05T07:00:00Z"},
        {"model": "fraud-detector-v2", "kind": "deploy", "version": "b7", "timestamp": "2026-01-05T08:00:00Z"},
        {"model": "support-bot", "kind": "prompt", "version": "v2", "timestamp": "2026-01-05T08:30:00Z"},
    ]
    assert client.post("/api/v1/changes", headers=AUTH, json=pushes).status_code == 202
    log = ChangeLog(engine)
    assert [c.version for c in log.between("support-bot", NOW - DAY, NOW)] == ["v2", "d1"]
    assert [c.version for c in log.between(None, NOW - DAY, NOW)] == ["v2", "b7", "d1"]
    assert [c.version for c in log.between(None, NOW - timedelta(hours=1), NOW)] == ["v2", "b7"]
