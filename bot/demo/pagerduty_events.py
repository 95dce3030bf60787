"""A local PagerDuty Events API v2 server: the tests' emulator and the demo's PagerDuty lane.

It ships with the product so that ``incident-bot demo`` can point ``PAGERDUTY_EVENTS_URL`` at it
and show the pages on the sandbox page (:mod:`bot.demo.sandbox_ui`); the tests import it through
``tests/emulators/pagerduty_events.py``, so the demo exercises exactly the wire format they check.

Why an emulator instead of mocks: paging is the one notification that must neither be lost
nor doubled, and the ways it goes wrong live at the HTTP boundary -- a 429 when a routing key
sends more than ~120 events a minute, a 5xx, a timeout after PagerDuty already took the event,
a 400 for a summary over 1,024 characters. Serving real HTTP on 127.0.0.1 lets the bot's real
``httpx`` client meet each of them through ``PAGERDUTY_EVENTS_URL``, the setting a user has.

Fidelity choices (from PagerDuty's "Send an Alert Event" and "Events API v2 Overview" pages):

* ``POST /v2/enqueue`` with a JSON object; 202 ``{"status": "success", "message": "Event
  processed", "dedup_key": ...}``; a trigger without a ``dedup_key`` gets a generated one.
* Invalid events get 400 ``{"status": "invalid event", "message": "Event object is invalid",
  "errors": [...]}``: ``routing_key`` a non-empty string (exactly 32 characters only with
  ``strict_routing_key=True``: test keys are rarely real-looking), ``event_action`` one of
  trigger/acknowledge/resolve, ``dedup_key`` at most 255 characters (and required for
  acknowledge/resolve), and for a trigger ``payload.summary`` (at most 1,024 characters),
  ``payload.source`` and ``payload.severity`` (critical/error/warning/info); ``custom_details``
  an object, ``links`` objects with an ``href``, ``images`` objects with a ``src``; bodies
  over 512 KB are refused.
* De-duplication is per ``(routing_key, dedup_key)``: a trigger on an open incident adds to it
  (its status does not change: an acknowledged incident stays acknowledged); once resolved, a
  trigger with the same key opens a *new* incident, and acknowledge/resolve events for a key
  with no open incident are accepted (202) but dropped -- as PagerDuty does.
* Injected faults (``fail_next``) answer without applying the event; ``delay_next`` applies
  the event and then answers late, which is what a client timeout looks like in production.

Standard library only, so the emulator adds no dependencies.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from bot.demo.loopback import LoopbackServer, write_answer

__all__ = ["ENQUEUE_PATH", "Event", "Incident", "JsonDict", "PagerDutyEmulator"]

JsonDict = dict[str, Any]
Event = JsonDict
"""One recorded request: ``body`` (parsed JSON, or None), ``raw`` (bytes as text), ``headers``
(lower-case keys), ``at`` (``clock()`` time), ``status`` and ``response`` (what was answered),
``applied`` (True when it changed the incidents view)."""

ENQUEUE_PATH = "/v2/enqueue"
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
MAX_BODY = 512 * 1024
INVALID = "Event object is invalid"
_FAULT_BODIES: dict[int, JsonDict] = {
    400: {"status": "invalid event", "message": INVALID, "errors": ["injected fault"]},
    429: {"status": "throttle event", "message": "Requests for this service are arriving too quickly."},
}


@dataclass(frozen=True)
class Incident:
    """One alert PagerDuty opened; ``number`` counts incidents in the order they were opened."""

    number: int
    routing_key: str
    dedup_key: str
    status: str
    summary: str
    severity: str
    opened_at: float
    triggers: int = 1
    """Trigger events applied to it (1 + de-duplicated re-sends)."""
    acknowledged_at: float | None = None
    resolved_at: float | None = None
    events: list[str] = field(default_factory=list)
    """The event actions applied, in order."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a delayed handler must never block stop()

    def __init__(self, emulator: PagerDutyEmulator) -> None:
        self.emulator = emulator
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging: it would flood pytest's captured output."""

    def do_GET(self) -> None:
        self._answer(405, {}, {"status": "error", "message": "Method Not Allowed"}, 0.0)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._answer(*self.server.emulator._handle(self.path, headers, body))

    def _answer(self, status: int, extra: dict[str, str], payload: JsonDict, delay: float) -> None:
        if delay:
            self.server.emulator._stopping.wait(delay)  # wakes early on stop()
        write_answer(self, status, "application/json", extra, json.dumps(payload).encode())


