"""``incident-bot demo``: the whole product on one machine, with no Slack workspace or PagerDuty.

Four parts run in this one process, each through the interface a real deployment uses:

1. the **Slack sandbox** (:class:`~bot.demo.sandbox_ui.SlackSandbox`) on ``sandbox_port``:
   Slack's Web API for the bot (``SLACK_API_URL`` points at it) and a web page for the person;
2. the **PagerDuty lane** (:class:`~bot.demo.pagerduty_events.PagerDutyEmulator`) on a free
   port: a local Events API v2 receiver that ``PAGERDUTY_EVENTS_URL`` points at, with a demo
   routing key, so P0/P1 alerts page it and the sandbox page shows each trigger, acknowledge
   and resolve as it arrives (whatever the environment says, the demo never pages anyone);
3. the **bot** itself, built by :func:`bot.app.build_bot` from :class:`~bot.settings.Settings`
   exactly as ``incident-bot serve`` builds it (a SQLite file in a temporary directory, random
   signing secret and ingest token, a 1 s evaluation interval, the demo's compressed copy of
   the shipped configuration) and served by uvicorn on ``port``;
4. the **metric feed** (:class:`~bot.demo.feed.MetricFeed`) replaying a scripted incident into
   the ingest API.

Everything lives in a temporary directory that is removed on exit (Ctrl-C or SIGTERM), so a demo
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import uvicorn
from pydantic import SecretStr

from bot.app import Bot, build_bot
from bot.config.defaults import SHIPPED
from bot.demo.config import write_demo_config
from bot.demo.feed import FRAUD_DETECTOR, SUPPORT_BOT, MetricFeed
from bot.demo.pagerduty_events import PagerDutyEmulator
from bot.demo.sandbox_ui import SlackSandbox
from bot.incidents import store as incident_store
from bot.processes import listening_socket
from bot.settings import Settings
from bot.storage.database import session as open_session

log = logging.getLogger(__name__)

DEMO_TOKEN = "xoxb-demo"
DEMO_ROUTING_KEY = "demo" * 8
"""The PagerDuty lane's routing key: 32 characters, like a real integration key."""
HOST = "127.0.0.1"


@dataclass
class Demo:
    """A running demo: where to look, and its parts (the browser test drives them)."""

    sandbox: SlackSandbox
    bot: Bot
    feed: MetricFeed
    bot_url: str
    sandbox_url: str
    workdir: Path
    pagerduty: PagerDutyEmulator


