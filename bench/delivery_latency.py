"""Benchmark: how soon an idle bot's first Slack post and PagerDuty trigger follow the evaluation
that opened the alert (issue 19 point 5: within 200 ms, p50 and p99).

Processes (all on 127.0.0.1):

- the Slack Web API and PagerDuty Events API emulators (``tests/emulators``), each in a child
  process, recording when each request arrived (wall clock);
- ``python -m bot serve`` pointed at both, evaluating every ``--evaluation-interval`` on a
  SQLite file (or a scratch database on ``--database-url``'s PostgreSQL server), with a bench
  configuration: the shipped settings with ``group_wait: 0s`` (the Slack post of a fired alert is
  otherwise held for ``group_wait`` by design, to group a model's alerts), ``--trials`` models
  each with a Slack channel of its own (so no root post waits for another alert's slot in Slack's
  pacing of one message a second per channel), and one P1 rule without ``for:``, so a breaching
  sample opens and pages at the next evaluation.

Each trial pushes one breaching sample for the next model, waits for its root post and its
trigger, and then lets the bot idle for ``--idle`` seconds: longer than Slack's pacing of one
message a second per channel, so the previous alert's thread reply saying PagerDuty accepted the
page (due right after its root post, and paced behind it) is out before the next alert opens --
the Slack lane is one worker, and a reply waiting for its channel's next slot holds it.

Latency is the emulator's arrival time minus the alert's ``fired_at`` as the bot stored it (the
time of the evaluation that opened the alert). Pushes land at random points of the evaluation
interval; the wait for the next evaluation is not part of the figure.

    python bench/delivery_latency.py [--trials 40] [--evaluation-interval 1s] [--idle 1.5]
        [--database-url postgresql://postgres@127.0.0.1:5432/test]

Figures go to ``bench/RESULTS.md`` ("Delivery latency"); this is not a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import ChildServer, free_port, scratch_database, wait_healthy

REPO = Path(__file__).resolve().parent.parent
TOKEN = "xoxb-latency"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
INGEST_TOKEN = "bench-ingest-token"
ROUTING_KEY = "latency0routing0key0000000000000"
RULE = "bench_breach"
TARGET_MS = 200.0


# ------------------------------------------------------------------ child roles: the emulators
def run_slack_emulator() -> None:
    """Child: the Slack emulator; ``first <channel>`` answers when the channel's first root post arrived."""
    sys.path.insert(0, str(REPO))
    from tests.emulators.slack_api import SlackEmulator

    slack = SlackEmulator(token=TOKEN).start()
    print(json.dumps({"base_url": slack.base_url}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        out: Any = None
        if cmd and cmd[0] == "first":
            roots = [
                c.at
                for c in slack.calls_to("chat.postMessage")
                if c.ok and c.params.get("channel") == cmd[1] and not c.params.get("thread_ts")
            ]
            out = min(roots, default=None)
        print(json.dumps(out), flush=True)
    slack.stop()


def run_pagerduty_emulator() -> None:
    """Child: the PagerDuty emulator; ``trigger <incident id>`` answers when the incident's first accepted
    trigger arrived (the bot pages per incident: its dedup keys are ``incident:<id>:<opened>``)."""
    sys.path.insert(0, str(REPO))
    from tests.emulators.pagerduty_events import PagerDutyEmulator

    pagerduty = PagerDutyEmulator().start()
    print(json.dumps({"base_url": pagerduty.base_url}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        out: Any = None
        if cmd and cmd[0] == "trigger":
            triggers = [
                float(e["at"])
                for e in pagerduty.accepted
                if e["body"].get("event_action") == "trigger"
                and str(e["body"].get("dedup_key")).startswith(f"incident:{cmd[1]}:")
            ]
            out = min(triggers, default=None)
        print(json.dumps(out), flush=True)
    pagerduty.stop()


# ------------------------------------------------------------------ the bot's configuration
def config_dir(folder: Path, models: list[str]) -> Path:
    """The shipped settings with ``group_wait: 0s``, one channel per model, one P1 rule without ``for:``."""
    root = folder / "config"
    (root / "rules").mkdir(parents=True)
    shutil.copytree(REPO / "runbooks", root / "runbooks")
    settings = (REPO / "rules" / "settings.yaml").read_text(encoding="utf-8")
    if "group_wait: 10s" not in settings:
        raise SystemExit("rules/settings.yaml no longer says group_wait: 10s; update the benchmark")
    (root / "rules" / "settings.yaml").write_text(settings.replace("group_wait: 10s", "group_wait: 0s"), "utf-8")
    lines = ["models:"]
    for name in models:
        lines += [f"  - name: {name}", f'    channel: "#{name}"', "    team: bench"]
    lines += ["metrics:", '  - {name: bench_value, description: "A value the benchmark pushes over 100"}']
    (root / "rules" / "models.yaml").write_text("\n".join(lines) + "\n", "utf-8")
    rule = f"""rules:
  - name: {RULE}
    models: ["*"]
    condition: bench_value > 100
    severity: P1
    title: "Bench breach for {{model}}"
    description: "bench_value is {{bench_value}}"
"""
    (root / "rules" / "bench.yaml").write_text(rule, "utf-8")
    return root


# ------------------------------------------------------------------ measuring
def fired_at(url: str, model: str) -> tuple[float, int] | None:
    """When the evaluation that opened ``model``'s alert ran, as the bot stored it (epoch seconds),
    and the incident the alert opened."""
    from sqlalchemy import create_engine, text

    from bot.storage.database import normalise_url

    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT fired_at, incident_id FROM alerts WHERE dedup_key = :key AND fired_at IS NOT NULL "
                    "AND incident_id IS NOT NULL"
                ),
                {"key": f"{RULE}:{model}"},
            ).first()
    finally:
        engine.dispose()
    if row is None:
        return None
    value, incident = row
    if isinstance(value, str):  # SQLite hands back text
        value = datetime.fromisoformat(value)
    return float(value.replace(tzinfo=value.tzinfo or UTC).timestamp()), int(incident)


def wait_until(ask: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ask()
        if found is not None:
            return found
        time.sleep(0.02)
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name:<34} no samples"
    verdict = "PASS" if percentile(values, 0.99) <= TARGET_MS else "FAIL"
    return (
        f"  {name:<34} p50 {statistics.median(values):5.0f} ms   p90 {percentile(values, 0.9):5.0f} ms   "
        f"p99 {percentile(values, 0.99):5.0f} ms   "
        f"max {max(values):6.0f} ms   (n={len(values)}; target p99 ≤ {TARGET_MS:.0f} ms: {verdict})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--evaluation-interval", default="1s")
    parser.add_argument("--idle", type=float, default=1.5, help="seconds the bot idles between trials")
    parser.add_argument("--database-url", default=None, help="PostgreSQL server to create a scratch database on")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--role", choices=["bench", "slack", "pagerduty"], default="bench", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "slack":
        run_slack_emulator()
        return 0
    if args.role == "pagerduty":
        run_pagerduty_emulator()
        return 0

    sys.path.insert(0, str(REPO))
    import httpx

    rng = random.Random(args.seed)
    models = [f"bench-{i:03d}" for i in range(args.trials)]
    folder = Path(tempfile.mkdtemp(prefix="ib-latency-"))
    slack = ChildServer([__file__, "--role", "slack"], folder / "slack.log")
    pagerduty = ChildServer([__file__, "--role", "pagerduty"], folder / "pagerduty.log")
    proc: subprocess.Popen[bytes] | None = None
    posts: list[float] = []
    pages: list[float] = []
    missing: list[str] = []
    try:
        with scratch_database(args.database_url, folder / "latency.db", prefix="ib_latency") as url:
            backend = "PostgreSQL" if url.startswith("postgres") else "SQLite"
            port = free_port()
            env = {
                **os.environ,
                "SLACK_BOT_TOKEN": TOKEN,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": slack.base_url,
                "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
                "PAGERDUTY_EVENTS_URL": f"{pagerduty.base_url.rstrip('/')}/v2/enqueue",
                "INGEST_TOKEN": INGEST_TOKEN,
                "DATABASE_URL": url,
                "BOT_CONFIG_DIR": str(config_dir(folder, models)),
                "EVALUATION_INTERVAL": args.evaluation_interval,
                "LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(REPO),
            }
            log = folder / "bot.log"
            command = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)]
            proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)
            bot_url = f"http://127.0.0.1:{port}"
            wait_healthy(bot_url, proc, log, timeout=60.0)
            print(
                f"delivery latency: {backend}, {args.trials} trials, evaluation every {args.evaluation_interval}, "
                f"group_wait 0s, {args.idle:g} s idle between trials; bot pid {proc.pid}",
                flush=True,
            )
            with httpx.Client(timeout=10) as http:
                for model in models:
                    time.sleep(args.idle + rng.random() * 0.2)  # idle, then a push at a random point of the interval
                    answer = http.post(
                        f"{bot_url}/api/v1/metrics",
                        headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
                        json={"model": model, "metrics": {"bench_value": 150}},
                    )
                    answer.raise_for_status()
                    fired = wait_until(lambda m=model: fired_at(url, m), 15.0)
                    if fired is None:
                        missing.append(model)
                        continue
                    opened, incident = fired
                    posted = wait_until(lambda m=model: slack.ask("first", f"#{m}"), 15.0)
                    paged = wait_until(lambda i=incident: pagerduty.ask("trigger", str(i)), 15.0)
                    if posted is None or paged is None:
                        missing.append(model)
                        continue
                    posts.append((posted - opened) * 1000)
                    pages.append((paged - opened) * 1000)
            log_tail = log.read_text(errors="replace")[-2000:]
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        slack.stop()
        pagerduty.stop()
        shutil.rmtree(folder, ignore_errors=True)

    print(f"\nincident-bot delivery latency — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"  {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(summary("first Slack post − evaluation", posts))
    print(summary("PagerDuty trigger − evaluation", pages))
    if missing:
        print(f"  {len(missing)} trial(s) saw no post or no trigger: {missing[:5]}\n  bot log tail:\n{log_tail}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
