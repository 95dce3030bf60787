"""``POST /api/v1/alertmanager`` over HTTP, against a real AlertService on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bot.alerts import store
from bot.clock import FrozenClock
from bot.config.loader import Config, load_config
from bot.service import AlertService, every_channel
from bot.settings import Settings
from bot.sources.alertmanager_api import PATH, alertmanager_routes
from bot.storage.database import make_engine, migrate
from bot.storage.tables import AlertRow, OutboxRow
from tests.sources.helpers import NOW, config_dir
from tests.sources.test_alertmanager_payload import am_alert, payload

TOKEN = "am-webhook-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def am_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return load_config(config_dir(tmp_path_factory.mktemp("am-api")))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def service(engine: Engine, clock: FrozenClock, am_config: Config) -> AlertService:
    return AlertService(engine, clock, lambda: am_config, every_channel(["recording"]))


def build(service: AlertService, clock: FrozenClock, *, token: str | None = TOKEN, limit: int = 65536) -> Starlette:
    settings = Settings(ingest_token=SecretStr(token) if token else None, ingest_max_bytes=limit)
    return Starlette(routes=alertmanager_routes(service=service, settings=settings, clock=clock))


@pytest.fixture
def client(service: AlertService, clock: FrozenClock) -> Iterator[TestClient]:
    with TestClient(build(service, clock)) as c:
        yield c


@pytest.fixture
def lite_engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only, for refusals: they are decided before the database is touched."""
    engine = make_engine(f"sqlite:///{tmp_path}/lite.db")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def lite_service(lite_engine: Engine, clock: FrozenClock, am_config: Config) -> AlertService:
    return AlertService(lite_engine, clock, lambda: am_config, every_channel(["recording"]))


def send(client: TestClient, body: dict[str, Any] | bytes, headers: dict[str, str] = AUTH) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(PATH, content=content, headers=headers)


def alerts(engine: Engine) -> list[AlertRow]:
    with Session(engine) as s:
        return list(s.exec(select(AlertRow).order_by(AlertRow.id)).all())  # type: ignore[arg-type]


def notifications(engine: Engine) -> list[str]:
    with Session(engine) as s:
        return [row.kind for row in s.exec(select(OutboxRow).order_by(OutboxRow.id)).all()]  # type: ignore[arg-type]


def test_firing_then_resolved_opens_and_auto_resolves_one_alert(client: TestClient, engine: Engine) -> None:
    answer = send(client, payload(am_alert()))
    assert answer.status_code == 200 and answer.json() == {"fired": 1, "resolved": 0}
    (row,) = alerts(engine)
    assert (row.rule, row.model, row.state, row.severity) == ("ModelLatencyHigh", "support-bot", "firing", "P1")
    assert row.values["am_group_key"] == payload()["groupKey"]
    assert notifications(engine) == ["alert.fired"]

    answer = send(client, payload(am_alert("resolved")))
    assert answer.status_code == 200 and answer.json() == {"fired": 0, "resolved": 1}
    (row,) = alerts(engine)
    assert row.state == "resolved" and row.resolved_by == "incident-bot"
    assert notifications(engine) == ["alert.fired", "alert.auto_resolved"]
    with Session(engine) as s:
        assert [e.actor for e in store.history(s, row.id or 0)] == ["alertmanager", "alertmanager"]


def test_duplicates_repeats_and_unknown_resolves_answer_200_and_change_nothing(
    client: TestClient, engine: Engine, clock: FrozenClock
) -> None:
    assert send(client, payload(am_alert("resolved"))).json() == {"fired": 0, "resolved": 0}
    firing = payload(am_alert())
    for _ in range(3):  # an HA pair's copies, then repeat_interval reminders
        assert send(client, firing).status_code == 200
        clock.advance(timedelta(hours=4))
    assert len(alerts(engine)) == 1 and notifications(engine) == ["alert.fired"]
    for _ in range(2):
        assert send(client, payload(am_alert("resolved"))).status_code == 200
    assert [r.state for r in alerts(engine)] == ["resolved"]
    assert notifications(engine) == ["alert.fired", "alert.auto_resolved"]


