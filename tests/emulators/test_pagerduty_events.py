"""Tests for the PagerDuty Events API v2 emulator, driven over HTTP with plain httpx.

The emulator is only worth its keep if it answers like PagerDuty: these tests pin the wire
format (202 body, 400 body with ``errors``), the validation rules and the de-duplication
semantics the notifier relies on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.emulators.pagerduty_events import PagerDutyEmulator

KEY = "R0UTINGKEY00000000000000000000AB"  # 32 characters, like an integration key


@pytest.fixture
def pd() -> Iterator[PagerDutyEmulator]:
    with PagerDutyEmulator() as emulator:
        yield emulator


def trigger(dedup_key: str | None = "latency_spike:fraud", routing_key: str = KEY, **payload: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "payload": {"summary": "[P1] p99 latency 6100 ms", "source": "fraud", "severity": "error", **payload},
    }
    if dedup_key is not None:
        body["dedup_key"] = dedup_key
    return body


def action(name: str, dedup_key: str = "latency_spike:fraud", routing_key: str = KEY) -> dict[str, Any]:
    return {"routing_key": routing_key, "event_action": name, "dedup_key": dedup_key}


def post(pd: PagerDutyEmulator, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(pd.url, json=body, timeout=5, **kwargs)


# ------------------------------------------------------------------ wire format
def test_a_trigger_is_answered_202_with_pagerdutys_body_and_recorded(pd: PagerDutyEmulator) -> None:
    assert pd.url.startswith("http://127.0.0.1:") and pd.url.endswith("/v2/enqueue")
    before = time.time()

    response = post(pd, trigger(custom_details={"p99": 6100}, component="latency_spike"))

    assert response.status_code == 202
    assert response.json() == {"status": "success", "message": "Event processed", "dedup_key": "latency_spike:fraud"}
    [event] = pd.events
    assert event["body"]["payload"]["custom_details"] == {"p99": 6100}
    assert event["status"] == 202 and event["applied"] and event["at"] >= before
    assert event["headers"]["content-type"] == "application/json"


def test_a_trigger_without_a_dedup_key_gets_a_generated_one_and_a_new_incident_each_time(pd: PagerDutyEmulator) -> None:
    first = post(pd, trigger(dedup_key=None)).json()["dedup_key"]
    second = post(pd, trigger(dedup_key=None)).json()["dedup_key"]

    assert first and second and first != second
    assert len(pd.all_incidents) == 2


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({**trigger(), "routing_key": ""}, "'routing_key' is missing or blank"),
        ({k: v for k, v in trigger().items() if k != "routing_key"}, "'routing_key' is missing or blank"),
        ({**trigger(), "event_action": "page"}, "'event_action' is missing or invalid"),
        (trigger(summary=""), "'payload.summary' is missing or blank"),
        (trigger(summary="x" * 1025), "Length of 'payload.summary' is too long"),
        (trigger(source=None), "'payload.source' is missing or blank"),
        (trigger(severity="P1"), "'payload.severity' is missing or invalid"),
        (trigger(dedup_key="k" * 256), "Length of 'dedup_key' is too long"),
        ({**trigger(), "payload": None}, "'payload' is missing"),
        (trigger(custom_details=[1, 2]), "'payload.custom_details' must be an object"),
        ({**trigger(), "links": [{"text": "no href"}]}, "'links' must be a list of objects"),
        ({"routing_key": KEY, "event_action": "resolve"}, "'dedup_key' is required for resolve"),
        ([trigger()], "Event must be a JSON object"),
    ],
)
def test_invalid_events_are_refused_with_400_and_the_reason(pd: PagerDutyEmulator, body: Any, error: str) -> None:
    response = post(pd, body)

    assert response.status_code == 400
    answer = response.json()
    assert answer["status"] == "invalid event" and answer["message"] == "Event object is invalid"
    assert any(error in e for e in answer["errors"]), answer["errors"]
    assert pd.incidents == {} and pd.events[0]["status"] == 400 and not pd.events[0]["applied"]


def test_limits_are_inclusive_and_routing_key_length_is_lenient_unless_strict(pd: PagerDutyEmulator) -> None:
    assert post(pd, trigger(dedup_key="k" * 255, summary="s" * 1024, routing_key="short")).status_code == 202

    with PagerDutyEmulator(strict_routing_key=True) as strict:
        refused = post(strict, trigger(routing_key="short"))
        assert refused.status_code == 400 and "32 characters" in refused.json()["errors"][0]
        assert post(strict, trigger()).status_code == 202


def test_malformed_json_and_unknown_paths(pd: PagerDutyEmulator) -> None:
    bad = httpx.post(pd.url, content=b"{not json", headers={"Content-Type": "application/json"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["errors"] == ["Event is not valid JSON"]
    assert httpx.post(pd.base_url + "/v2/nope", json=trigger(), timeout=5).status_code == 404
    assert httpx.get(pd.url, timeout=5).status_code == 405
    assert pd.incidents == {}


# ------------------------------------------------------------------ incidents
def test_trigger_acknowledge_resolve_moves_one_incident_through_its_states(pd: PagerDutyEmulator) -> None:
    post(pd, trigger())
    assert pd.incidents[(KEY, "latency_spike:fraud")].status == "triggered"

    post(pd, action("acknowledge"))
    assert pd.incidents[(KEY, "latency_spike:fraud")].status == "acknowledged"

    post(pd, trigger(severity="critical"))  # a re-send while acknowledged: de-duplicated, stays acknowledged
    incident = pd.incidents[(KEY, "latency_spike:fraud")]
    assert incident.status == "acknowledged" and incident.triggers == 2 and incident.severity == "critical"

    post(pd, action("resolve"))
    incident = pd.incidents[(KEY, "latency_spike:fraud")]
    assert incident.status == "resolved" and incident.resolved_at is not None
    assert incident.events == ["trigger", "acknowledge", "trigger", "resolve"]
    assert len(pd.all_incidents) == 1


def test_a_trigger_after_resolve_opens_a_new_incident_even_with_the_same_key(pd: PagerDutyEmulator) -> None:
    post(pd, trigger())
    post(pd, action("resolve"))
    post(pd, trigger())

    first, second = pd.all_incidents
    assert (first.status, second.status) == ("resolved", "triggered")
    assert second.number == first.number + 1
    assert pd.incidents[(KEY, "latency_spike:fraud")].number == second.number


def test_acknowledge_and_resolve_without_an_open_incident_are_accepted_but_dropped(pd: PagerDutyEmulator) -> None:
    assert post(pd, action("acknowledge", dedup_key="never-triggered")).status_code == 202
    post(pd, trigger())
    assert post(pd, action("resolve", routing_key="another-key")).status_code == 202  # other routing key: dropped

    assert [e["applied"] for e in pd.events] == [False, True, False]
    assert pd.incidents[(KEY, "latency_spike:fraud")].status == "triggered"
    assert (KEY, "never-triggered") not in pd.incidents


# ------------------------------------------------------------------ faults
def test_fail_next_answers_429_and_5xx_without_applying_the_event(pd: PagerDutyEmulator) -> None:
    pd.fail_next(status=429, retry_after=7)
    pd.fail_next(times=2, status=500)
    pd.fail_next(status=503)

    throttled = post(pd, trigger())
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    assert throttled.json()["status"] == "throttle event"
    assert [post(pd, trigger()).status_code for _ in range(3)] == [500, 500, 503]
    assert pd.incidents == {}
    assert post(pd, trigger()).status_code == 202
    assert [e["status"] for e in pd.events] == [429, 500, 500, 503, 202]


def test_a_429_carries_no_retry_after_unless_asked(pd: PagerDutyEmulator) -> None:
    pd.fail_next(status=429)
    assert "Retry-After" not in post(pd, trigger()).headers


def test_an_injected_400_looks_like_pagerdutys(pd: PagerDutyEmulator) -> None:
    pd.fail_next(status=400)
    response = post(pd, trigger())
    assert response.status_code == 400 and response.json()["status"] == "invalid event"
    assert response.json()["errors"]
    with pytest.raises(ValueError):
        pd.fail_next(status=202)


def test_a_delayed_event_is_applied_even_when_the_client_gives_up(pd: PagerDutyEmulator) -> None:
    pd.delay_next(0.5)

    with pytest.raises(httpx.TimeoutException):
        httpx.post(pd.url, json=trigger(), timeout=0.1)

    assert pd.incidents[(KEY, "latency_spike:fraud")].status == "triggered"
    assert post(pd, trigger()).status_code == 202  # the client's retry de-duplicates
    assert pd.incidents[(KEY, "latency_spike:fraud")].triggers == 2 and len(pd.all_incidents) == 1


def test_wait_for_blocks_until_an_event_arrives_from_another_thread(pd: PagerDutyEmulator) -> None:
    threading.Timer(0.05, lambda: post(pd, action("resolve"))).start()

    event = pd.wait_for(lambda e: e["body"]["event_action"] == "resolve", timeout=5)

    assert event["status"] == 202
    with pytest.raises(AssertionError, match="received"):
        pd.wait_for(lambda e: e["body"]["event_action"] == "trigger", timeout=0.05)


def test_reset_forgets_everything_and_stop_is_idempotent() -> None:
    emulator = PagerDutyEmulator().start()
    post(emulator, trigger())
    emulator.fail_next(status=500)
    emulator.reset()
    assert emulator.events == [] and emulator.incidents == {}
    assert post(emulator, trigger()).status_code == 202
    emulator.stop()
    emulator.stop()
    with pytest.raises(httpx.TransportError):
        httpx.post(emulator.url, json=trigger(), timeout=1)
