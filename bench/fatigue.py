"""Benchmark: alert fatigue -- how many things a real incident makes people look at (issue 11.7).

**Replay** (the default). Seed 001's kind of incident on one model, ``fraud-detector-v2``, two
hours long: p99 latency flaps (8 minutes over 5,000 ms, 2 minutes under), then an accuracy drop,
significant data drift and a prediction-volume drop join it, and everything recovers. It is replayed
60× faster (1 incident minute = 1 s) against ``incident-bot serve`` in a child process, with the
shipped ``rules/`` compressed by the same factor (``for``, ``keep_firing_for``, ``cooldown``,
``group_wait``, ``group_interval``, ``stale_after`` and every escalation step divided by 60; the
configuration file cannot say less than 1 s of ``evaluation_interval``, so the 30 s / 60 = 500 ms
comes from ``EVALUATION_INTERVAL``, which overrides it; ``slos.yaml`` is left out: 7-day SLO
windows do not compress). The metrics go through the ingest API every 500 ms (one push per
evaluation), on the compressed clock. Slack and PagerDuty are the local emulators
(``tests/emulators``) in child processes, reached through ``SLACK_API_URL`` and
``PAGERDUTY_EVENTS_URL``; the database is a scratch SQLite file.

Two scenarios, each on a fresh bot, database and emulators:

- *nobody acknowledges*;
- *acknowledged*: ``--ack-after`` incident minutes (default 1) after the incident's root message
  appears, a signed Slack click on its Acknowledge button is sent to ``POST /slack/events``
  (the incident's button; if the bot does not handle it, each firing alert's own Acknowledge).

Printed per scenario: root messages (``chat.postMessage`` without ``thread_ts``), thread replies,
``chat.update`` calls, PagerDuty triggers, distinct PagerDuty dedup keys and incidents opened,
acknowledge and resolve events; the alerts and incidents the bot stored; and the figures beside
Alertmanager's Slack receiver on the same incident (10 messages, issue 11). Target with the shipped
rules: 1 root message and at most 1 page.

**Storm** (``--storm``). ``--models`` models (200) in one channel cross one P1 rule
(``accuracy_degradation``, no ``for:``) in one ingest request, with the shipped rules *unchanged*
(30 s evaluation, 10 s ``group_wait``). The breach is pushed ``--storm-phase`` seconds after an
evaluation tick (the ticks are on the epoch grid; default 1 s, so the breach waits about a whole
interval for the pass that sees it: the worst case). Printed: seconds from the breach to the pass
that saw it, to every model shown in Slack and to the last Slack message, to every model covered by
a page and to the last page; root messages and pages. Targets: every model in Slack and paged
within 30 s, at most 5 root messages and at most 5 pages.

    python bench/fatigue.py [--scenario both|none|ack] [--ack-after 1] [--speed 60] [--timeline]
    python bench/fatigue.py --storm [--models 200] [--storm-phase 1] [--evaluation-interval 30s]

Figures go to ``bench/RESULTS.md`` ("Alert fatigue"); this is not a timed test.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import yaml
from harness import ChildServer, free_port, wait_healthy

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.config.durations import parse_duration  # noqa: E402

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-fatigue"
INGEST_TOKEN = "fatigue-ingest-token"
ROUTING_KEY = "fatigue0routing0key0000000000000"
TEAM = "T0EMULATOR"
USER = "U0ANA0001"
MODEL = "fraud-detector-v2"
CHANNEL = "#ml-alerts"
ALERTMANAGER_MESSAGES = 10
"""Alertmanager's Slack receiver on the same incident (issue 11): 10 messages."""
TARGET_ROOTS, TARGET_PAGES = 1, 1
STORM_TARGET_SECONDS, STORM_TARGET_ROOTS, STORM_TARGET_PAGES = 30.0, 5, 5
STORM_RULE = "accuracy_degradation"

