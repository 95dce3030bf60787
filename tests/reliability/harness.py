"""Shared pieces of the fault-injection tests: the bot served by uvicorn in a thread, emulators
that fail on a script, signed clicks, and the "everything exactly once" checks.

The bot runs on a real clock with small outbox backoffs (``OUTBOX_BACKOFF_BASE`` /
``OUTBOX_BACKOFF_CAP``) and 1-second client timeouts, so an outage of a few seconds and its
recovery fit in a test of a few seconds. Its Slack and PagerDuty notifiers are the production
ones, built by the same ``from_settings`` the bot uses (only the timeout differs); they reach
the emulators over real sockets through ``SLACK_API_URL`` and ``PAGERDUTY_EVENTS_URL``.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from unittest.mock import patch
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.app import Bot, build_bot
from bot.clock import SystemClock
from bot.config.holder import ConfigHolder
from bot.notify.notifier import Notifier
from bot.notify.pagerduty import PagerDutyNotifier
from bot.notify.slack import SlackNotifier
from bot.notify.slack_message import INCIDENT_EVENT as ALERT_EVENT
from bot.notify.slack_message import REPLY_EVENT
from bot.settings import Settings
from bot.storage.database import make_engine, session
from bot.storage.tables import AlertRow, OutboxRow
from tests.e2e.test_escalation_crash import fast_config, outbox_id
from tests.emulators.pagerduty_events import PagerDutyEmulator
from tests.emulators.slack_api import Call, SlackEmulator
from tests.slack.harness import SECRET, TOKEN, sign
from tests.support.served import UvicornThread

INGEST = "reliability-t0ken"
ROUTING_KEY = "routing-key-reliability"
USER = "U0ONCALL1"
CLIENT_TIMEOUT = 1.0
"""The notifiers' HTTP timeout: an emulator answering later than this is a timeout."""
LATE = 3.0
"""How late a scripted ``"timeout"`` answers (after applying the request, as a real timeout can)."""

COST = {"model": "support-bot", "metrics": {"daily_cost_usd": 455.2}}
"""Fires ``llm_cost_runaway`` (P1, pages) for support-bot in ``#llm-alerts``."""
COST_OK = {"model": "support-bot", "metrics": {"daily_cost_usd": 10.0}}
DRIFT = {
    "model": "fraud-detector-v2",
    "metrics": {"drifted_feature_count": 9, "total_features": 10},
    "labels": {"top_drifted_features": "amount,merchant"},
}
"""Fires ``significant_data_drift`` (P2, Slack only) for fraud-detector-v2 in ``#ml-alerts``."""
DRIFT_OK = {"model": "fraud-detector-v2", "metrics": {"drifted_feature_count": 0, "total_features": 10}}
ACCURACY = {"model": "fraud-detector-v2", "metrics": {"current_accuracy": 0.5}}
"""Fires ``accuracy_degradation`` (P1, pages) for fraud-detector-v2 in ``#ml-alerts``."""
ACCURACY_OK = {"model": "fraud-detector-v2", "metrics": {"current_accuracy": 0.99}}

T = TypeVar("T")
Step = int | str
"""A scripted answer: an HTTP status (429 and 5xx), ``"timeout"`` (applied, answered too late) or ``"ok"``."""


# ------------------------------------------------------------------------------ scripted emulators


class ScriptedSlack(SlackEmulator):
    """The Slack emulator, plus per-method scripts of faults consumed one call at a time, in
    order -- so "five 429s, then 500s, then timeouts" means exactly that, whatever else the bot
    calls in between (the emulator's own fault and delay queues are independent of each other)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._scripts: dict[str, deque[Step]] = {}
        self._script_retry_after = 1
        super().__init__(*args, **kwargs)

    def script(self, method: str, steps: Iterable[Step], *, retry_after: int = 1) -> None:
        with self._cond:
            self._script_retry_after = retry_after
            self._scripts.setdefault(method, deque()).extend(steps)

    def script_left(self, method: str) -> int:
        with self._cond:
            return len(self._scripts.get(method, ()))

    def _handle(self, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any, float]:
        method = raw_path.split("?", 1)[0].removeprefix("/api/")
        with self._cond:
            steps = self._scripts.get(method)
            step = steps.popleft() if steps else "ok"
            if step == "timeout":
                self._delays[method].appendleft(LATE)
            elif isinstance(step, int):
                self.fail_next(method, 1, status=step, retry_after=self._script_retry_after)
                self._faults[method].rotate(1)  # the fault just added answers this call
            return super()._handle(raw_path, headers, body)


class ScriptedPagerDuty(PagerDutyEmulator):
    """The PagerDuty emulator with a script of faults consumed one event at a time, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._script: deque[Step] = deque()
        self.timed_out: list[int] = []
        """Indexes (in ``events``) of the requests answered too late: applied, but the bot never heard."""
        super().__init__(*args, **kwargs)

    def script(self, steps: Iterable[Step]) -> None:
        with self._cond:
            self._script.extend(steps)

    def script_left(self) -> int:
        with self._cond:
            return len(self._script)

    def _handle(self, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any, float]:
        with self._cond:
            step = self._script.popleft() if self._script else "ok"
            if step == "timeout":
                self._delays.appendleft(LATE)
                self.timed_out.append(len(self._events))
            elif isinstance(step, int):
                self.fail_next(1, step, retry_after=1 if step == 429 else None)
                self._faults.rotate(1)
            return super()._handle(raw_path, headers, body)


