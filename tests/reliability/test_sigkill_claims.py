"""SIGKILL with outbox rows claimed (issue 12, point 5): delivery resumes within seconds.

The process dies while its Slack lane holds a claimed batch -- one post stored by Slack but not
answered, the rest of the batch not yet tried -- and a new process starts on the same database.
Nobody renews the dead process's claims, so they lapse within the claim lease (10 s,
``bot.notify.outbox.CLAIM_LEASE``), and the new process's lanes wake as they do: everything drains
in under :data:`DRAINED_WITHIN` of the restart, and nothing is posted twice (the post Slack
stored is found by its metadata, not posted again). Unlike ``test_sigkill_root_post.py``, the
claims are not aged by hand: the lease ends on its own. Run on SQLite and on PostgreSQL.

While the first process lives, its claims are seen renewed past their first lease: a send may
outlast the lease without another process taking the row.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from bot.clock import ensure_utc
from bot.storage.tables import OutboxRow
from tests.e2e.test_escalation_crash import Served, outbox_id, serve_env
from tests.reliability.harness import (
    ACCURACY,
    COST,
    DRIFT,
    ScriptedPagerDuty,
    ScriptedSlack,
    accepted_roots,
    assert_slack_exactly_once,
    explain,
    outbox,
    pagerduty_summary,
    reliability_config,
    wait_until,
)

DRAINED_WITHIN = 15.0
"""Seconds from the restart (the new process spawned) until every outbox row is sent."""
CHANNELS = ["#llm-alerts", "#ml-alerts"]


def claimed(engine: Engine) -> list[OutboxRow]:
    """Pending Slack rows that some process holds a claim on."""
    return [o for o in outbox(engine) if o.channel == "slack" and o.status == "pending" and o.claimed_until]


def test_sigkill_with_a_claimed_batch_drains_within_seconds_of_the_restart_and_doubles_nothing(
    engine: Engine, tmp_path: Path, slack: ScriptedSlack, pagerduty: ScriptedPagerDuty
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    env = {
        **serve_env(url, reliability_config(tmp_path / "config"), slack, pagerduty),
        "OUTBOX_BACKOFF_BASE": "0.2",
        "OUTBOX_BACKOFF_CAP": "1",
    }
    processes: list[Served] = []

    def why() -> str:
        log = processes[-1].output()[-5000:] if processes else ""
        claims = [(o.id, o.kind, o.claimed_by, o.claimed_until) for o in outbox(engine) if o.claimed_until]
        return f"{explain(engine, slack, pagerduty)}\nclaims: {claims}\n--- log (tail) ---\n{log}"

    try:
        slack.delay_next("chat.postMessage", 120)  # the first post: stored at once, answered never
        first = Served(env, tmp_path / "serve.log", name="serve #1")
        processes.append(first)
        first.push([COST, DRIFT, ACCURACY])  # two channels, two incidents, two pages
        in_flight = wait_until(lambda: accepted_roots(slack), "the first post to reach Slack", explain=why)[0]
        batch = wait_until(
            lambda: rows if len(rows := claimed(engine)) >= 2 else None,
            "the Slack lane to hold a batch of two or more claimed rows",
            explain=why,
        )
        [held] = [o for o in batch if o.id == outbox_id(in_flight)]
        first_lease = ensure_utc(held.claimed_until)  # type: ignore[arg-type]

        def renewed() -> OutboxRow | None:
            [row] = [o for o in outbox(engine) if o.id == held.id]
            return row if row.claimed_until and ensure_utc(row.claimed_until) > first_lease else None

        # the live process renews its claims (every 3.3 s) while the post hangs; the client gives
        # up after 10 s, so this is seen well before the send ends
        renewal = wait_until(renewed, "the live process to renew its claims", explain=why, timeout=8)
        assert renewal.claimed_by == held.claimed_by and renewal.attempts == 1, why()
        first.kill()
        killed = datetime.now(UTC)

        left = claimed(engine)
        assert {o.id for o in batch} <= {o.id for o in left}, why()
        assert all(ensure_utc(o.claimed_until) > killed for o in left), "the dead process's claims still stand"  # type: ignore[arg-type]
        assert len(accepted_roots(slack)) == 1, "only the post in flight reached Slack before the kill"

        restarted, restarted_at = time.monotonic(), datetime.now(UTC)
        lapse = max(ensure_utc(o.claimed_until) for o in left) - restarted_at  # type: ignore[arg-type]
        second = Served(env, tmp_path / "serve.log", name="serve #2")
        processes.append(second)
        wait_until(
            lambda: all(o.status == "sent" for o in outbox(engine)),
            "every row to be delivered after the restart",
            explain=why,
            timeout=DRAINED_WITHIN + 30,  # only a bound against a hang: the figure is asserted below
        )
        drained = time.monotonic() - restarted
        print(
            f"drained {drained:.1f}s after the restart; the dead process's {len(left)} claims lapsed "
            f"{lapse.total_seconds():.1f}s after it"
        )
        assert drained < DRAINED_WITHIN, f"drained only {drained:.1f}s after the restart\n{why()}"

        [again] = [o for o in outbox(engine) if o.id == held.id]
        assert (again.status, again.attempts) == ("sent", 2), why()
        assert "found an earlier Slack post" in second.output(), "the stored post was found, not posted again"
        assert_slack_exactly_once(engine, slack, CHANNELS)
        summary = +pagerduty_summary(pagerduty)
        assert summary and set(Counter(action for action, _key in summary)) == {"trigger"}, why()
        assert set(summary.values()) == {1}, f"a page was sent twice: {summary}"
    finally:
        for served in processes:
            served.stop()