class PagerDutyEmulator(LoopbackServer):
    """PagerDuty's Events API v2 on 127.0.0.1 with recorded events, incidents and fault injection.

    Use as ``with PagerDutyEmulator() as pd: post(pd.url, json=...)``. All state is guarded by
    one lock, so tests may inspect it while the bot posts from other threads.
    """

    def __init__(self, *, strict_routing_key: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.strict_routing_key = strict_routing_key
        self.base_url = ""
        self.url = ""
        self._clock = clock
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # ----------------------------------------------------------- lifecycle
    thread_name = "pagerduty-emulator"

    def _bind(self) -> _Server:
        return _Server(self)

    def _bound(self, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.url = self.base_url + ENQUEUE_PATH

    def reset(self) -> None:
        """Forget events, incidents and pending faults."""
        with self._cond:
            self._events: list[Event] = []
            self._incidents: list[Incident] = []
            self._open: dict[tuple[str, str], int] = {}  # (routing key, dedup key) -> index in _incidents
            self._latest: dict[tuple[str, str], int] = {}
            self._faults: deque[tuple[int, dict[str, str], JsonDict]] = deque()
            self._delays: deque[float] = deque()
            self._numbers = itertools.count(1)

    # --------------------------------------------------------- fault injection
    def fail_next(self, times: int = 1, status: int = 429, *, retry_after: float | None = None) -> None:
        """Answer the next ``times`` events with HTTP ``status`` (429, 5xx or 400) without applying them.

        PagerDuty does not document a ``Retry-After`` on the Events API, so one is sent only
        when ``retry_after`` is given.
        """
        if status < 400:
            raise ValueError("fail_next needs an HTTP error status")
        body = _FAULT_BODIES.get(status, {"status": "error", "message": f"HTTP {status}"})
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        with self._cond:
            self._faults.extend([(status, headers, body)] * times)

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Apply the next ``times`` events at once but answer only after ``seconds``."""
        with self._cond:
            self._delays.extend([seconds] * times)

    # -------------------------------------------------------------- inspection
    @property
    def events(self) -> list[Event]:
        """Every request received (including refused and fault-injected ones), oldest first."""
        with self._cond:
            return copy.deepcopy(self._events)

    @property
    def accepted(self) -> list[Event]:
        """The events answered 202, oldest first."""
        return [e for e in self.events if e["status"] == 202]

    @property
    def incidents(self) -> dict[tuple[str, str], Incident]:
        """The latest incident of each ``(routing_key, dedup_key)``."""
        with self._cond:
            return {
                key: replace(self._incidents[i], events=list(self._incidents[i].events))
                for key, i in self._latest.items()
            }

    @property
    def all_incidents(self) -> list[Incident]:
        """Every incident ever opened, in order: a re-fire after a resolve shows up twice."""
        with self._cond:
            return [replace(i, events=list(i.events)) for i in self._incidents]

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 5.0, *, count: int = 1) -> Event:
        """Block until ``count`` recorded events match ``predicate``; return the count-th.

        Raises AssertionError listing what was received, so a failure says what the bot did instead.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matches = [e for e in self._events if predicate(e)]
                if len(matches) >= count:
                    return copy.deepcopy(matches[count - 1])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [((e["body"] or {}).get("event_action"), e["status"]) for e in self._events]
                    raise AssertionError(
                        f"no {count} event(s) matching within {timeout}s (found {len(matches)}); received: {seen}"
                    )
                self._cond.wait(remaining)

    # -------------------------------------------------------------- dispatching
    def _handle(
        self, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], JsonDict, float]:
        """Parse, apply faults, validate, apply and record one request; returns what to send."""
        path = urlsplit(raw_path).path
        parsed: Any = None
        errors: list[str] = []
        if len(body) > MAX_BODY:
            errors.append(f"Event is too large: {len(body)} bytes (limit {MAX_BODY})")
        else:
            try:
                parsed = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                errors.append("Event is not valid JSON")
        with self._cond:
            delay = self._delays.popleft() if self._delays else 0.0
            extra: dict[str, str] = {}
            applied = False
            response: JsonDict
            if path != ENQUEUE_PATH:
                status, response = 404, {"status": "error", "message": "Not Found"}
            elif self._faults:
                status, extra, response = self._faults.popleft()
                response = copy.deepcopy(response)
            else:
                if not errors:
                    errors = self._validate(parsed)
                if errors:
                    status, response = 400, {"status": "invalid event", "message": INVALID, "errors": errors}
                else:
                    dedup_key, applied = self._apply(parsed)
                    status = 202
                    response = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
            self._events.append(
                {
                    "body": copy.deepcopy(parsed) if isinstance(parsed, dict) else None,
                    "raw": body.decode("utf-8", "replace"),
                    "headers": headers,
                    "path": path,
                    "at": self._clock(),
                    "status": status,
                    "response": copy.deepcopy(response),
                    "applied": applied,
                }
            )
            self._cond.notify_all()
        return status, extra, response, delay

    def _validate(self, event: Any) -> list[str]:
        if not isinstance(event, dict):
            return ["Event must be a JSON object"]
        errors: list[str] = []
        key = event.get("routing_key")
        if not isinstance(key, str) or not key.strip():
            errors.append("'routing_key' is missing or blank")
        elif self.strict_routing_key and len(key) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        action = event.get("event_action")
        if action not in ACTIONS:
            errors.append("'event_action' is missing or invalid (must be one of 'trigger', 'acknowledge' or 'resolve')")
        dedup = event.get("dedup_key")
        if dedup is not None and not isinstance(dedup, str):
            errors.append("'dedup_key' must be a string")
        elif isinstance(dedup, str) and len(dedup) > MAX_DEDUP_KEY:
            errors.append(f"Length of 'dedup_key' is too long (must be at most {MAX_DEDUP_KEY} characters)")
        elif action in ("acknowledge", "resolve") and not dedup:
            errors.append(f"'dedup_key' is required for {action} events")
        if action == "trigger":
            errors.extend(self._validate_trigger(event))
        return errors

    @staticmethod
    def _validate_trigger(event: JsonDict) -> list[str]:
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return ["'payload' is missing or not an object"]
        errors: list[str] = []
        for name in ("summary", "source"):
            value = payload.get(name)
            if not isinstance(value, str) or not value.strip():
                errors.append(f"'payload.{name}' is missing or blank")
        summary = payload.get("summary")
        if isinstance(summary, str) and len(summary) > MAX_SUMMARY:
            errors.append(f"Length of 'payload.summary' is too long (must be at most {MAX_SUMMARY} characters)")
        if payload.get("severity") not in SEVERITIES:
            errors.append(
                "'payload.severity' is missing or invalid (must be one of 'critical', 'error', 'warning' or 'info')"
            )
        if payload.get("custom_details") is not None and not isinstance(payload["custom_details"], dict):
            errors.append("'payload.custom_details' must be an object")
        for name, required in (("links", "href"), ("images", "src")):
            items = event.get(name)
            if items is None:
                continue
            if not isinstance(items, list) or not all(isinstance(i, dict) and i.get(required) for i in items):
                errors.append(f"'{name}' must be a list of objects, each with '{required}'")
        return errors

    def _apply(self, event: JsonDict) -> tuple[str, bool]:
        """Change the incidents view as PagerDuty would; returns (dedup key, whether applied)."""
        action: str = event["event_action"]
        dedup_key: str = event.get("dedup_key") or uuid.uuid4().hex
        key = (str(event["routing_key"]), dedup_key)
        now = self._clock()
        index = self._open.get(key)
        if action == "trigger":
            payload = event["payload"]
            if index is None:
                incident = Incident(
                    number=next(self._numbers),
                    routing_key=key[0],
                    dedup_key=dedup_key,
                    status="triggered",
                    summary=payload["summary"],
                    severity=payload["severity"],
                    opened_at=now,
                    events=["trigger"],
                )
                self._incidents.append(incident)
                self._open[key] = self._latest[key] = len(self._incidents) - 1
            else:
                current = self._incidents[index]
                self._incidents[index] = replace(
                    current,
                    triggers=current.triggers + 1,
                    summary=payload["summary"],
                    severity=payload["severity"],
                    events=[*current.events, "trigger"],
                )
            return dedup_key, True
        if index is None:
            return dedup_key, False  # no open incident: PagerDuty accepts and drops it
        current = self._incidents[index]
        if action == "acknowledge":
            self._incidents[index] = replace(
                current,
                status="acknowledged",
                acknowledged_at=current.acknowledged_at or now,
                events=[*current.events, action],
            )
        else:
            self._incidents[index] = replace(
                current, status="resolved", resolved_at=now, events=[*current.events, action]
            )
            del self._open[key]
        return dedup_key, True
