"""Who may talk to ``/slack/events``: forged, stale, future and replayed signatures are 401,
requests for another workspace 403, and none of them changes anything (SPEC §6, issue 8)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.slack.app import only_workspace
from bot.slack.gates import REPLAY_CACHE_SIZE, ReplayCache, Workspace, team_problem
from tests.security.conftest import FORM, SLACK, TEAM, Edge, examples
from tests.slack.harness import SECRET, TOKEN, sign

EXAMPLES = examples(60)


def click_and_headers(edge: Edge, **headers: str) -> tuple[bytes, dict[str, str]]:
    body = edge.form(edge.click_payload("alert_acknowledge"))
    return body, {"Content-Type": FORM, **headers}


# --------------------------------------------------------------------------- forged and stale


@EXAMPLES
@given(signature=st.text(max_size=80) | st.from_regex(r"v0=[0-9a-f]{64}", fullmatch=True), drift=st.integers(-60, 60))
def test_a_forged_signature_is_refused_and_changes_nothing(edge: Edge, signature: str, drift: int) -> None:
    before = edge.snapshot()
    body, headers = click_and_headers(edge)
    headers |= {"X-Slack-Request-Timestamp": str(int(time.time()) + drift), "X-Slack-Signature": signature}
    try:
        answer = edge.client.post(SLACK, content=body, headers=headers)
    except UnicodeEncodeError:  # httpx will not send a non-latin-1 header; nor would any client
        return
    assert answer.status_code == 401, answer.text
    assert "signature" in answer.json()["error"].lower()
    assert edge.snapshot() == before


@EXAMPLES
@given(secret=st.text(min_size=1, max_size=40).filter(lambda s: s != SECRET))
def test_a_signature_under_another_secret_is_refused(edge: Edge, secret: str) -> None:
    before = edge.snapshot()
    body, headers = click_and_headers(edge)
    answer = edge.client.post(SLACK, content=body, headers={**headers, **sign(body, secret=secret)})
    assert answer.status_code == 401
    assert edge.snapshot() == before


@EXAMPLES
@given(offset=st.integers(301, 10**9) | st.integers(-(10**9), -301))
def test_a_timestamp_more_than_five_minutes_away_is_refused(edge: Edge, offset: int) -> None:
    """Stale (a captured request sent later) and future (a clock pushed ahead) alike."""
    before = edge.snapshot()
    body, headers = click_and_headers(edge)
    stale = sign(body, timestamp=int(time.time()) - offset)
    answer = edge.client.post(SLACK, content=body, headers={**headers, **stale})
    assert answer.status_code == 401
    assert edge.snapshot() == before


def test_a_timestamp_just_inside_the_window_is_accepted(edge: Edge) -> None:
    body = edge.command_body("/runbook", "support-bot")
    signed = sign(body, timestamp=int(time.time()) - 290)
    old = edge.client.post(SLACK, content=body, headers={"Content-Type": FORM, **signed})
    assert old.status_code == 200 and "support-bot" in old.text


# --------------------------------------------------------------------------- replays


def test_a_replayed_request_is_refused_and_not_acted_on_twice(edge: Edge) -> None:
    url = edge.slack.response_url()
    body = edge.command_body("/alerts", "", response_url=url)
    headers = {"Content-Type": FORM, **sign(body)}
    assert edge.client.post(SLACK, content=body, headers=headers).status_code == 200
    edge.slack.wait_for(lambda c: c.path.endswith(url.rsplit("/", 1)[1]))
    for _ in range(3):
        again = edge.client.post(SLACK, content=body, headers=headers)
        assert again.status_code == 401
        assert again.json() == {"error": "replayed request: this signature was already used"}
        assert again.headers["X-Slack-No-Retry"] == "1"
    edge.settle()
    assert len([c for c in edge.slack.calls_to("response_url") if c.path.endswith(url.rsplit("/", 1)[1])]) == 1


def test_a_replayed_click_cannot_act_on_the_alert(edge: Edge) -> None:
    """The replay is refused at the edge; what the first click did is not done again."""
    body, content_type = edge.form(edge.click_payload("alert_runbook")), FORM
    headers = {"Content-Type": content_type, **sign(body)}
    opened = len(edge.slack.calls_to("views.open")) + 1
    assert edge.client.post(SLACK, content=body, headers=headers).status_code == 200
    edge.slack.wait_for("views.open", count=opened)  # the first click's modal, however late it comes
    before = edge.snapshot()
    assert edge.client.post(SLACK, content=body, headers=headers).status_code == 401
    edge.settle()
    assert len(edge.slack.calls_to("views.open")) == opened
    assert edge.snapshot() == before


def test_a_replay_carrying_a_retry_header_is_acknowledged_and_dropped(edge: Edge) -> None:
    """``X-Slack-Retry-Num`` passes the replay gate (a genuine retry is never refused) and is then
    acknowledged without being acted on, so adding the header to a replay gains nothing."""
    body = edge.form(edge.click_payload("alert_resolve"))
    headers = {"Content-Type": FORM, **sign(body)}
    before = edge.snapshot()
    retried = edge.client.post(SLACK, content=body, headers={**headers, "X-Slack-Retry-Num": "1"})
    assert retried.status_code == 200
    again = edge.client.post(SLACK, content=body, headers={**headers, "X-Slack-Retry-Num": "2"})
    assert again.status_code == 200
    edge.settle()
    assert edge.snapshot() == before  # the alert is still firing: neither was acted on


def test_the_same_body_signed_at_another_second_is_a_new_request(edge: Edge) -> None:
    body = edge.command_body("/runbook", "support-bot")
    now = int(time.time())
    for ts in (now - 2, now - 1):
        answer = edge.client.post(SLACK, content=body, headers={"Content-Type": FORM, **sign(body, timestamp=ts)})
        assert answer.status_code == 200


def test_the_replay_cache_forgets_a_signature_once_it_can_no_longer_pass() -> None:
    now = [1_000_000.0]
    cache = ReplayCache(window=300, capacity=10, timer=lambda: now[0])
    assert cache.first_use("v0=a", "1000000")
    assert not cache.first_use("v0=a", "1000000")
    assert cache.first_use("v0=b", "1000290")  # a timestamp ahead of the clock passes until ts + 300
    now[0] = 1_000_301.5
    assert cache.first_use("v0=c", "1000301")
    assert len(cache) == 2  # a's window is over; b's is not
    assert not cache.first_use("v0=b", "1000290")
    assert not cache.first_use("v0=x", "soon")  # never remembered: signature_ok() refuses it first


def test_the_replay_cache_is_bounded_and_forgets_the_oldest_first() -> None:
    cache = ReplayCache(window=300, capacity=3, timer=lambda: 0.0)
    for name in "abcd":
        assert cache.first_use(f"v0={name}", "0")
    assert len(cache) == 3 and cache.forgotten_early == 1
    assert cache.first_use("v0=a", "0")  # forgotten early: the documented cost of the bound
    assert not cache.first_use("v0=d", "0")


def test_a_full_replay_cache_stays_within_its_memory_budget() -> None:
    tracemalloc.start()
    try:
        cache = ReplayCache(timer=lambda: 0.0)
        for i in range(REPLAY_CACHE_SIZE + 1000):
            digest = hmac.new(b"k", str(i).encode(), hashlib.sha256).hexdigest()
            cache.first_use(f"v0={digest}", "0")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(cache) == REPLAY_CACHE_SIZE
    assert peak < 32 * 1024 * 1024, f"{peak / 1e6:.1f} MB for {REPLAY_CACHE_SIZE} signatures"


# --------------------------------------------------------------------------- another workspace

OTHER = "T0OTHERWS"


def test_a_command_for_another_workspace_is_refused_and_not_answered(edge: Edge) -> None:
    url = edge.slack.response_url()
    answer = edge.post(edge.command_body("/alerts", "", team=OTHER, response_url=url))
    assert answer.status_code == 403
    assert answer.json()["error"] == (
        f"this bot serves Slack workspace {TEAM} only (SLACK_TEAM_ID); the request is for workspace '{OTHER}'"
    )
    edge.settle()
    assert not [c for c in edge.slack.calls_to("response_url") if c.path.endswith(url.rsplit("/", 1)[1])]
    mine = edge.post(edge.command_body("/runbook", "support-bot"))
    assert mine.status_code == 200 and "support-bot" in mine.text


@pytest.mark.parametrize(
    "override",
    [
        {"team": {"id": OTHER, "domain": "other"}},
        {"team": OTHER},
        {"team": None, "user": {"id": "U0ANA0001", "team_id": OTHER}},  # an org-wide install names it here
    ],
)
def test_a_click_for_another_workspace_is_refused_and_changes_nothing(edge: Edge, override: dict[str, Any]) -> None:
    before, calls = edge.snapshot(), len(edge.slack.calls)
    payload = edge.click_payload("alert_acknowledge") | override
    answer = edge.post(edge.form(payload))
    assert answer.status_code == 403
    assert OTHER in answer.json()["error"]
    edge.settle()
    assert edge.snapshot() == before  # still firing, nothing recorded
    assert len(edge.slack.calls) == calls  # and nothing said or opened in Slack


@pytest.mark.parametrize(
    "fields",
    [
        {"team_id": OTHER},
        {"team_id": TEAM, "authorizations": [{"team_id": OTHER, "user_id": "U0BOT", "is_bot": True}]},
    ],
)
def test_an_event_for_another_workspace_is_refused(edge: Edge, fields: dict[str, Any]) -> None:
    """Bolt authorizes an event for ``authorizations[0].team_id`` first, so that is checked too."""
    published = len(edge.slack.calls_to("views.publish"))
    event = {
        "token": "t",
        "api_app_id": "A0INCIDENT",
        "type": "event_callback",
        "event_id": f"Ev{time.time_ns()}",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": "U0ANA0001", "channel": "D0HOME", "tab": "home"},
        **fields,
    }
    answer = edge.post(json.dumps(event).encode(), "application/json")
    assert answer.status_code == 403
    edge.settle()
    assert len(edge.slack.calls_to("views.publish")) == published


def test_a_request_naming_no_workspace_passes_the_team_check(edge: Edge) -> None:
    body = json.dumps({"token": "t", "challenge": "c-123", "type": "url_verification"}).encode()
    answer = edge.post(body, "application/json")
    assert answer.status_code == 200 and "c-123" in answer.text


def test_team_problem_is_silent_without_a_configured_workspace() -> None:
    assert team_problem({"team_id": OTHER}, None) is None
    assert team_problem({"team_id": TEAM}, TEAM) is None
    assert team_problem({"team": {"id": OTHER}}, TEAM) is not None
    assert team_problem({"authorizations": ["x"]}, TEAM) == "the request's workspace (team) cannot be read"


def test_socket_mode_requests_for_another_workspace_are_refused_inside_bolt() -> None:
    """Socket Mode skips the HTTP edge; the middleware applies the same rule there."""
    middleware = only_workspace(Workspace(TEAM, token=TOKEN, base_url="http://127.0.0.1:9/"))
    reached: list[str] = []

    async def run(body: dict[str, Any]) -> BoltResponse | None:
        request = AsyncBoltRequest(body=body, mode="socket_mode")

        async def next_() -> None:
            reached.append(str(body.get("team_id")))

        call: Callable[..., Awaitable[BoltResponse | None]] = middleware
        return await call(request, BoltResponse(status=200), next_)

    refused = asyncio.run(run({"type": "event_callback", "team_id": OTHER, "event": {"type": "app_home_opened"}}))
    assert refused is not None and refused.status == 403 and OTHER in refused.body
    assert asyncio.run(run({"type": "event_callback", "team_id": TEAM, "event": {"type": "app_home_opened"}})) is None
    assert reached == [TEAM]