# ------------------------------------------------------------------ the incident (seed 001)
HEALTHY: dict[str, float] = {
    "p99_latency_ms": 420,
    "current_accuracy": 0.956,
    "predictions_last_hour": 12_200,
    "drifted_feature_count": 2,
    "total_features": 40,
}
INCIDENT_MINUTES = 120.0
LATENCY = (10.0, 98.0)
"""p99 latency flaps from minute 10: 8 minutes at 6–7 s, 2 minutes at 3.1 s, nine times (to 98)."""
ACCURACY = (35.0, 105.0)
DRIFT = (50.0, 105.0)
VOLUME = (65.0, 105.0)


def metrics_at(minute: float) -> tuple[dict[str, float], dict[str, str]]:
    """fraud-detector-v2's metrics and labels at incident minute ``minute``."""
    values = dict(HEALTHY)
    labels = {"top_drifted_features": "none"}
    if LATENCY[0] <= minute < LATENCY[1]:
        phase = (minute - LATENCY[0]) % 10
        values["p99_latency_ms"] = 6100 + (100 * int(minute)) % 900 if phase < 8 else 3100
    if ACCURACY[0] <= minute < ACCURACY[1]:
        values["current_accuracy"] = 0.874
    if DRIFT[0] <= minute < DRIFT[1]:
        values["drifted_feature_count"] = 14
        labels["top_drifted_features"] = "merchant_category, amount, hour"
    if VOLUME[0] <= minute < VOLUME[1]:
        values["predictions_last_hour"] = 4_100
    return values, labels


STORY = (
    f"p99 latency over 5,000 ms for 8 min / under for 2 min from minute {LATENCY[0]:g} to {LATENCY[1]:g}; "
    f"accuracy 0.874 (< 0.95 × 0.95) from {ACCURACY[0]:g}; 14 of 40 features drifted from {DRIFT[0]:g}; "
    f"predictions 4,100/h (< 12,000 × 0.5) from {VOLUME[0]:g}; all healthy from {ACCURACY[1]:g}; "
    f"replay ends at {INCIDENT_MINUTES:g}"
)


# ------------------------------------------------------------------ configuration
def _scaled(value: Any, speed: float) -> str:
    return f"{max(1, round(parse_duration(value).total_seconds() * 1000 / speed))}ms"


SETTINGS_DURATIONS = ("group_wait", "group_interval", "stale_after", "keep_firing_for")
RULE_DURATIONS = ("for", "keep_firing_for", "cooldown")


def compress(document: dict[str, Any], speed: float) -> dict[str, Any]:
    """One shipped rules file with every duration divided by ``speed`` (the ones it leaves out
    keep their defaults, also divided: a rule's ``cooldown`` defaults to 30 minutes)."""
    out = dict(document)
    if isinstance(out.get("settings"), dict):
        settings = dict(out["settings"])
        for key in SETTINGS_DURATIONS:
            if settings.get(key) not in (None, ""):
                settings[key] = _scaled(settings[key], speed)
        # the file refuses less than 1 s; EVALUATION_INTERVAL (the environment) carries the real value
        settings["evaluation_interval"] = "1s"
        out["settings"] = settings
    if isinstance(out.get("escalation"), dict):
        out["escalation"] = {
            name: [{**step, "after": _scaled(step["after"], speed)} for step in steps]
            for name, steps in out["escalation"].items()
        }
    if isinstance(out.get("rules"), list):
        rules = []
        for rule in out["rules"]:
            rule = dict(rule)
            rule.setdefault("cooldown", "30m")
            for key in RULE_DURATIONS:
                if rule.get(key) not in (None, ""):
                    rule[key] = _scaled(rule[key], speed)
            rules.append(rule)
        out["rules"] = rules
    return out


def replay_config(folder: Path, speed: float, source: Path = REPO) -> Path:
    """``source``'s shipped rules/ (minus slos.yaml) and runbooks/ with durations divided by ``speed``."""
    root = folder / "config"
    shutil.copytree(source / "runbooks", root / "runbooks")
    (root / "rules").mkdir(parents=True)
    for path in sorted((source / "rules").glob("*.y*ml")):
        if path.stem == "slos":
            continue
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(document, dict):
            document = compress(document, speed)
        header = f"# bench/fatigue.py: {path.name} with every duration divided by {speed:g}\n"
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)
        (root / "rules" / path.name).write_text(header + text, encoding="utf-8")
    return root


