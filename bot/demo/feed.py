"""The demo's replayed metric feed: a scripted incident pushed to the bot's real ingest API.

A newcomer should watch an incident happen in a few minutes, so the script compresses one:
support-bot's latency spikes, then its LLM spend runs away; fraud-detector-v2 slows down, its
inputs drift and its accuracy sags; around two minutes in everything recovers and the bot
auto-resolves what nobody resolved by hand. The feed goes through ``POST /api/v1/metrics``
with the bearer token, exactly as a user's exporter would, so the demo exercises ingest,
evaluation, grouping, escalation and delivery without shortcuts.

The timeline is in *demo seconds*; ``speed`` runs it faster (the browser test uses that).
Values wobble a little (deterministically) so the numbers in the alerts look like real ones.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

SUPPORT_BOT = "support-bot"
FRAUD_DETECTOR = "fraud-detector-v2"
RECOVERY_AT = 120.0
"""Demo second at which every metric returns to normal (the incident's end)."""


@dataclass(frozen=True)
class Step:
    """From demo second ``at``, ``model`` reports these values (until a later step changes them)."""

    at: float
    model: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    note: str = ""
    change: Mapping[str, str] | None = None
    """A change event a deploy job records for ``model`` (``POST /api/v1/changes``)."""
    command: tuple[str, str] | None = None
    """A slash command the on-call runs: (channel, or ``room`` for the model's incident room; the line)."""


HEALTHY: dict[str, dict[str, float]] = {
    SUPPORT_BOT: {
        "p99_latency_ms": 850,
        "response_time_p95_ms": 1200,
        "daily_cost_usd": 140.0,
        "current_accuracy": 0.93,
        "helpfulness": 0.88,
        "predictions_last_hour": 3100,
        # per push: 300 responses, one failed, $12.60 spent: error rate 0.33%, $0.042 per query (seed 000)
        "responses_total": 300,
        "responses_ok": 299,
        "responses_error": 1,
        "cost_usd": 12.6,
    },
    FRAUD_DETECTOR: {
        "p99_latency_ms": 420,
        "current_accuracy": 0.956,
        "predictions_last_hour": 12200,
        "drifted_feature_count": 2,
        "total_features": 40,
    },
}
HEALTHY_LABELS: dict[str, dict[str, str]] = {FRAUD_DETECTOR: {"top_drifted_features": "none"}}

SCRIPT: tuple[Step, ...] = (
    Step(0, SUPPORT_BOT, note="Both models are healthy; the feed pushes their metrics every second."),
    Step(2, SUPPORT_BOT, change={"kind": "prompt", "version": "v42", "author": "ana", "description": "shorter prompt"},
         note="A deploy job records what shipped: support-bot's prompt v42 (POST /api/v1/changes)."),
    Step(5, SUPPORT_BOT, {"p99_latency_ms": 6400, "response_time_p95_ms": 4100},
         note="support-bot: p99 latency jumps to 6.4 s (rule latency_spike, P1: it pages PagerDuty)."),
    Step(8, FRAUD_DETECTOR, {"p99_latency_ms": 5800}, note="fraud-detector-v2: p99 latency climbs to 5.8 s."),
    Step(15, FRAUD_DETECTOR, {"drifted_feature_count": 14}, {"top_drifted_features": "merchant_category, amount, hour"},
         note="fraud-detector-v2: 14 of 40 features drift (P2; unacknowledged, it climbs to P1 and pages)."),
    Step(20, SUPPORT_BOT, {"daily_cost_usd": 455.0, "cost_usd": 27.0},
         note="support-bot: LLM spend runs away, $455 of a $500 daily budget (rule llm_cost_runaway)."),
    Step(30, FRAUD_DETECTOR, {"current_accuracy": 0.88}, note="fraud-detector-v2: accuracy drops to 0.88."),
    Step(45, SUPPORT_BOT, command=("#llm-alerts", "/incident declare support-bot"),
         note="The on-call declares an incident (/incident declare support-bot): a room opens with a pinned card."),
    Step(60, SUPPORT_BOT, command=("room", "/incident update Rolling the prompt back from v42 to v41"),
         note="In the room, /incident update: said in the room and in the alert's thread, kept in the timeline."),
    Step(RECOVERY_AT, SUPPORT_BOT, HEALTHY[SUPPORT_BOT],
         note="support-bot recovers: the bot auto-resolves its alerts and posts a postmortem draft in the room."),
    Step(RECOVERY_AT, FRAUD_DETECTOR, HEALTHY[FRAUD_DETECTOR], HEALTHY_LABELS[FRAUD_DETECTOR],
         note="fraud-detector-v2 recovers: the bot auto-resolves what is still open."),
    Step(RECOVERY_AT + 15, SUPPORT_BOT, note="The incident is over. Press Ctrl-C to stop the demo."),
)  # fmt: skip


def values_at(t: float, script: tuple[Step, ...] = SCRIPT) -> dict[str, tuple[dict[str, float], dict[str, str]]]:
    """Each model's metrics and labels at demo second ``t``: healthy values changed by every step so far."""
    state = {m: (dict(values), dict(HEALTHY_LABELS.get(m, {}))) for m, values in HEALTHY.items()}
    for step in script:
        if step.at <= t:
            metrics, labels = state.setdefault(step.model, ({}, {}))
            metrics.update(step.metrics)
            labels.update(step.labels)
    for index, (metrics, _labels) in enumerate(state.values()):
        for name, value in metrics.items():
            if name.endswith(("_ms", "_usd")):  # latencies and spend wobble by ±3 %; counts stay whole
                metrics[name] = round(value * (1 + 0.03 * math.sin(t * 0.7 + index + len(name))), 2)
    return state


def notes_between(start: float, end: float, script: tuple[Step, ...] = SCRIPT) -> list[str]:
    """The narration of the steps whose time falls in ``[start, end)``."""
    return [s.note for s in steps_between(start, end, script) if s.note]


def steps_between(start: float, end: float, script: tuple[Step, ...] = SCRIPT) -> list[Step]:
    return [s for s in script if start <= s.at < end]


class MetricFeed:
    """Pushes :func:`values_at` to the ingest API once a second from a daemon thread."""

    def __init__(
        self,
        ingest_url: str,
        token: str,
        *,
        speed: float = 1.0,
        interval: float = 1.0,
        narrate: Callable[[float, str], None] | None = None,
        act: Callable[[str, str, str], None] | None = None,
        script: tuple[Step, ...] = SCRIPT,
    ) -> None:
        """``act(model, channel, line)``: run a step's slash command as the on-call (the sandbox's user)."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.ingest_url = ingest_url
        self.speed = speed
        self.interval = interval
        self.script = script
        self._narrate = narrate or (lambda _t, _text: None)
        self._act = act
        self.changes_url = ingest_url.replace("/api/v1/metrics", "/api/v1/changes")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pushed = 0

    def start(self) -> MetricFeed:
        self._thread = threading.Thread(target=self._run, name="demo-metric-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        started = time.monotonic()
        told = -1.0  # narrated up to (excluding) this demo second
        with httpx.Client(timeout=5.0) as http:
            while not self._stop.is_set():
                t = (time.monotonic() - started) * self.speed
                due = steps_between(told, t + 1e-9, self.script)
                for step in due:
                    if step.note:
                        self._narrate(t, step.note)
                told = t + 1e-9
                self.push(http, t)
                for step in due:
                    self._perform(http, step)
                self._stop.wait(self.interval)

    def _perform(self, http: httpx.Client, step: Step) -> None:
        """A step's change event and slash command; a failure is logged, the story goes on."""
        try:
            if step.change is not None:
                answer = http.post(self.changes_url, json={"model": step.model, **step.change}, headers=self._headers)
                if answer.status_code != 202:
                    log.warning("demo feed: the changes API answered %s: %s", answer.status_code, answer.text[:200])
            if step.command is not None and self._act is not None:
                self._act(step.model, *step.command)
        except (httpx.HTTPError, OSError) as exc:
            log.warning("demo feed: a scripted step at %ss failed: %s", step.at, exc)

    def push(self, http: httpx.Client, t: float) -> None:
        """One batch with every model's current values; a failure is logged and retried next tick."""
        batch: list[dict[str, Any]] = [
            {"model": model, "metrics": metrics, **({"labels": labels} if labels else {})}
            for model, (metrics, labels) in values_at(t, self.script).items()
        ]
        try:
            answer = http.post(self.ingest_url, json=batch, headers=self._headers)
        except httpx.HTTPError as exc:
            log.warning("demo feed: pushing metrics failed (%s); retrying next second", exc)
            return
        if answer.status_code != 202:
            log.warning("demo feed: the ingest API answered %s: %s", answer.status_code, answer.text[:200])
            return
        self.pushed += 1
