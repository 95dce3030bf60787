"""Slack request authenticity beyond the signature (issue 12 point 2): one copy of each signing
header, read by both the signature check and the replay cache; the workspace learned from
``auth.test`` when ``SLACK_TEAM_ID`` is unset; response URLs kept out of the log."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.logs import configure_logging
from bot.slack.gates import Workspace
from bot.storage.database import session as open_session
from bot.storage.tables import SilenceRow
from tests.emulators.slack_api import SlackEmulator
from tests.security.conftest import FORM, SLACK, TEAM, Edge, start_edge
from tests.slack.harness import TOKEN, sign

OTHER = "T0OTHERWS"


def silences(edge: Edge) -> int:
    with open_session(edge.engine) as s:
        return len(s.exec(select(SilenceRow)).all())


def test_a_replay_with_a_junk_signature_placed_first_is_refused(edge: Edge) -> None:
    """Each junk first copy was new to the replay cache while the check read the valid last one:
    three replays answered 200 and made three silences."""
    body = edge.command_body("/silence", "support-bot 1h replayed")
    signed = sign(body)
    before = silences(edge)
    assert edge.client.post(SLACK, content=body, headers={"Content-Type": FORM, **signed}).status_code == 200
    edge.slack.wait_for(lambda c: silences(edge) == before + 1 or False)
    for junk in ("v0=00", "v0=11", "garbage"):
        headers = [
            ("Content-Type", FORM),
            ("X-Slack-Request-Timestamp", signed["X-Slack-Request-Timestamp"]),
            ("X-Slack-Signature", junk),
            ("X-Slack-Signature", signed["X-Slack-Signature"]),
        ]
        answer = edge.client.post(SLACK, content=body, headers=headers)
        assert answer.status_code == 400
        assert answer.json() == {"error": "the request carries 2 x-slack-signature headers; Slack sends one"}
    edge.settle()
    assert silences(edge) == before + 1


@pytest.mark.parametrize("twice", ["X-Slack-Request-Timestamp", "X-Slack-Signature"])
def test_a_fresh_request_with_a_signing_header_sent_twice_is_refused(edge: Edge, twice: str) -> None:
    body = edge.command_body("/runbook", "support-bot")
    signed = sign(body)
    headers = [("Content-Type", FORM), *signed.items(), (twice, signed[twice])]
    answer = edge.client.post(SLACK, content=body, headers=headers)
    assert answer.status_code == 400
    assert answer.headers["X-Slack-No-Retry"] == "1"
    # the same request with one copy of each passes: the refusal was the duplicate's
    assert edge.client.post(SLACK, content=body, headers={"Content-Type": FORM, **signed}).status_code == 200


@pytest.fixture
def learning_edge(tmp_path: Path) -> Iterator[Edge]:
    """The bot with ``SLACK_TEAM_ID`` unset."""
    yield from start_edge(tmp_path, team_id=None)


def test_without_slack_team_id_the_bot_serves_the_workspace_auth_test_names(learning_edge: Edge) -> None:
    edge = learning_edge
    url = edge.slack.response_url()
    answer = edge.post(edge.command_body("/alerts", "", team=OTHER, response_url=url))
    assert answer.status_code == 403
    assert answer.json()["error"] == (
        f"this bot serves Slack workspace {TEAM} only (auth.test); the request is for workspace '{OTHER}'"
    )
    before = edge.snapshot()
    click = edge.post(edge.form(edge.click_payload("alert_acknowledge") | {"team": {"id": OTHER}}))
    assert click.status_code == 403
    mine = edge.post(edge.command_body("/runbook", "support-bot"))
    assert mine.status_code == 200 and "support-bot" in mine.text
    edge.settle()
    assert edge.snapshot() == before
    assert not [c for c in edge.slack.calls_to("response_url") if c.path.endswith(url.rsplit("/", 1)[1])]
    assert len(edge.slack.calls_to("auth.test")) == 1, "learned once, at start, and kept"


def test_while_auth_test_fails_requests_naming_a_workspace_are_refused_then_served() -> None:
    now = [0.0]
    with SlackEmulator(TOKEN) as slack:
        workspace = Workspace(None, token=TOKEN, base_url=slack.base_url, monotonic=lambda: now[0])
        slack.error_next("auth.test", "invalid_auth", times=2)
        mine, other = {"team_id": TEAM}, {"team_id": OTHER}

        async def scenario() -> None:
            refused = await workspace.refusal(mine)
            assert refused is not None and refused[0] == 503 and "invalid_auth" in refused[1]
            assert await workspace.refusal({"type": "url_verification", "challenge": "c"}) is None
            assert (await workspace.refusal(other) or (0,))[0] == 503
            assert len(slack.calls_to("auth.test")) == 1, "asked again only after the retry interval"
            now[0] += 10
            assert (await workspace.refusal(mine) or (0,))[0] == 503  # the second injected failure
            now[0] += 10
            assert await workspace.refusal(mine) is None
            assert (await workspace.refusal(other) or (0,))[0] == 403

        asyncio.run(scenario())
        assert len(slack.calls_to("auth.test")) == 3


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What the bot's own log handler (DEBUG, text) writes during the test; pytest's handlers come back after."""
    stream = io.StringIO()
    root = logging.getLogger()
    kept, level = root.handlers[:], root.level
    configure_logging(level=logging.DEBUG, stream=stream)
    try:
        yield stream
    finally:
        root.handlers = kept
        root.setLevel(level)


def test_response_urls_never_reach_the_log_even_at_debug(edge: Edge, logged: io.StringIO) -> None:
    url = edge.slack.response_url()
    assert edge.post(edge.command_body("/alerts", "", response_url=url)).status_code == 200
    edge.slack.wait_for(lambda c: c.path.endswith(url.rsplit("/", 1)[1]))
    click_url = edge.slack.response_url(channel=edge.channel)
    edge.post(edge.form(edge.click_payload("alert_runbook") | {"response_url": click_url, "type": "no_such_type"}))
    edge.settle()
    log = logged.getvalue()
    assert "Sending a request" in log, "the DEBUG lines were written"
    for secret in (url, click_url):
        key = secret.rsplit("/", 1)[1]
        assert key not in log, [line[:300] for line in log.splitlines() if key in line]


@pytest.mark.parametrize(
    "line",
    [
        "answering https://hooks.slack.com/commands/T0EMULATOR/123/AbCdEf failed",
        'payload {"response_url": "https://example.test/r/AbCdEf", "user": "U1"}',
        "{'response_url': 'https://example.test/r/AbCdEf'}",
        "body response_url=https%3A%2F%2Fexample.test%2Fr%2FAbCdEf&text=x",
    ],
)
def test_response_urls_are_redacted_wherever_a_line_names_them(line: str, logged: io.StringIO) -> None:
    logging.getLogger("bot.test").warning(line)
    assert "AbCdEf" not in logged.getvalue() and "[redacted]" in logged.getvalue()