# ------------------------------------------------------------------------------ the bot in a thread


def bot_settings(
    database_url: str, config_dir: Path, slack: SlackEmulator, pagerduty: PagerDutyEmulator | None, **overrides: Any
) -> Settings:
    """The bot's settings for a test; kept clicks wait beside the configuration, never in the
    working directory."""
    defaults: dict[str, Any] = {"pending_actions_file": config_dir.parent / "pending-actions.jsonl"}
    return Settings(
        **(defaults | overrides),
        slack_bot_token=TOKEN,  # type: ignore[arg-type]
        slack_signing_secret=SECRET,  # type: ignore[arg-type]
        slack_app_token=None,
        slack_api_url=slack.base_url,
        pagerduty_routing_key=ROUTING_KEY if pagerduty else None,  # type: ignore[arg-type]
        pagerduty_events_url=pagerduty.url if pagerduty else "http://127.0.0.1:9/v2/enqueue",
        ingest_token=INGEST,  # type: ignore[arg-type]
        evaluation_interval="1s",
        database_url=database_url,
        bot_config_dir=config_dir,
        prometheus_url=None,
        outbox_backoff_base=0.2,
        outbox_backoff_cap=1.0,
    )


def reliability_config(target: Path) -> Path:
    """The shipped configuration with ``group_wait: 0s`` and an escalation timeline far beyond
    any test, so every Slack post and page in these tests comes from a firing, a click or a recovery."""
    return fast_config(target, steps=[(3600, "P3"), (7200, "P2"), (10800, "P1")])


class Running:
    """One bot served by uvicorn on 127.0.0.1 in a daemon thread."""

    def __init__(self, bot: Bot, slack: SlackEmulator, pagerduty: PagerDutyEmulator | None, notify_engine: Engine):
        self.bot = bot
        self.slack = slack
        self.pagerduty = pagerduty
        self._notify_engine = notify_engine
        config = uvicorn.Config(bot.app, log_level="warning", lifespan="on", access_log=False)
        self._served = UvicornThread(config, name="uvicorn-reliability")
        self.thread = self._served.thread
        self.base = f"http://127.0.0.1:{self._served.start()}"
        self.http = httpx.Client(timeout=40)

    @property
    def engine(self) -> Engine:
        return self.bot.engine

    def healthz(self) -> dict[str, Any]:
        answer = self.http.get(f"{self.base}/healthz", timeout=5)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def push_once(self, sample: Any) -> httpx.Response:
        return self.http.post(f"{self.base}/api/v1/metrics", headers={"Authorization": f"Bearer {INGEST}"}, json=sample)

    def push(self, sample: Any, *, within: float = 30.0) -> list[int]:
        """Push like a well-behaved client: retry a 503 or a refused connection until a 202.
        Returns every status seen (the last is 202); anything else fails the test."""
        seen: list[int] = []
        deadline = time.monotonic() + within
        while True:
            try:
                status = self.push_once(sample).status_code
            except httpx.TransportError:
                status = 0
            seen.append(status)
            if status == 202:
                return seen
            assert status in (0, 503), f"ingest answered {status}: {seen}"
            assert time.monotonic() < deadline, f"ingest did not take the sample within {within:g}s: {seen}"
            time.sleep(0.2)

    def click(self, action: str, alert: AlertRow) -> httpx.Response:
        """A signed button click on the alert's root message, as Slack sends it."""
        assert alert.slack_channel and alert.slack_ts, alert
        body = click_body(action, alert.id or 0, channel=alert.slack_channel, ts=alert.slack_ts)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
        return self.http.post(f"{self.base}/slack/events", content=body, headers=headers, timeout=10)

    def close(self) -> None:
        self._served.stop()
        self.http.close()
        self.bot.engine.dispose()
        self._notify_engine.dispose()


