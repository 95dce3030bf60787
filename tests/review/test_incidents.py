"""The weekly review's incident lines: declared, median time to declare and to resolve, resolved
with no note -- pure, and from the fixture database through ``weekly_review_text``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config.loader import load_config
from bot.incidents.incident import Incident, IncidentState
from bot.review.incidents import summarize, summary_lines
from bot.review.weekly import weekly_review_text
from bot.severity import Severity
from tests.review.incident_world import ANA, MIN, T0, build_world, resolve

NOTE = {"cause": "c", "fix": "f", "by": ANA, "at": T0.isoformat()}


def incident(n: int, *, declared: int | None = None, resolved: int | None = None, note: bool = False) -> Incident:
    opened = datetime(2026, 12, 1, 9, 0, tzinfo=UTC) + timedelta(hours=n)
    base = Incident("g", "#a", Severity.P1, IncidentState.FIRING, opened, id=n)
    if declared is not None:
        base = replace(base, declared_at=opened + declared * MIN)
    if resolved is not None:
        base = replace(base, state=IncidentState.RESOLVED, resolved_at=opened + resolved * MIN)
    return replace(base, resolution_note=NOTE) if note else base


def test_the_summary_counts_declared_medians_and_resolved_without_a_note() -> None:
    incidents = [
        incident(1, declared=2, resolved=20, note=True),
        incident(2, declared=10, resolved=40),
        incident(3, resolved=90),
        incident(4),  # still open: neither resolved nor counted without a note
    ]

    summary = summarize(incidents)

    assert (summary.opened, summary.declared, summary.resolved) == (4, 2, 3)
    assert summary.median_to_declare == 6 * MIN  # between 2 and 10
    assert summary.median_to_resolve == 40 * MIN
    assert summary.without_note == (2, 3)
    assert summary_lines(summary) == [
        "Incidents: 4 opened · 2 declared (median 6 min to declare) · 3 resolved (median 40 min to resolve)"
        " · 2 resolved with no note: #2, #3"
    ]


def test_a_week_without_incidents_adds_no_line() -> None:
    assert summary_lines(summarize([])) == []


def test_the_weekly_review_text_says_how_the_incidents_were_handled(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    resolve(world)

    text = weekly_review_text(world.engine, load_config(world.config_dir), T0 + 60 * MIN)

    assert "Total: 1 incident from 1 fires, 1 acted on" in text
    assert (
        "Incidents: 1 opened · 1 declared (median 6 min to declare) · 1 resolved (median 30 min to resolve)"
        " · 0 resolved with no note"
    ) in text
