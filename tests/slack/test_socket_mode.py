"""Socket Mode (SLACK_APP_TOKEN): the ASGI lifespan connects to a local Socket Mode server
(``tests/emulators/socket_mode.py``) through ``SLACK_API_URL``, a button click arrives as an
envelope, the app acks the envelope and the alert changes in the database (SPEC §4, issue 4)."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from starlette.routing import Route

from bot.alerts import store
from bot.alerts.lifecycle import AlertState
from bot.app import Bot, build_bot
from bot.clock import FrozenClock
from bot.logs import TextFormatter
from bot.notify.notifier import LogNotifier
from bot.settings import Settings
from bot.slack import app as slack_app
from bot.storage.database import session as open_session
from tests.emulators.socket_mode import SocketModeEmulator
from tests.slack.harness import ANA, REPO, SECRET, TOKEN, block_actions, fire_cost_alert
from tests.support.ports import free_port

APP_TOKEN = "xapp-1-A0INCIDENT-1-test"
CHANNEL = "C0LLMALERTS"


def make_bot(tmp_path: Path, sm: SocketModeEmulator, *, signing_secret: str | None = None) -> tuple[Bot, int]:
    """A bot with Socket Mode on (and HTTP too when a signing secret is given) and one firing alert."""
    settings = Settings(
        slack_bot_token=TOKEN,  # type: ignore[arg-type]
        slack_app_token=APP_TOKEN,  # type: ignore[arg-type]
        slack_signing_secret=signing_secret,  # type: ignore[arg-type]
        slack_api_url=sm.base_url,
        database_url=f"sqlite:///{tmp_path}/socket.db",
        evaluation_interval="1h",
        bot_config_dir=REPO,
    )
    clock = FrozenClock()
    bot = build_bot(settings, clock=clock, notifiers={"log": LogNotifier()}, config_dir=REPO)
    return bot, fire_cost_alert(bot.service, bot.engine, clock)


def state_of(bot: Bot, alert_id: int) -> AlertState:
    with open_session(bot.engine) as s:
        alert = store.get(s, alert_id)
    assert alert is not None
    return alert.state


def slack_events_routes(bot: Bot) -> list[str]:
    return [r.path for r in bot.app.routes if isinstance(r, Route) and r.path == "/slack/events"]


async def until(check: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):  # type: ignore[arg-type]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_acknowledge_over_socket_mode_acks_the_envelope_and_acknowledges_the_alert(tmp_path: Path) -> None:
    with SocketModeEmulator(app_token=APP_TOKEN) as sm:
        bot, alert_id = make_bot(tmp_path, sm)
        assert slack_events_routes(bot) == [], "no signing secret: Socket Mode only, no HTTP endpoint"
        click = block_actions(
            "alert_acknowledge", user=ANA, value=str(alert_id), channel=CHANNEL, response_url="https://invalid/"
        )

        async def scenario() -> None:
            # everything that blocks runs in a thread: the app's Socket Mode client shares this loop
            async with bot.app.router.lifespan_context(bot.app):
                await asyncio.to_thread(sm.wait_connected)
                opened = [call for call in sm.api_calls if call[0] == "apps.connections.open"]
                assert opened == [("apps.connections.open", f"Bearer {APP_TOKEN}")]
                envelope_id = await asyncio.to_thread(sm.send, click)
                ack = await asyncio.to_thread(sm.wait_for_ack, envelope_id)
                assert ack == {"envelope_id": envelope_id}
                await until(lambda: state_of(bot, alert_id) is AlertState.ACKNOWLEDGED)
            await until(lambda: sm.connected == 0)  # shutdown closed the websocket

        asyncio.run(scenario())
        with open_session(bot.engine) as s:
            alert = store.get(s, alert_id)
        assert alert is not None and alert.acknowledged_by == ANA
        bot.engine.dispose()


def test_http_stays_available_beside_socket_mode(tmp_path: Path) -> None:
    with SocketModeEmulator(app_token=APP_TOKEN) as sm:
        bot, _ = make_bot(tmp_path, sm, signing_secret=SECRET)
        assert slack_events_routes(bot) == ["/slack/events"]

        async def scenario() -> None:
            async with bot.app.router.lifespan_context(bot.app):
                await asyncio.to_thread(sm.wait_connected)

        asyncio.run(scenario())
        bot.engine.dispose()


def test_socket_mode_with_slack_unreachable_logs_each_retry_on_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline (nothing listens at SLACK_API_URL): each failed attempt is one WARNING line saying
    why, not slack_sdk's ERROR with a traceback, repeated every retry for as long as Slack is away."""
    monkeypatch.setattr(slack_app, "SOCKET_MODE_CONNECT_WAIT", 0.1)  # serve at once; the client keeps trying
    closed = free_port()  # a port nothing listens on
    settings = Settings(
        slack_bot_token=TOKEN,  # type: ignore[arg-type]
        slack_app_token=APP_TOKEN,  # type: ignore[arg-type]
        slack_api_url=f"http://127.0.0.1:{closed}/api/",
        database_url=f"sqlite:///{tmp_path}/offline.db",
        evaluation_interval="1h",
        bot_config_dir=REPO,
    )
    bot = build_bot(settings, clock=FrozenClock(), notifiers={"log": LogNotifier()}, config_dir=REPO)
    records: list[logging.LogRecord] = []
    retried = threading.Event()

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
            if record.name == "bot.slack.socket_mode" and record.levelno >= logging.WARNING:
                retried.set()

    keep = Keep(level=logging.WARNING)
    logging.getLogger().addHandler(keep)
    try:

        async def scenario() -> None:
            async with bot.app.router.lifespan_context(bot.app):
                assert await asyncio.to_thread(retried.wait, 30), [r.getMessage() for r in records]

        asyncio.run(scenario())
    finally:
        logging.getLogger().removeHandler(keep)
        bot.engine.dispose()
    attempts = [r for r in records if r.name == "bot.slack.socket_mode"]
    assert attempts and all(r.levelno == logging.WARNING and not r.exc_info for r in attempts)
    line = TextFormatter().format(attempts[0])
    assert "\n" not in line and "Socket Mode cannot connect to Slack (ClientConnectorError: " in line, line
    assert not [r for r in records if r.exc_info and r.name.startswith(("slack", "bot.slack"))]