def start_bot(
    database_url: str,
    config_dir: Path,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator | None,
    *,
    sqlite_busy_timeout: float | None = None,
    **settings_overrides: Any,
) -> Running:
    """Build the bot as ``serve`` does, with notifiers whose timeout is :data:`CLIENT_TIMEOUT`.
    ``sqlite_busy_timeout`` (seconds) replaces the 30 s SQLite waits for a lock, so a test can
    hold a lock longer than the bot waits without taking half a minute."""
    settings = bot_settings(database_url, config_dir, slack, pagerduty, **settings_overrides)

    def engine_for(url: str, **options: Any) -> Engine:
        engine = make_engine(url, **options)
        if sqlite_busy_timeout is not None:
            event.listen(engine, "connect", partial(_busy_timeout, seconds=sqlite_busy_timeout))  # after the bot's
        return engine

    notify_engine = engine_for(database_url)  # the notifier's own pool on the same database
    holder = ConfigHolder(config_dir)
    notifiers: dict[str, Notifier] = {
        "slack": SlackNotifier.from_settings(
            settings, engine=notify_engine, config=holder, clock=SystemClock(), timeout=CLIENT_TIMEOUT
        )
    }
    if pagerduty is not None:
        notifiers["pagerduty"] = PagerDutyNotifier.from_settings(settings, timeout=CLIENT_TIMEOUT)
    with patch("bot.app.make_engine", engine_for):
        bot = build_bot(settings, config_dir=config_dir, notifiers=notifiers)
    running = Running(bot, slack, pagerduty, notify_engine)
    assert running.healthz() == {"status": "ok", "scheduler": True}
    return running


def _busy_timeout(dbapi_connection: Any, _record: object, *, seconds: float) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")
    cursor.close()


