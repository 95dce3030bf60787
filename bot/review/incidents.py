"""The incidents of the weekly review: how many were declared, how fast they were declared and
resolved (medians), and how many were resolved with no note. Pure.

An alert review says whether the rules are noisy; these lines say whether the response is getting
better -- and the count of resolved incidents with no resolution note is the one to drive to zero,
since a missing note is a lesson the next on-call cannot read ("Seen before").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from bot.config.durations import humanize
from bot.incidents.incident import Incident, IncidentState
from bot.review.core import median

NAMED = 10
"""Incidents without a note named by number, at most."""


@dataclass(frozen=True)
class IncidentSummary:
    opened: int
    declared: int
    median_to_declare: timedelta | None
    resolved: int
    median_to_resolve: timedelta | None
    without_note: tuple[int, ...]
    """The resolved incidents nobody wrote a resolution note for (their ids)."""


def summarize(incidents: Sequence[Incident]) -> IncidentSummary:
    """The summary of the incidents that opened in the review's window."""
    to_declare = [i.declared_at - i.opened_at for i in incidents if i.declared_at is not None]
    resolved = [i for i in incidents if i.state is IncidentState.RESOLVED and i.resolved_at is not None]
    to_resolve = [i.resolved_at - i.opened_at for i in resolved if i.resolved_at is not None]
    return IncidentSummary(
        opened=len(incidents),
        declared=len(to_declare),
        median_to_declare=median(to_declare),
        resolved=len(resolved),
        median_to_resolve=median(to_resolve),
        without_note=tuple(i.id or 0 for i in resolved if not i.resolution_note),
    )


def summary_lines(summary: IncidentSummary) -> list[str]:
    """``Incidents: 4 opened · 1 declared (median 6 min to declare) · 3 resolved (median 30 min to
    resolve) · 2 resolved with no note: #3, #5``; nothing when none opened."""
    if not summary.opened:
        return []
    declared = f"{summary.declared} declared"
    if summary.median_to_declare is not None:
        declared += f" (median {humanize(summary.median_to_declare)} to declare)"
    resolved = f"{summary.resolved} resolved"
    if summary.median_to_resolve is not None:
        resolved += f" (median {humanize(summary.median_to_resolve)} to resolve)"
    missing = summary.without_note
    named = ", ".join(f"#{i}" for i in missing[:NAMED]) + (" …" if len(missing) > NAMED else "")
    no_note = f"{len(missing)} resolved with no note" + (f": {named}" if missing else "")
    return [f"Incidents: {summary.opened} opened · {declared} · {resolved} · {no_note}"]