def storm_config(folder: Path, models: list[str]) -> Path:
    """The shipped rules/ and runbooks/ unchanged, plus ``models`` in one channel."""
    root = folder / "config"
    shutil.copytree(REPO / "rules", root / "rules")
    shutil.copytree(REPO / "runbooks", root / "runbooks")
    (root / "rules" / "slos.yaml").unlink(missing_ok=True)
    lines = ["models:"]
    for name in models:
        lines += [
            f"  - name: {name}",
            f'    channel: "{CHANNEL}"',
            "    team: fleet",
            "    baseline_accuracy: 0.95",
            "    expected_predictions_per_hour: 12000",
        ]
    (root / "rules" / "fleet-models.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# ------------------------------------------------------------------ child roles: the emulators
def run_slack_emulator() -> None:
    """Child: the Slack Web API emulator (HTTP/1.1 keep-alive, as slack.com), driven by JSON lines."""
    import importlib

    from tests.emulators.slack_api import SlackEmulator

    importlib.import_module(SlackEmulator.__module__)._Handler.protocol_version = "HTTP/1.1"
    slack = SlackEmulator(token=TOKEN).start()
    print(json.dumps({"base_url": slack.base_url}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        out: Any = None
        if cmd[0] in ("calls", "roots"):  # the chat.* calls; "roots": only the root posts that succeeded
            out = []
            for call in slack.calls:
                if not call.method.startswith("chat."):
                    continue
                response = call.response if isinstance(call.response, dict) else {}
                posted_root = call.method == "chat.postMessage" and not call.params.get("thread_ts")
                if cmd[0] == "roots" and not (posted_root and call.ok):
                    continue
                out.append(
                    {
                        "method": call.method,
                        "at": call.at,
                        "ok": call.ok,
                        "status": call.status,
                        "channel": response.get("channel") or call.params.get("channel"),
                        "ts": response.get("ts") or call.params.get("ts"),
                        "thread_ts": call.params.get("thread_ts"),
                        "text": call.params.get("text") or "",
                        "blocks": call.params.get("blocks") or [],
                    }
                )
        elif cmd[0] == "response_url":
            out = slack.response_url(channel=cmd[1], ts=cmd[2])
        elif cmd[0] == "channel":
            out = slack.channel_id(cmd[1])
        elif cmd[0] == "counts":
            counts: dict[str, int] = defaultdict(int)
            for call in slack.calls:
                counts[f"{call.method} {call.status}"] += 1
            out = dict(counts)
        print(json.dumps(out), flush=True)
    slack.stop()


def run_pagerduty_emulator() -> None:
    """Child: the PagerDuty Events API v2 emulator, driven by JSON lines."""
    from tests.emulators.pagerduty_events import PagerDutyEmulator

    pagerduty = PagerDutyEmulator().start()
    print(json.dumps({"base_url": pagerduty.base_url}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        out: Any = None
        if cmd and cmd[0] == "events":
            out = [
                {"at": e["at"], "status": e["status"], "body": e.get("body"), "applied": e.get("applied")}
                for e in pagerduty.events
            ]
        elif cmd and cmd[0] == "incidents":
            out = [{"dedup_key": i.dedup_key, "opened_at": i.opened_at} for i in pagerduty.all_incidents]
        print(json.dumps(out), flush=True)
    pagerduty.stop()


# ------------------------------------------------------------------ running the bot
@dataclass
class Running:
    url: str
    proc: subprocess.Popen[bytes]
    slack: ChildServer
    pagerduty: ChildServer
    database: Path
    log: Path
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def push(self, items: list[dict[str, Any]]) -> None:
        r = self.http.post(
            f"{self.url}/api/v1/metrics", json=items, headers={"Authorization": f"Bearer {INGEST_TOKEN}"}
        )
        if r.status_code != 202:
            raise RuntimeError(f"ingest refused: {r.status_code} {r.text}")


@contextmanager
def running_bot(folder: Path, config: Path, evaluation_interval: str, bot_repo: Path = REPO) -> Iterator[Running]:
    """``incident-bot serve`` of ``bot_repo`` against fresh emulators (always this checkout's) and
    a scratch SQLite file in ``folder``."""
    slack = ChildServer([__file__, "--role", "slack"], folder / "slack.log")
    pagerduty = ChildServer([__file__, "--role", "pagerduty"], folder / "pagerduty.log")
    database = folder / "bot.db"
    port = free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.base_url,
        "SLACK_TEAM_ID": TEAM,
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "PAGERDUTY_EVENTS_URL": f"{pagerduty.base_url.rstrip('/')}/v2/enqueue",
        "INGEST_TOKEN": INGEST_TOKEN,
        "DATABASE_URL": f"sqlite:///{database}",
        "BOT_CONFIG_DIR": str(config),
        "EVALUATION_INTERVAL": evaluation_interval,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(bot_repo),
    }
    log = folder / "bot.log"
    command = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, cwd=bot_repo, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    run = Running(f"http://127.0.0.1:{port}", proc, slack, pagerduty, database, log)
    try:
        wait_healthy(run.url, proc, log, timeout=60.0)
        yield run
    finally:
        run.http.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        slack.stop()
        pagerduty.stop()


def _utc(value: str | None) -> float | None:
    """A timestamp as SQLite stores it (UTC, offset dropped) in Unix seconds."""
    if not value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


def stored(database: Path) -> dict[str, Any]:
    """What the bot recorded: alerts per rule, incidents (storm ones too), first fired_at. Plain
    SQL, so a ``--bot-repo`` from before incidents (no ``incidents`` table) can be read too."""
    with closing(sqlite3.connect(database)) as db:
        alerts = db.execute("SELECT rule, fired_at, state FROM alerts").fetchall()
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        incidents = db.execute("SELECT storm_rule, state FROM incidents").fetchall() if "incidents" in tables else []
    fired = [t for t in (_utc(at) for _rule, at, _state in alerts) if t is not None]
    return {
        "alerts": dict(Counter(rule for rule, at, _ in alerts if at is not None)),
        "incidents": len(incidents) if "incidents" in tables else "none (no incidents table)",
        "storm_incidents": sum(1 for storm, _state in incidents if storm),
        "incident_states": dict(Counter(state for _storm, state in incidents)),
        "first_fired": min(fired) if fired else None,
        "last_fired": max(fired) if fired else None,
    }


@dataclass
class Books:
    """What Slack and PagerDuty received (from the emulators)."""

    calls: list[dict[str, Any]]
    events: list[dict[str, Any]]
    incidents: list[dict[str, Any]]

    @classmethod
    def read(cls, run: Running) -> Books:
        return cls(run.slack.ask("calls"), run.pagerduty.ask("events"), run.pagerduty.ask("incidents"))

    @property
    def ok_calls(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["ok"]]

    @property
    def roots(self) -> list[dict[str, Any]]:
        return [c for c in self.ok_calls if c["method"] == "chat.postMessage" and not c["thread_ts"]]

    @property
    def replies(self) -> list[dict[str, Any]]:
        return [c for c in self.ok_calls if c["method"] == "chat.postMessage" and c["thread_ts"]]

    @property
    def updates(self) -> list[dict[str, Any]]:
        return [c for c in self.ok_calls if c["method"] == "chat.update"]

    def accepted(self, action: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["status"] == 202 and (e["body"] or {}).get("event_action") == action]

    @property
    def dedup_keys(self) -> set[str]:
        return {str(e["body"].get("dedup_key")) for e in self.accepted("trigger")}


def sign(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def buttons(blocks: Any) -> list[tuple[str, str]]:
    """(action_id, value) of every button and overflow option in ``blocks``."""
    found: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            action_id = node.get("action_id")
            if isinstance(action_id, str):
                if isinstance(node.get("value"), str):
                    found.append((action_id, node["value"]))
                for option in node.get("options") or []:
                    if isinstance(option, dict) and isinstance(option.get("value"), str):
                        found.append((action_id, option["value"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


def click(run: Running, root: dict[str, Any], action_id: str, value: str) -> int:
    """A signed block_actions click on ``root``'s button, as Slack sends it; the HTTP status."""
    channel = str(root["channel"])
    if channel.startswith("#"):
        channel = run.slack.ask("channel", channel)
    payload = {
        "type": "block_actions",
        "user": {"id": USER, "username": "ana", "team_id": TEAM},
        "api_app_id": "A0INCIDENT",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": root["ts"], "channel_id": channel, "is_ephemeral": False},
        "trigger_id": f"1337.{int(time.time() * 1000)}.fatigue",
        "team": {"id": TEAM, "domain": "emulated"},
        "channel": {"id": channel, "name": CHANNEL.lstrip("#")},
        "message": {"type": "message", "ts": root["ts"], "text": root["text"]},
        "response_url": run.slack.ask("response_url", channel, str(root["ts"])),
        "actions": [
            {
                "action_id": action_id,
                "block_id": "incident_actions",
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
    return run.http.post(f"{run.url}/slack/events", content=body, headers=headers).status_code


# ------------------------------------------------------------------ replay
@dataclass
class Outcome:
    scenario: str
    books: Books
    db: dict[str, Any]
    started: float
    speed: float
    acked: list[str] = field(default_factory=list)
    tracebacks: int = 0


def replay(args: argparse.Namespace, scenario: str) -> Outcome:
    speed = args.speed
    folder = Path(tempfile.mkdtemp(prefix=f"ib-fatigue-{scenario}-"))
    try:
        config = replay_config(folder, speed, args.bot_repo)
        interval = f"{round(30_000 / speed)}ms"
        with running_bot(folder, config, interval, args.bot_repo) as run:
            push_every = 30.0 / speed  # one push per (compressed) evaluation interval
            started = time.time()
            acked: list[str] = []
            ack_at: float | None = None
            n = 0
            while True:
                due = started + n * push_every
                minute = (due - started) * speed / 60
                if minute > INCIDENT_MINUTES:
                    break
                time.sleep(max(0.0, due - time.time()))
                values, labels = metrics_at(minute)
                run.push([{"model": MODEL, "metrics": values, "labels": labels}])
                n += 1
                if scenario != "ack" or acked:
                    continue
                if ack_at is None:
                    roots = run.slack.ask("roots")
                    if roots:
                        ack_at = roots[0]["at"] + args.ack_after * 60 / speed
                elif time.time() >= ack_at:
                    acked = acknowledge(run, started, speed)
            time.sleep(args.tail)  # the recovery's resolves and the last deliveries
            books = Books.read(run)
            tracebacks = run.log.read_text(errors="replace").count("Traceback")
        return Outcome(scenario, books, stored(folder / "bot.db"), started, speed, acked, tracebacks)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def acknowledge(run: Running, started: float, speed: float) -> list[str]:
    """Click the incident's Acknowledge on its root; if the bot does not handle that button (404),
    click Acknowledge on each firing alert instead. What was clicked, with the answers."""
    root = run.slack.ask("roots")[0]
    latest = root
    for call in run.slack.ask("calls"):  # the root as last updated: its buttons follow its state
        if call["method"] == "chat.update" and call["ok"] and call["ts"] == root["ts"]:
            latest = call
    shown = buttons(latest["blocks"])
    minute = (time.time() - started) * speed / 60
    done: list[str] = []
    incident = [v for a, v in shown if a == "incident_acknowledge"]
    if incident:
        status = click(run, root, "incident_acknowledge", incident[0])
        done.append(f"incident_acknowledge {incident[0]} at minute {minute:.1f} -> HTTP {status}")
        if status == 200:
            return done
    alerts = [v.split(":", 1)[1] for a, v in shown if v.startswith("acknowledge:")]
    alerts += [v for a, v in shown if a == "alert_acknowledge"]
    for alert_id in dict.fromkeys(alerts):
        status = click(run, root, "alert_acknowledge", alert_id)
        done.append(f"alert_acknowledge {alert_id} at minute {minute:.1f} -> HTTP {status}")
    return done or [f"no Acknowledge button on the root at minute {minute:.1f}"]


def summary_of(call: dict[str, Any]) -> str:
    text = " ".join(str(call["text"]).split())
    return text[:110]


def report_replay(outcome: Outcome, timeline: bool) -> tuple[bool, list[int]]:
    b, speed = outcome.books, outcome.speed

    def minute(at: float) -> str:
        return f"{(at - outcome.started) * speed / 60:6.1f}"

    roots, replies, updates = len(b.roots), len(b.replies), len(b.updates)
    triggers, keys = len(b.accepted("trigger")), len(b.dedup_keys)
    acks, resolves = len(b.accepted("acknowledge")), len(b.accepted("resolve"))
    failed = [c for c in b.calls if not c["ok"]]
    refused = [e for e in b.events if e["status"] != 202]
    pd_incidents = len(b.incidents)
    print(f"\n--- scenario: {outcome.scenario} ---")
    for line in outcome.acked:
        print(f"  click: {line}")
    print(
        f"  bot stored: alerts fired {outcome.db['alerts']}; incidents {outcome.db['incidents']} "
        f"{outcome.db['incident_states']}"
    )
    print(
        f"  Slack:      root messages {roots}   thread replies {replies}   chat.update {updates}"
        f"   (failed calls {len(failed)})"
    )
    print(
        f"  PagerDuty:  triggers {triggers}   distinct dedup keys {keys}   incidents opened {pd_incidents}"
        f"   acknowledges {len(b.accepted('acknowledge'))}   resolves {resolves}   (refused {len(refused)})"
    )
    attention = roots + pd_incidents
    print(
        f"  vs Alertmanager's {ALERTMANAGER_MESSAGES} Slack messages: "
        f"root messages {roots / ALERTMANAGER_MESSAGES:.2f}×, "
        f"root messages + pages {attention} = {attention / ALERTMANAGER_MESSAGES:.2f}×, "
        f"every Slack post and update {roots + replies + updates} = "
        f"{(roots + replies + updates) / ALERTMANAGER_MESSAGES:.2f}×"
    )
    if outcome.tracebacks:
        print(f"  bot log: {outcome.tracebacks} tracebacks")
    if timeline:
        rows = [
            (c["at"], f"slack {c['method']}{' (reply)' if c['thread_ts'] else ''}: {summary_of(c)}") for c in b.calls
        ]
        for e in b.events:
            body = e["body"] or {}
            rows.append((e["at"], f"pagerduty {body.get('event_action')} {body.get('dedup_key')} -> {e['status']}"))
        for at, what in sorted(rows):
            print(f"    min {minute(at)}  {what}")
    ok_roots, ok_pages = roots <= TARGET_ROOTS, pd_incidents <= TARGET_PAGES and keys <= TARGET_PAGES
    ack_ok = outcome.scenario != "ack" or acks == keys
    print(
        f"  verdict ({outcome.scenario}): "
        f"root messages {roots} (target {TARGET_ROOTS}): {'PASS' if ok_roots else 'FAIL'}; "
        f"pages {pd_incidents} (target <= {TARGET_PAGES}): {'PASS' if ok_pages else 'FAIL'}"
        + (
            f"; PagerDuty acknowledged once per page: {'PASS' if ack_ok else 'FAIL'}"
            if outcome.scenario == "ack"
            else ""
        )
    )
    row = [roots, replies, updates, triggers, keys, pd_incidents, acks, resolves]
    return ok_roots and ok_pages and ack_ok and not outcome.tracebacks, row


SUMMARY = ("root msgs", "replies", "updates", "PD triggers", "dedup keys", "PD incidents", "acks", "resolves")


def summarise(rows: dict[str, list[int]]) -> None:
    """One line per scenario, and root messages + pages beside Alertmanager's 10 messages."""
    print(f"\n  {'scenario':<10}" + "".join(f"{h:>13}" for h in SUMMARY) + f"{'roots+pages':>13}{'vs AM 10':>10}")
    for name, row in rows.items():
        attention = row[0] + row[5]
        print(
            f"  {name:<10}"
            + "".join(f"{v:>13}" for v in row)
            + f"{attention:>13}{attention / ALERTMANAGER_MESSAGES:>9.2f}×"
        )


# ------------------------------------------------------------------ storm
def storm(args: argparse.Namespace) -> bool:
    models = [f"fleet-{i:04d}" for i in range(args.models)]
    folder = Path(tempfile.mkdtemp(prefix="ib-fatigue-storm-"))
    try:
        config = storm_config(folder, models)
        interval = parse_duration(args.evaluation_interval).total_seconds()
        with running_bot(folder, config, args.evaluation_interval) as run:
            healthy = [{"model": m, "metrics": {"current_accuracy": 0.956}} for m in models]
            run.push(healthy)
            # the breach lands ``--storm-phase`` seconds after an evaluation tick (epoch grid)
            now = time.time()
            breach_at = (now // interval + 1) * interval + args.storm_phase
            if breach_at - now < 2:  # leave time for one pass over the healthy values
                breach_at += interval
            time.sleep(max(0.0, breach_at - time.time()))
            passes_before = evaluation_seconds(run)
            breach = time.time()
            run.push([{"model": m, "metrics": {"current_accuracy": 0.80}} for m in models])
            pushed = time.time()
            deadline = breach + args.storm_timeout
            shown_at = paged_at = None
            while time.time() < deadline:
                time.sleep(1.0)
                books = Books.read(run)
                if shown_at is None:
                    shown_at = covered_at(models, [(c["at"], c) for c in books.ok_calls])
                if paged_at is None:
                    paged_at = covered_at(models, [(e["at"], e["body"]) for e in books.accepted("trigger")])
                if shown_at is not None and paged_at is not None:
                    break
            time.sleep(args.tail)  # anything still coming (a sixth root, a page per model) is counted
            passes_after = evaluation_seconds(run)
            books = Books.read(run)
            tracebacks = run.log.read_text(errors="replace").count("Traceback")
        db = stored(folder / "bot.db")
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    storm_calls = [c for c in books.ok_calls if c["at"] >= breach]
    triggers = books.accepted("trigger")
    last_slack = max((c["at"] for c in storm_calls), default=None)
    last_page = max((e["at"] for e in triggers), default=None)
    roots, pages = len(books.roots), len(books.incidents)

    def since(at: float | None) -> str:
        return "never" if at is None else f"{at - breach:5.1f} s"

    print(
        f"\nstorm: {args.models} models in {CHANNEL} cross {STORM_RULE} (P1, no for:) in one ingest request "
        f"({(pushed - breach) * 1000:.0f} ms); shipped rules unchanged, evaluation every {args.evaluation_interval}, "
        f"breach {args.storm_phase:g} s after a tick"
    )
    detected = db["first_fired"]
    print(
        f"  bot stored: alerts fired {db['alerts']}; incidents {db['incidents']} (storm incidents "
        f"{db['storm_incidents']}) {db['incident_states']}"
    )
    print(
        f"  breach -> the pass that saw it (alerts' fired_at): {since(detected)}"
        + (f" (last alert fired at {since(db['last_fired'])})" if db["last_fired"] != detected else "")
    )
    took, passes = passes_after[0] - passes_before[0], passes_after[1] - passes_before[1]
    print(f"  evaluation passes after the breach: {passes:.0f}, {took:.1f} s in all (incident_bot_evaluation_seconds)")
    print(f"  breach -> every model shown in Slack: {since(shown_at)};  -> last Slack call: {since(last_slack)}")
    print(f"  breach -> every model covered by a page: {since(paged_at)};  -> last page: {since(last_page)}")
    if detected is not None:
        print(
            "  from the pass that saw it: every model in Slack "
            + ("never" if shown_at is None else f"{shown_at - detected:.1f} s")
            + ", every model paged "
            + ("never" if paged_at is None else f"{paged_at - detected:.1f} s")
        )
    print(f"  Slack: root messages {roots}   thread replies {len(books.replies)}   chat.update {len(books.updates)}")
    print(
        f"  PagerDuty: triggers {len(triggers)}   distinct dedup keys {len(books.dedup_keys)}   "
        f"incidents opened {pages}"
    )
    if tracebacks:
        print(f"  bot log: {tracebacks} tracebacks")
    in_time = shown_at is not None and paged_at is not None and max(shown_at, paged_at) - breach <= STORM_TARGET_SECONDS
    in_time_detected = (
        shown_at is not None
        and paged_at is not None
        and detected is not None
        and max(shown_at, paged_at) - detected <= STORM_TARGET_SECONDS
    )
    ok_roots, ok_pages = roots <= STORM_TARGET_ROOTS, pages <= STORM_TARGET_PAGES
    print(
        f"  verdict: every model in Slack and paged within {STORM_TARGET_SECONDS:g} s of the breach: "
        f"{'PASS' if in_time else 'FAIL'} (of the pass that saw it: {'PASS' if in_time_detected else 'FAIL'}); "
        f"root messages {roots} <= {STORM_TARGET_ROOTS}: {'PASS' if ok_roots else 'FAIL'}; "
        f"pages {pages} <= {STORM_TARGET_PAGES}: {'PASS' if ok_pages else 'FAIL'}"
    )
    return in_time and ok_roots and ok_pages and not tracebacks


def evaluation_seconds(run: Running) -> tuple[float, float]:
    """The bot's ``incident_bot_evaluation_seconds`` histogram: (sum, count) so far."""
    found = {"sum": 0.0, "count": 0.0}
    for line in run.http.get(f"{run.url}/metrics").text.splitlines():
        for key in found:
            if line.startswith(f"incident_bot_evaluation_seconds_{key} "):
                found[key] = float(line.split()[1])
    return found["sum"], found["count"]


def covered_at(models: list[str], items: list[tuple[float, Any]]) -> float | None:
    """When the union of ``items`` (in time order) first named every model, or None."""
    missing = set(models)
    for at, item in sorted(items, key=lambda pair: pair[0]):
        text = json.dumps(item)
        missing = {m for m in missing if m not in text}
        if not missing:
            return float(at)
    return None


# ------------------------------------------------------------------ main
def describe(repo: Path) -> str:
    """The checkout's commit, and whether its bot/ or rules/ differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "bot", "rules"], capture_output=True, text=True
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    changed = [line[3:] for line in dirty if line.strip()]
    head = head if len(head) <= 80 else head[:79] + "…"
    return head + (f"; uncommitted changes in {', '.join(changed)}" if changed else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scenario", choices=["both", "none", "ack"], default="both")
    parser.add_argument("--ack-after", type=float, default=1.0, help="incident minutes from the root to the click")
    parser.add_argument("--speed", type=float, default=60.0, help="incident seconds per real second")
    parser.add_argument("--tail", type=float, default=5.0, help="seconds to wait for the last deliveries")
    parser.add_argument("--timeline", action="store_true", help="print every Slack call and PagerDuty event")
    parser.add_argument("--storm", action="store_true", help="the storm mode instead of the replay")
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--storm-phase", type=float, default=1.0, help="seconds after an evaluation tick")
    parser.add_argument("--storm-timeout", type=float, default=90.0)
    parser.add_argument("--evaluation-interval", default="30s", help="storm mode (the shipped setting)")
    parser.add_argument(
        "--bot-repo",
        type=Path,
        default=REPO,
        help="replay: run the bot and shipped rules of another checkout (an older commit, for comparison)",
    )
    parser.add_argument("--role", choices=["bench", "slack", "pagerduty"], default="bench", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "slack":
        run_slack_emulator()
        return 0
    if args.role == "pagerduty":
        run_pagerduty_emulator()
        return 0
    load_before = os.getloadavg()
    print(
        f"incident-bot fatigue benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in load_before)}",
        flush=True,
    )
    if args.storm:
        print(f"bot and shipped rules: {REPO} ({describe(REPO)})", flush=True)
        return 0 if storm(args) else 1
    print(
        f"replay of seed 001's incident on {MODEL}, {INCIDENT_MINUTES:g} incident minutes at {args.speed:g}× "
        f"({INCIDENT_MINUTES * 60 / args.speed:.0f} s each): {STORY}",
        flush=True,
    )
    print(f"bot and shipped rules: {args.bot_repo} ({describe(args.bot_repo)})", flush=True)
    scenarios = ["none", "ack"] if args.scenario == "both" else [args.scenario]
    results, rows = [], {}
    for scenario in scenarios:
        outcome = replay(args, scenario)
        ok, rows[scenario] = report_replay(outcome, args.timeline)
        results.append(ok)
    summarise(rows)
    print(f"\nload average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