def test_an_acknowledged_alert_resolves_when_alertmanager_says_so(
    client: TestClient, engine: Engine, service: AlertService
) -> None:
    send(client, payload(am_alert()))
    (row,) = alerts(engine)
    service.acknowledge(row.id or 0, actor="U0ANA0001")
    assert send(client, payload(am_alert())).json() == {"fired": 0, "resolved": 0}
    assert send(client, payload(am_alert("resolved"))).json() == {"fired": 0, "resolved": 1}


def test_concurrent_copies_of_one_notification_record_one_alert(
    service: AlertService, clock: FrozenClock, engine: Engine
) -> None:
    """Alertmanager in HA: both replicas deliver the same group at the same moment."""
    app = build(service, clock)
    answers: list[int] = []

    def deliver() -> None:
        with TestClient(app) as c:
            answers.append(send(c, payload(am_alert())).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(code in (200, 503) for code in answers), answers  # 503: SQLite was busy, Alertmanager retries
    assert len(alerts(engine)) == 1 and notifications(engine) == ["alert.fired"]


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        ({"Content-Type": "application/json"}, 401, "missing bearer token"),
        ({**AUTH, "Authorization": "Bearer wrong"}, 401, "invalid bearer token"),
        ({**AUTH, "Authorization": f"Basic {TOKEN}"}, 401, "Bearer <INGEST_TOKEN>"),
        ({**AUTH, "Content-Type": "text/plain"}, 415, "application/json"),
    ],
)
def test_refusals_are_4xx_with_a_reason(
    lite_service: AlertService, clock: FrozenClock, lite_engine: Engine, headers: dict[str, str], status: int, says: str
) -> None:
    with TestClient(build(lite_service, clock)) as c:
        answer = send(c, payload(am_alert()), headers)
    assert answer.status_code == status and says in answer.json()["error"]
    assert alerts(lite_engine) == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{", "not JSON"),
        (json.dumps({**payload(am_alert()), "version": "2"}).encode(), 'version "4"'),
        (json.dumps(payload({**am_alert(), "labels": {}})).encode(), "alertname"),
    ],
)
def test_a_bad_payload_is_422_so_alertmanager_does_not_retry_it(
    lite_service: AlertService, clock: FrozenClock, lite_engine: Engine, body: bytes, says: str
) -> None:
    with TestClient(build(lite_service, clock)) as c:
        answer = send(c, body)
    assert answer.status_code == 422 and says in answer.json()["error"]
    assert alerts(lite_engine) == []


def test_a_large_body_is_413(lite_service: AlertService, clock: FrozenClock) -> None:
    with TestClient(build(lite_service, clock, limit=100)) as c:
        answer = send(c, payload(am_alert()))
    assert answer.status_code == 413 and "INGEST_MAX_BYTES" in answer.json()["error"]


def test_without_ingest_token_the_webhook_is_closed(lite_service: AlertService, clock: FrozenClock) -> None:
    with TestClient(build(lite_service, clock, token=None)) as c:
        answer = send(c, payload(am_alert()))
    assert answer.status_code == 503 and "INGEST_TOKEN" in answer.json()["error"]


def test_a_database_failure_is_503_so_alertmanager_retries(am_config: Config, clock: FrozenClock) -> None:
    class Broken(AlertService):
        def apply_external(self, *args: Any, **kwargs: Any) -> Any:
            raise OperationalError("INSERT", {}, Exception("database is locked"))

    service = Broken(engine=None, clock=clock, config=lambda: am_config, router=every_channel([]))  # type: ignore[arg-type]
    with TestClient(build(service, clock)) as c:
        answer = send(c, payload(am_alert()))
    assert answer.status_code == 503 and "retry" in answer.json()["error"]