def click_body(action: str, alert_id: int, *, channel: str, ts: str) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": USER, "username": "oncall", "team_id": SlackEmulator.team_id},
        "api_app_id": "A0INCIDENT",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": f"1337.{alert_id}.{time.monotonic_ns()}",
        "team": {"id": SlackEmulator.team_id, "domain": "emulated"},
        "channel": {"id": channel, "name": "alerts"},
        "message": {"type": "message", "ts": ts, "text": "alert"},
        "actions": [
            {
                "action_id": action,
                "block_id": "alert_actions",
                "value": str(alert_id),
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


# ------------------------------------------------------------------------------ database views


def alerts(engine: Engine) -> list[AlertRow]:
    with session(engine) as s:
        return list(s.exec(select(AlertRow).order_by(col(AlertRow.id))).all())


def alert(engine: Engine, rule: str, model: str) -> AlertRow | None:
    with session(engine) as s:
        return s.exec(select(AlertRow).where(AlertRow.rule == rule, AlertRow.model == model)).first()


def alert_when(
    engine: Engine, rule: str, model: str, test: Callable[[AlertRow], object] = bool
) -> Callable[[], AlertRow | None]:
    """A check for :func:`wait_until`: the alert once ``test`` holds for it, else None."""

    def check() -> AlertRow | None:
        found = alert(engine, rule, model)
        return found if found is not None and test(found) else None

    return check


def outbox(engine: Engine) -> list[OutboxRow]:
    with session(engine) as s:
        return list(s.exec(select(OutboxRow).order_by(col(OutboxRow.id))).all())


def explainer(engine: Engine, slack: SlackEmulator, pagerduty: PagerDutyEmulator | None = None) -> Callable[[], str]:
    return partial(explain, engine, slack, pagerduty)


def explain(engine: Engine, slack: SlackEmulator, pagerduty: PagerDutyEmulator | None = None) -> str:
    """The state a failed wait is reported with: alerts, outbox rows, Slack calls, PagerDuty events."""
    rows: list[object]
    queued: list[object]
    try:
        rows = [(a.id, a.rule, a.model, a.state, a.slack_channel, a.slack_ts) for a in alerts(engine)]
        queued = [(o.id, o.channel, o.kind, o.alert_id, o.status, o.attempts, o.last_error) for o in outbox(engine)]
    except Exception as exc:  # the database may be the fault under test
        rows, queued = [f"unreadable: {exc!r}"], []
    calls = [
        (c.method, c.status, c.params.get("channel"), c.params.get("thread_ts"), outbox_id(c), c.ok)
        for c in slack.calls
    ]
    lines = [f"alerts: {rows}", f"outbox: {queued}", f"slack: {calls}"]
    if pagerduty is not None:
        events = [
            (e["status"], (e["body"] or {}).get("event_action"), (e["body"] or {}).get("dedup_key"))
            for e in pagerduty.events
        ]
        lines.append(f"pagerduty: {events} (timed out: {getattr(pagerduty, 'timed_out', '?')})")
    return "\n".join(lines)


def wait_until(check: Callable[[], T | None], what: str, *, explain: Callable[[], str], timeout: float = 25.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except Exception:  # a check reading a database that is restarting: try again
            if time.monotonic() > deadline:
                raise
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{explain()}")
        time.sleep(0.05)


# ------------------------------------------------------------------------------ exactly-once checks


def _stored(slack: SlackEmulator, event_type: str) -> list[Call]:
    """``chat.postMessage`` calls Slack stored (a late answer still stored it) whose metadata is
    ``event_type`` (the bot's other posts, such as Monday's weekly review, are not about alerts)."""
    return [
        c
        for c in slack.calls_to("chat.postMessage")
        if c.ok and (c.params.get("metadata") or {}).get("event_type") == event_type
    ]


def accepted_roots(slack: SlackEmulator) -> list[Call]:
    """Root messages of alerts that Slack stored."""
    return _stored(slack, ALERT_EVENT)


def accepted_replies(slack: SlackEmulator) -> list[Call]:
    """Thread replies about alerts that Slack stored."""
    return _stored(slack, REPLY_EVENT)


def assert_slack_exactly_once(engine: Engine, slack: SlackEmulator, channels: Sequence[str]) -> None:
    """Every Slack notification went out, and exactly once: one root message per alert message
    recorded in the database and no other root message in ``channels``; every thread reply
    names a distinct outbox row, and every state change (anything but "fired") has its reply."""
    rows = [o for o in outbox(engine) if o.channel == "slack" and o.alert_id is not None]
    assert rows and all(o.status == "sent" for o in rows), [(o.id, o.kind, o.status, o.last_error) for o in rows]
    recorded = {(a.slack_channel, a.slack_ts) for a in alerts(engine) if a.slack_ts}
    assert all(a.slack_ts for a in alerts(engine) if any(o.alert_id == a.id for o in rows))
    in_slack = {
        (slack.channel_id(ch), m["ts"])
        for ch in channels
        for m in slack.messages(ch)
        if (m.get("metadata") or {}).get("event_type") == ALERT_EVENT
    }
    assert in_slack == recorded, f"root messages in Slack {sorted(in_slack)} != recorded {sorted(recorded, key=str)}"
    assert len(accepted_roots(slack)) == len(recorded), "a root message was posted twice"
    replies = [outbox_id(c) for c in accepted_replies(slack)]
    doubled = {k: n for k, n in Counter(replies).items() if n > 1}
    assert not doubled, f"thread replies posted twice (outbox row: count): {doubled}"
    assert None not in replies, "a thread reply without the outbox row in its metadata"
    changes = {o.id for o in rows if o.kind != "alert.fired"}
    assert changes <= set(replies), (
        f"state changes without their thread reply: {sorted(changes - set(replies), key=str)}"
    )
    assert set(replies) <= {o.id for o in rows}
    for channel, ts in recorded:
        thread = slack.thread(channel or "", ts or "")
        mine = [c for c in accepted_replies(slack) if c.params.get("thread_ts") == ts]
        assert len(thread) == 1 + len(mine), (ts, len(thread), len(mine))


def pagerduty_summary(pagerduty: ScriptedPagerDuty) -> Counter[tuple[str, str]]:
    """Accepted events per ``(event_action, dedup_key)``, less the re-sends of events that were
    applied but answered too late: the bot cannot know those arrived, and PagerDuty de-duplicates
    the re-send by its dedup key (no second page, no second incident)."""
    events = pagerduty.events
    counts: Counter[tuple[str, str]] = Counter(
        (e["body"]["event_action"], e["body"]["dedup_key"]) for e in events if e["status"] == 202
    )
    for index in pagerduty.timed_out:
        late = events[index]
        if late["status"] == 202:
            counts[(late["body"]["event_action"], late["body"]["dedup_key"])] -= 1
    return counts


def rendered(message: dict[str, Any]) -> str:
    return f"{message.get('text', '')}\n{json.dumps(message.get('blocks') or [], ensure_ascii=False)}"


def root_message(slack: SlackEmulator, row: AlertRow) -> dict[str, Any]:
    [message] = [m for m in slack.messages(row.slack_channel or "") if m["ts"] == row.slack_ts]
    return message
