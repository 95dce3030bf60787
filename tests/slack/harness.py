"""A running Slack surface for tests: the real Starlette route under uvicorn on 127.0.0.1, the
Slack Web API emulator behind ``SLACK_API_URL``, a SQLite file with one firing alert, and
helpers that build and sign requests exactly as Slack does (v0 HMAC over the raw body)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import uvicorn
from sqlalchemy.engine import Engine
from starlette.applications import Starlette

from bot.alerts import store
from bot.alerts.lifecycle import Alert
from bot.clock import FrozenClock
from bot.config.loader import Config, load_config
from bot.config.schema import Access
from bot.incidents import store as incident_store
from bot.incidents.incident import Incident
from bot.queries import Queries
from bot.service import AlertService, every_channel
from bot.settings import Settings
from bot.slack import SlackApp, build_slack_app, slack_routes
from bot.storage.database import make_engine, migrate
from bot.storage.database import session as open_session
from tests.emulators.slack_api import SlackEmulator
from tests.support import served as support

REPO = Path(__file__).resolve().parents[2]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test"
ANA, BEN, EVE = "U0ANA0001", "U0BEN0002", "U0EVE0003"
CHANNEL_NAME = "#llm-alerts"


def sign(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack adds: ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class ConfigBox:
    """The configuration the app reads per request; tests swap it (access policies)."""

    config: Config

    def __call__(self) -> Config:
        return self.config

    def allow(self, allow: str, usergroup: str | None = None) -> None:
        self.config = replace(self.config, access=Access(allow=allow, usergroup=usergroup))  # type: ignore[arg-type]


@dataclass
class SlackEnv:
    url: str
    http: httpx.Client
    slack: SlackEmulator
    engine: Engine
    service: AlertService
    clock: FrozenClock
    config: ConfigBox
    alert_id: int
    channel: str
    _seq: list[int] = field(default_factory=lambda: [0])

    # ---------------------------------------------------------------- sending
    def post(self, body: bytes, content_type: str, *, headers: dict[str, str] | None = None) -> httpx.Response:
        signed = {"Content-Type": content_type, **sign(body), **(headers or {})}
        return self.http.post(self.url, content=body, headers=signed)

    def click(
        self, action_id: str, *, user: str = ANA, value: str | None = None, overrides: dict[str, Any] | None = None
    ) -> httpx.Response:
        return self.post(*self.click_body(action_id, user=user, value=value, overrides=overrides))

    def click_body(
        self, action_id: str, *, user: str = ANA, value: str | None = None, overrides: dict[str, Any] | None = None
    ) -> tuple[bytes, str]:
        """A button click as Slack posts it: form field ``payload`` holding the JSON."""
        self._seq[0] += 1
        payload = block_actions(
            action_id,
            user=user,
            value=str(self.alert_id) if value is None else value,
            channel=self.channel,
            response_url=self.slack.response_url(channel=self.channel),
            trigger_id=f"1337.{self._seq[0]}.abcdef",
        )
        payload.update(overrides or {})
        return urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"

    def choose(self, verb: str, *, user: str = ANA, alert_id: int | None = None) -> httpx.Response:
        """Pick ``verb`` in the overflow menu of an alert's section of the incident message."""
        value = f"{verb}:{self.alert_id if alert_id is None else alert_id}"
        menu = {
            "action_id": "alert_menu",
            "block_id": f"alert_{self.alert_id}",
            "type": "overflow",
            "selected_option": {"text": {"type": "plain_text", "text": verb}, "value": value},
            "action_ts": f"{time.time():.6f}",
        }
        body, content_type = self.click_body("alert_menu", user=user, value="")
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        payload["actions"] = [menu]
        return self.post(urlencode({"payload": json.dumps(payload)}).encode(), content_type)

    @property
    def incident_id(self) -> int:
        incident_id = self.alert().incident_id
        assert incident_id is not None
        return incident_id

    def incident(self) -> Incident:
        with open_session(self.engine) as s:
            found = incident_store.get(s, self.incident_id)
        assert found is not None
        return found

    def command(self, command: str, text: str = "", *, user: str = ANA) -> httpx.Response:
        form = {
            "token": "legacy-verification-token",
            "team_id": SlackEmulator.team_id,
            "team_domain": "emulated",
            "channel_id": self.channel,
            "channel_name": CHANNEL_NAME.lstrip("#"),
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0INCIDENT",
            "response_url": self.slack.response_url(),
            "trigger_id": "1337.42.commandtrigger",
        }
        return self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")

    def home_opened(self, *, user: str = ANA, headers: dict[str, str] | None = None) -> httpx.Response:
        body = {
            "token": "legacy-verification-token",
            "team_id": SlackEmulator.team_id,
            "api_app_id": "A0INCIDENT",
            "type": "event_callback",
            "event_id": "Ev0HOME0001",
            "event_time": int(time.time()),
            "event": {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home", "event_ts": "1.2"},
        }
        return self.post(json.dumps(body).encode(), "application/json", headers=headers)

    # ---------------------------------------------------------------- observing
    def alert(self) -> Alert:
        with open_session(self.engine) as s:
            found = store.get(s, self.alert_id)
        assert found is not None
        return found

    def wait_until(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s; Slack calls: {self.method_log()}")
            time.sleep(0.01)

    def method_log(self) -> list[str]:
        return [c.method for c in self.slack.calls]

    def ephemerals(self, user: str | None = None) -> list[str]:
        calls = self.slack.calls_to("chat.postEphemeral")
        return [str(c.params.get("text")) for c in calls if user is None or c.params.get("user") == user]


def block_actions(
    action_id: str, *, user: str, value: str, channel: str, response_url: str, trigger_id: str = "1337.1.abcdef"
) -> dict[str, Any]:
    """A ``block_actions`` payload for a click on an alert button, as Slack sends it (HTTP or Socket Mode)."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": SlackEmulator.team_id},
        "api_app_id": "A0INCIDENT",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": "1767603600.000100", "channel_id": channel},
        "trigger_id": trigger_id,
        "team": {"id": SlackEmulator.team_id, "domain": "emulated"},
        "channel": {"id": channel, "name": CHANNEL_NAME.lstrip("#")},
        "message": {"type": "message", "ts": "1767603600.000100", "text": "alert"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "alert_actions",
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def fire_cost_alert(service: AlertService, engine: Engine, clock: FrozenClock) -> int:
    """support-bot spending $450 of a $500 budget fires ``llm_cost_runaway`` at once (no ``for:``)."""
    service.ingest([("support-bot", "daily_cost_usd", clock.now(), 450.0)])
    service.evaluate_once()
    with open_session(engine) as s:
        fired = [a for a in store.active(s) if a.rule == "llm_cost_runaway"]
    assert len(fired) == 1 and fired[0].id is not None, fired
    return fired[0].id


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a socket bound to a free 127.0.0.1 port, from a thread."""
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    with support.serving(config, name="uvicorn-slack") as port:
        yield f"http://127.0.0.1:{port}"


@contextmanager
def closing_after_ack(app: SlackApp) -> Iterator[None]:
    """The app's after-ack worker runs for the block and is drained and stopped after it (as the lifespan does)."""
    app.after_ack.start()
    try:
        yield
    finally:
        app.after_ack.close(timeout=5)


_CONFIG: Config | None = None


def shipped_config() -> Config:
    global _CONFIG
    if _CONFIG is None:
        _CONFIG = load_config(REPO)
    return _CONFIG


@contextmanager
def slack_env(tmp_path: Path) -> Iterator[SlackEnv]:
    """Everything running, with one firing ``llm_cost_runaway:support-bot`` alert."""
    clock = FrozenClock()
    box = ConfigBox(shipped_config())
    engine = make_engine(f"sqlite:///{tmp_path}/slack.db")
    migrate(engine)
    service = AlertService(engine, clock, box, every_channel(["recording"]))
    alert_id = fire_cost_alert(service, engine, clock)
    with SlackEmulator(TOKEN) as slack:
        settings = Settings(
            slack_signing_secret=SECRET,  # type: ignore[arg-type]
            slack_bot_token=TOKEN,  # type: ignore[arg-type]
            slack_api_url=slack.base_url,
            database_url=f"sqlite:///{tmp_path}/slack.db",
        )
        app = build_slack_app(settings=settings, service=service, queries=Queries(engine), config=box, clock=clock)
        with (
            serving(Starlette(routes=slack_routes(app))) as base,
            httpx.Client(timeout=10) as http,
            closing_after_ack(app),
        ):
            yield SlackEnv(
                url=f"{base}/slack/events",
                http=http,
                slack=slack,
                engine=engine,
                service=service,
                clock=clock,
                config=box,
                alert_id=alert_id,
                channel=slack.channel_id(CHANNEL_NAME),
            )
    engine.dispose()