@contextlib.contextmanager
def _serving(bot: Bot, sock: socket.socket) -> Iterator[None]:
    """uvicorn in a thread, with the app's lifespan (which starts and stops the scheduler)."""
    server = uvicorn.Server(uvicorn.Config(bot.app, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="demo-bot", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the bot's web server did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextlib.contextmanager
def running_demo(
    *,
    port: int = 3000,
    sandbox_port: int = 3001,
    speed: float = 1.0,
    on_note: Callable[[float, str], None] | None = None,
) -> Iterator[Demo]:
    """Start sandbox, bot and feed (port 0: any free port); stop them and remove the files on exit."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="incident-bot-demo-")))
        sock = listening_socket(HOST, port)
        stack.callback(sock.close)
        bot_url = f"http://{HOST}:{sock.getsockname()[1]}"
        signing_secret, ingest_token = secrets.token_hex(16), secrets.token_urlsafe(24)
        pagerduty = stack.enter_context(PagerDutyEmulator())
        sandbox = SlackSandbox(
            DEMO_TOKEN,
            signing_secret=signing_secret,
            events_url=f"{bot_url}/slack/events",
            port=sandbox_port,
            pagerduty=pagerduty,
        )
        stack.enter_context(sandbox)
        config_dir = write_demo_config(SHIPPED, workdir / "config", speed=speed)
        settings = Settings(
            database_url=f"sqlite:///{workdir / 'demo.db'}",
            slack_bot_token=SecretStr(DEMO_TOKEN),
            slack_signing_secret=SecretStr(signing_secret),
            slack_app_token=None,  # HTTP mode: the sandbox posts to /slack/events
            slack_api_url=sandbox.base_url,
            pagerduty_routing_key=SecretStr(DEMO_ROUTING_KEY),  # pages reach the local lane, never anyone
            pagerduty_events_url=pagerduty.url,
            smtp_url=None,  # an SMTP_URL in the environment must not email anyone from the demo
            ingest_token=SecretStr(ingest_token),
            evaluation_interval="1s",
            bot_config_dir=config_dir,
            port=sock.getsockname()[1],
        )
        bot = build_bot(settings)
        stack.callback(bot.engine.dispose)
        models = bot.config().models
        sandbox.show_channels(
            dict.fromkeys(m.channel for name in (FRAUD_DETECTOR, SUPPORT_BOT) if (m := models.get(name)) and m.channel)
        )
        stack.enter_context(_serving(bot, sock))

        def narrate(t: float, text: str) -> None:
            sandbox.narrate(text, at=t)
            if on_note is not None:
                on_note(t, text)

        # one push per demo second (at most four a second), so a faster replay keeps its resolution
        interval = max(0.25, 1.0 / speed)
        feed = MetricFeed(
            f"{bot_url}/api/v1/metrics",
            ingest_token,
            speed=speed,
            interval=interval,
            narrate=narrate,
            act=partial(_on_call, sandbox, bot),
        ).start()
        stack.callback(feed.stop)
        yield Demo(sandbox, bot, feed, bot_url, sandbox.url, workdir, pagerduty)


def _on_call(sandbox: SlackSandbox, bot: Bot, model: str, channel: str, line: str) -> None:
    """Run a scripted slash command as the sandbox's user; ``room``: the room of ``model``'s incident."""
    if channel == "room":
        with open_session(bot.engine) as s:
            incident = incident_store.open_for_model(s, model)
        if incident is None or incident.room_id is None:
            log.warning("demo: %s has no incident room yet; skipping %s", model, line)
            return
        channel = incident.room_id
    sandbox.command(channel, line)


def run_demo(port: int = 3000, sandbox_port: int = 3001, open_browser: bool = False, speed: float = 1.0) -> int:
    """Run the demo until Ctrl-C or SIGTERM; the exit status for the command line.

    SIGTERM (``kill``, a container stop) raises KeyboardInterrupt as Ctrl-C does, so both unwind
    ``running_demo``: servers stopped, temporary directory removed, exit status 0. The interrupt
    is caught around the whole demo, so one that comes during start-up cleans up as well.
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A delivery pass that waits out Slack's one-message-per-second pacing makes APScheduler skip a
    # tick and say so; harmless, and noise in the demo's console, which should read as a story.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)

    def say(t: float, text: str) -> None:
        print(f"  [+{t:5.1f}s] {text}", flush=True)

    # Ctrl-C raises KeyboardInterrupt even when the demo was started with SIGINT ignored (a
    # background job of a non-interactive shell inherits that, and Python then installs no
    # handler): the demo must stop on SIGINT however it was started.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with (
            contextlib.suppress(KeyboardInterrupt),
            running_demo(port=port, sandbox_port=sandbox_port, speed=speed, on_note=say) as demo,
        ):
            print(f"Open {demo.sandbox_url} to watch the #ml-alerts and #llm-alerts channels", flush=True)
            print(f"(the bot listens on {demo.bot_url} and pages the PagerDuty panel of that page;"
                  " press Ctrl-C to stop)", flush=True)  # fmt: skip
            if open_browser:
                webbrowser.open(demo.sandbox_url)
            threading.Event().wait()
    except FileNotFoundError as exc:  # before OSError: a missing file is not a busy port
        print(f"incident-bot demo: the shipped configuration is missing ({exc}); reinstall incident-bot",
              file=sys.stderr)  # fmt: skip
        return 2
    except OSError as exc:
        print(f"incident-bot demo: cannot listen ({exc}); choose free ports with --port and --sandbox-port",
              file=sys.stderr)  # fmt: skip
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    print("demo stopped", flush=True)
    return 0
