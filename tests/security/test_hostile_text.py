"""Hostile text in the write APIs, on SQLite and PostgreSQL: a NUL or a lone surrogate is a
permanent problem of the request, answered 422 naming the field and recording nothing (a 5xx
would have senders retry it forever); invisible controls are shown, not obeyed, in Slack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import event, given
from pydantic import SecretStr
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bot.clock import FrozenClock
from bot.config.loader import Config, load_config
from bot.metrics.api import metric_routes
from bot.notify.slack_text import escape_mrkdwn
from bot.safe_text import first_unstorable
from bot.service import AlertService, every_channel
from bot.settings import Settings
from bot.sources.alertmanager_api import PATH as ALERTMANAGER
from bot.sources.alertmanager_api import alertmanager_routes
from bot.storage.tables import AlertRow, MetricSampleRow
from tests.security.conftest import BEARER, FORM, INGEST, REPO, Edge, examples
from tests.security.hostile import hostile_text
from tests.sources.helpers import NOW
from tests.sources.test_alertmanager_payload import am_alert, payload

TOKEN = "hostile-text-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
ITEM = {"model": "support-bot", "metrics": {"current_accuracy": 0.9}}


@pytest.fixture(scope="module")
def shipped() -> Config:
    return load_config(REPO)


@pytest.fixture
def client(engine: Engine, shipped: Config) -> Iterator[TestClient]:
    clock = FrozenClock(NOW)
    service = AlertService(engine, clock, lambda: shipped, every_channel(["recording"]))
    settings = Settings(ingest_token=SecretStr(TOKEN))
    routes = metric_routes(service=service, settings=settings, config=lambda: shipped, clock=clock)
    routes += alertmanager_routes(service=service, settings=settings, clock=clock)
    with TestClient(Starlette(routes=routes)) as c:
        yield c


def rows(engine: Engine) -> int:
    with Session(engine) as s:
        samples = s.exec(select(func.count()).select_from(MetricSampleRow)).one()
        alerts = s.exec(select(func.count()).select_from(AlertRow)).one()
    return int(samples) + int(alerts)


INGEST_CASES = [
    ({**ITEM, "labels": {"note": "a\ud800b"}}, "field 'labels.note' contains an unpaired UTF-16 surrogate"),
    ({**ITEM, "labels": {"note": "a\x00b"}}, "field 'labels.note' contains a NUL character"),
    ({**ITEM, "metrics": {"acc\ud800": 0.9}}, "a key in 'metrics' contains an unpaired UTF-16 surrogate"),
    ({**ITEM, "labels": {"\x00": "x"}}, "a key in 'labels' contains a NUL character"),
    ({**ITEM, "model": "support-bot\udfff"}, "field 'model' contains an unpaired UTF-16 surrogate"),
    ([ITEM, {**ITEM, "timestamp": "\x00"}], "field '[1].timestamp' contains a NUL character"),
]


@pytest.mark.parametrize(("body", "named"), INGEST_CASES)
def test_ingest_refuses_unstorable_text_naming_the_field(
    client: TestClient, engine: Engine, body: Any, named: str
) -> None:
    answer = client.post(INGEST, content=json.dumps(body).encode(), headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["error"]
    assert rows(engine) == 0


def test_ingest_quotes_a_duplicate_surrogate_key_without_failing(client: TestClient, engine: Engine) -> None:
    body = b'{"model": "support-bot", "metrics": {"\\ud800": 1, "\\ud800": 2}}'
    answer = client.post(INGEST, content=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert "duplicate key" in answer.json()["error"]


AM_CASES = [
    (am_alert(name="Latency\x00High"), "field 'alerts[0].labels.alertname' contains a NUL character"),
    (am_alert(service="\ud800"), "field 'alerts[0].labels.service' contains an unpaired UTF-16 surrogate"),
    ({**am_alert(), "annotations": {"summary": "x\udc00"}}, "field 'alerts[0].annotations.summary' contains"),
]


@pytest.mark.parametrize(("alert", "named"), AM_CASES)
def test_alertmanager_refuses_unstorable_text_naming_the_field(
    client: TestClient, engine: Engine, alert: dict[str, Any], named: str
) -> None:
    answer = client.post(ALERTMANAGER, content=json.dumps(payload(alert)).encode(), headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["error"]
    assert rows(engine) == 0


def test_the_same_requests_without_the_hostile_characters_are_recorded(client: TestClient, engine: Engine) -> None:
    """The control: the refusals above are about the characters, not the rest of the request."""
    assert client.post(INGEST, content=json.dumps({**ITEM, "labels": {"note": "ab"}}), headers=AUTH).status_code == 202
    assert client.post(ALERTMANAGER, content=json.dumps(payload(am_alert())), headers=AUTH).status_code == 200


@pytest.mark.parametrize("view", [{}, {"type": None, "callback_id": "x"}, {"type": 7}, None, []])
def test_a_view_submission_without_a_view_type_is_a_400_naming_it(edge: Edge, view: Any) -> None:
    body = {"type": "view_submission", "team": {"id": edge.slack.team_id}, "user": {"id": "U1"}, "view": view}
    answer = edge.post(edge.form(body), FORM)
    assert answer.status_code == 400, answer.text
    assert "view" in answer.text


@pytest.mark.parametrize(
    ("label", "shown"),
    [
        ("fraud\u202e2v-rotceted", "fraud[U+202E]2v-rotceted"),
        ("ad\u200bmin", "ad[U+200B]min"),
        ("\u2066<!channel>\u2069", "[U+2066]&lt;!channel&gt;[U+2069]"),
        ("\ufeffsupport-bot\u200f", "[U+FEFF]support-bot[U+200F]"),
    ],
)
def test_invisible_controls_in_labels_are_shown_in_slack_not_obeyed(label: str, shown: str) -> None:
    assert escape_mrkdwn(label) == shown


# --------------------------------------------------------------------------- fuzzing, on SQLite

EXAMPLES = examples(150)


@EXAMPLES
@given(name=hostile_text, value=hostile_text, model=hostile_text)
def test_hostile_text_anywhere_in_an_ingest_item_is_never_a_5xx(edge: Edge, name: str, value: str, model: str) -> None:
    before = edge.snapshot()
    body = json.dumps({"model": model, "metrics": {name: 1.0}, "labels": {"note": value, name: value}})
    answer = edge.client.post(INGEST, content=body.encode(), headers=BEARER)
    event(f"status {answer.status_code}")
    assert 400 <= answer.status_code < 500, answer.text
    if first_unstorable([name, value, model]):
        assert "field" in answer.json()["error"] or "key" in answer.json()["error"]
    assert edge.snapshot() == before


@EXAMPLES
@given(key=hostile_text, value=hostile_text)
def test_hostile_text_in_an_alertmanager_alert_is_never_a_5xx(edge: Edge, key: str, value: str) -> None:
    alert = am_alert(model=value)
    alert["labels"][key] = value
    alert["annotations"] = {"summary": value}
    answer = edge.client.post(ALERTMANAGER, content=json.dumps(payload(alert)).encode(), headers=BEARER)
    event(f"status {answer.status_code}")
    assert answer.status_code < 500, answer.text


@EXAMPLES
@given(view_type=hostile_text, callback=hostile_text, text=hostile_text)
def test_hostile_text_in_a_view_submission_is_never_a_5xx(edge: Edge, view_type: str, callback: str, text: str) -> None:
    body = {
        "type": "view_submission",
        "team": {"id": edge.slack.team_id},
        "user": {"id": "U1", "name": text},
        "view": {"type": view_type, "callback_id": callback, "private_metadata": text, "state": {"values": {}}},
    }
    answer = edge.post(edge.form(body), FORM)
    event(f"status {answer.status_code}")
    assert answer.status_code < 500, answer.text
