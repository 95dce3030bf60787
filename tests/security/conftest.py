"""The whole bot as ``incident-bot serve`` builds it (``bot.app.build_bot``), for hostile requests.

A SQLite file, the shipped configuration, one firing alert (``llm_cost_runaway:support-bot``),
the Slack Web API emulator behind ``SLACK_API_URL`` and ``SLACK_TEAM_ID`` set to the emulator's
workspace. The scheduler's jobs are removed so the database changes only through the requests
under test; the lifespan still runs (the Slack after-ack worker). Requests go through Starlette's
TestClient; :meth:`Edge.stream` uses httpx's ASGI transport, which hands the app the body chunk by
chunk, to show how much of a body the app read before refusing it.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from bot.app import Bot, build_bot
from bot.clock import FrozenClock
from bot.settings import Settings
from tests.emulators.slack_api import SlackEmulator
from tests.slack.harness import ANA, CHANNEL_NAME, SECRET, TOKEN, block_actions, fire_cost_alert, sign

REPO = Path(__file__).resolve().parents[2]
INGEST_TOKEN = "security-ingest-token"
TEAM = SlackEmulator.team_id
FORM = "application/x-www-form-urlencoded"
SLACK = "/slack/events"
INGEST = "/api/v1/metrics"
ALERTMANAGER = "/api/v1/alertmanager"
BEARER = {"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"}


def examples(default: int) -> hypothesis_settings:
    """Hypothesis settings with ``default`` examples, so the folder runs in well under a minute;
    ``SECURITY_FUZZ_EXAMPLES=2000`` runs every property that many times instead (a deeper search)."""
    count = int(os.environ.get("SECURITY_FUZZ_EXAMPLES") or default)
    return hypothesis_settings(max_examples=count, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Edge:
    bot: Bot
    client: TestClient
    slack: SlackEmulator
    alert_id: int
    channel: str
    _seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def engine(self) -> Engine:
        return self.bot.engine

    # ------------------------------------------------------------------ Slack requests, signed
    def post(
        self, body: bytes, content_type: str | None = FORM, *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        # hypothesis repeats bodies (b"" most of all): a timestamp that moves back a second per request,
        # within the window, keeps each signature new, so a repeat reaches the parser and not the replay gate
        signed = sign(body, timestamp=int(time.time()) - next(self._seq) % 240)
        sent = {**({"Content-Type": content_type} if content_type else {}), **signed, **(headers or {})}
        answer: httpx.Response = self.client.post(SLACK, content=body, headers=sent)
        return answer

    def command_body(self, command: str, text: str, *, team: str = TEAM, response_url: str | None = None) -> bytes:
        """A slash command as Slack posts it; a fresh ``trigger_id`` each time, as Slack's."""
        form = {
            "token": "legacy-verification-token",
            "team_id": team,
            "team_domain": "emulated",
            "channel_id": self.channel,
            "channel_name": CHANNEL_NAME.lstrip("#"),
            "user_id": ANA,
            "user_name": "ana",
            "command": command,
            "text": text,
            "api_app_id": "A0INCIDENT",
            "response_url": response_url or self.slack.response_url(),
            "trigger_id": f"1337.{next(self._seq)}.command",
        }
        return urlencode(form).encode()

    def click_payload(self, action_id: str, *, value: str | None = None) -> dict[str, Any]:
        payload = block_actions(
            action_id,
            user=ANA,
            value=str(self.alert_id) if value is None else value,
            channel=self.channel,
            response_url=self.slack.response_url(channel=self.channel),
            trigger_id=f"1337.{next(self._seq)}.click",
        )
        return payload

    @staticmethod
    def form(payload: Any) -> bytes:
        return urlencode({"payload": json.dumps(payload)}).encode()

    # ------------------------------------------------------------------ streaming (ASGI transport)
    async def stream(
        self, path: str, *, chunk: int, chunks: int, headers: dict[str, str]
    ) -> tuple[httpx.Response, int]:
        """POST ``chunks`` chunks of ``chunk`` bytes, produced only as the app reads them; the
        answer and how many bytes the app had pulled when it answered."""
        pulled = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal pulled
            for _ in range(chunks):
                pulled += chunk
                yield b"[" * chunk

        transport = httpx.ASGITransport(app=self.bot.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            answer = await client.post(path, content=body(), headers=headers)
        return answer, pulled

    # ------------------------------------------------------------------ observing
    def snapshot(self) -> dict[str, Any]:
        """Every table's rows, in full: a rejected request must leave it equal."""
        with self.engine.connect() as connection:
            tables = sorted(inspect(connection).get_table_names())
            return {
                table: sorted(map(tuple, connection.execute(text(f'SELECT * FROM "{table}"')).all()), key=repr)
                for table in tables
            }

    def settle(self, quiet: float = 0.15, timeout: float = 5.0) -> None:
        """Wait until the bot's after-ack Web API calls stop (``quiet`` seconds without a new one)."""
        deadline = time.monotonic() + timeout
        seen, since = len(self.slack.calls), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = len(self.slack.calls)
            if now != seen:
                seen, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def registered(self, command: str) -> bool:
        """Whether the app has a listener for ``command`` (Bolt answers 404 to one it has not)."""
        return self.post(self.command_body(command, "")).status_code != 404


def start_edge(tmp_path: Path, *, team_id: str | None = TEAM) -> Iterator[Edge]:
    """The bot serving ``team_id`` (None: the workspace it learns from the emulator's ``auth.test``)."""
    clock = FrozenClock()
    with SlackEmulator(TOKEN) as slack:
        settings = Settings(
            slack_signing_secret=SECRET,  # type: ignore[arg-type]
            slack_bot_token=TOKEN,  # type: ignore[arg-type]
            slack_api_url=slack.base_url,
            slack_team_id=team_id,
            ingest_token=INGEST_TOKEN,  # type: ignore[arg-type]
            database_url=f"sqlite:///{tmp_path}/security.db",
        )
        bot = build_bot(settings, clock=clock, config_dir=REPO)
        bot.scheduler.remove_all_jobs()  # only the requests under test write to the database
        alert_id = fire_cost_alert(bot.service, bot.engine, clock)
        try:
            with TestClient(bot.app, raise_server_exceptions=False) as client:
                yield Edge(bot, client, slack, alert_id, slack.channel_id(CHANNEL_NAME))
        finally:
            bot.engine.dispose()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """One running bot per test module (hypothesis needs fixtures wider than a function)."""
    yield from start_edge(tmp_path_factory.mktemp("security"))
