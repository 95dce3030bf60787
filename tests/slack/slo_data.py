"""SLO history for the command tests: metrics pushed through ``AlertService.ingest`` as the clock
advances, as a model's exporter would push them, so ``/slo status`` has numbers to show.

Over the pushed span, for support-bot (shipped ``rules/slos.yaml``):

- ``current_accuracy`` holds at 0.93 (objective above 0.90): ✅ ok;
- ``helpfulness`` is 0.90, then 0.78 for the last six hours (warning 0.80): ⚠️ warning;
- ``response_time_p95_ms`` is 1500 ms, then 5600 ms for the last hour (critical 5000): 🔴 critical;
- ``availability`` (responses_ok / responses_total), ``error_rate`` (responses_error /
  responses_total) and ``cost_per_query`` (cost_usd / responses_total) are never pushed: ⚪ no data;

and fraud-detector-v2's ``p99_latency_ms`` holds at 1200 ms: ✅ ok.
"""

from __future__ import annotations

from datetime import timedelta

from bot.clock import FrozenClock
from bot.service import AlertService

STEP = timedelta(minutes=15)
"""A push every 15 minutes: each sample holds until the next (``stale_after`` is 15 min), so the
pushed span is fully covered."""


def push_slo_history(service: AlertService, clock: FrozenClock, *, span: timedelta = timedelta(days=2)) -> None:
    """Push ``span`` of samples ending at the clock's new ``now`` (the clock advances by ``span``)."""
    steps = int(span / STEP)
    for i in range(steps + 1):
        left = (steps - i) * STEP
        at = clock.now()
        service.ingest(
            [
                ("support-bot", "current_accuracy", at, 0.93),
                ("support-bot", "helpfulness", at, 0.78 if left < timedelta(hours=6) else 0.90),
                ("support-bot", "response_time_p95_ms", at, 5600.0 if left < timedelta(hours=1) else 1500.0),
                ("fraud-detector-v2", "p99_latency_ms", at, 1200.0),
            ]
        )
        if i < steps:
            clock.advance(STEP)
