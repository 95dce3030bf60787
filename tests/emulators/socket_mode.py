"""A local Slack Socket Mode server for tests, on 127.0.0.1 (aiohttp, in a thread of its own).

It speaks the two halves of Socket Mode that an app sees:

- the Web API call ``apps.connections.open`` (``POST /api/apps.connections.open`` with the
  app-level ``xapp-`` token as a Bearer token), answered with
  ``{"ok": true, "url": "ws://127.0.0.1:PORT/link"}``, or ``invalid_auth`` for any other token;
- the websocket at that URL: on connect it sends ``hello``, then whatever envelopes the test
  sends with :meth:`SocketModeEmulator.send`; every message the app sends back is recorded, so
  a test can wait for the ack ``{"envelope_id": ...}`` of an envelope;
- ``auth.test`` with any bot (``xoxb-``) token, naming :attr:`SocketModeEmulator.team_id`: a bot
  without ``SLACK_TEAM_ID`` learns its workspace there.

Point the app's ``SLACK_API_URL`` at :attr:`SocketModeEmulator.base_url`: slack_sdk's Socket
Mode client opens the connection through the app's ``AsyncWebClient``, i.e. through that base
URL with the app token. Other Web API methods are answered ``unknown_method`` and recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web

from tests.emulators.slack_api import SlackEmulator
from tests.support.ports import listening_socket

JsonDict = dict[str, Any]


class SocketModeEmulator:
    """``with SocketModeEmulator(app_token="xapp-…") as sm:`` … ``sm.send(envelope)`` … ``sm.wait_for_ack(id)``."""

    app_id = "A0INCIDENT"

    team_id = SlackEmulator.team_id

    def __init__(self, app_token: str = "xapp-1-A0INCIDENT-1-test") -> None:
        self.app_token = app_token
        self.base_url = ""
        self._cond = threading.Condition()
        self._api_calls: list[tuple[str, str]] = []  # (method, authorization header)
        self._received: list[JsonDict] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._connections = 0
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> SocketModeEmulator:
        sock = listening_socket()
        self._port = int(sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self._port}/api/"
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="socket-mode-emulator", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), loop).result(timeout=10)
        return self

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._web_api)
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    async def _shutdown(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> SocketModeEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ server side
    async def _web_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        authorization = request.headers.get("Authorization", "")
        await request.read()
        with self._cond:
            self._api_calls.append((method, authorization))
            self._cond.notify_all()
        if method == "auth.test" and authorization.startswith("Bearer xoxb-"):
            return web.json_response({"ok": True, "team_id": self.team_id, "user_id": "U0INCIDENT"})
        if method != "apps.connections.open":
            return web.json_response({"ok": False, "error": "unknown_method"})
        if authorization != f"Bearer {self.app_token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self._port}/link"})

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)  # answers the client's pings, as Slack does
        await ws.prepare(request)
        with self._cond:
            self._connections += 1
            self._sockets.append(ws)
            count = self._connections
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": count,
                "debug_info": {"host": "applink-emulator", "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
        )
        with self._cond:
            self._cond.notify_all()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    with self._cond:
                        self._received.append(json.loads(message.data))
                        self._cond.notify_all()
        finally:
            with self._cond:
                if ws in self._sockets:
                    self._sockets.remove(ws)
                self._cond.notify_all()
        return ws

    # ------------------------------------------------------------------ test side
    @property
    def api_calls(self) -> list[tuple[str, str]]:
        with self._cond:
            return list(self._api_calls)

    @property
    def received(self) -> list[JsonDict]:
        """Every JSON message the app sent over the websocket (acks are ``{"envelope_id": …}``)."""
        with self._cond:
            return list(self._received)

    @property
    def connected(self) -> int:
        """Open websocket connections right now."""
        with self._cond:
            return len(self._sockets)

    def wait_connected(self, timeout: float = 10.0) -> None:
        self._wait(lambda: bool(self._sockets), timeout, "no Socket Mode connection")

    def send(self, payload: JsonDict, *, type: str = "interactive", envelope_id: str | None = None) -> str:
        """Send an envelope to the (latest) connected app; returns its ``envelope_id``."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")
        eid = envelope_id or f"env-{next(self._ids):04d}-{int(time.time())}"
        envelope = {"envelope_id": eid, "type": type, "payload": payload, "accepts_response_payload": False}
        with self._cond:
            if not self._sockets:
                raise RuntimeError("no app is connected")
            ws = self._sockets[-1]
        asyncio.run_coroutine_threadsafe(ws.send_json(envelope), self._loop).result(timeout=5)
        return eid

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> JsonDict:
        """The message acknowledging ``envelope_id``; AssertionError if none comes in time."""
        found: list[JsonDict] = []

        def acked() -> bool:
            found[:] = [m for m in self._received if m.get("envelope_id") == envelope_id]
            return bool(found)

        self._wait(acked, timeout, f"no ack for envelope {envelope_id}")
        return found[0]

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{what} within {timeout}s; received {self._received}")
                self._cond.wait(remaining)
