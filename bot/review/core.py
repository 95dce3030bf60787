"""The weekly alert review of seed 001 (pure): which rules fire, and which of them anyone acts on.

"Track alert-to-action ratio; delete alerts that are never acted on." Per rule, over a window
ending at ``now``, counting the alerts that **fired** in the window (a pending alert that cleared
before firing reached no one and is not counted):

- **fires** — alerts that fired;
- **acknowledgements** — of those, the ones a person acknowledged;
- **median time to acknowledge** — from firing to the first acknowledgement by a person;
- **auto-resolved without action** — resolved by the bot (the condition cleared) with no person
  ever acknowledging or resolving them: the alert was noise, or the problem fixed itself;
- **alert-to-action ratio** — fires per alert a person acted on (acknowledged or resolved):
  1.0 means every alert was acted on, 4.0 that three in four were ignored; ``None`` when nothing
  was acted on at all (never acted on — the strongest signal).

A person is any actor that is not the bot: not ``incident-bot``, not ``rule:<name>`` and not
``alertmanager``. Escalations and auto-resolves are the bot's own doing, never an action.

**Flags and suggestions.** A rule is flagged as noisy when it fired at least
:data:`MIN_FIRES_TO_FLAG` times and its ratio is at least :data:`NOISY_RATIO` (or it was never
acted on). The suggestion follows the data, first match wins:

1. most fires auto-resolved within :data:`SHORT_LIVED` with nobody acting → the condition flaps:
   **add ``for:``** long enough to cover three in four of those blips;
2. most fires came within :data:`REFIRE_GAP` of the previous alert on the same key resolving →
   **lengthen ``cooldown:``** beyond the longest such gap;
3. never acted on → **raise the threshold or delete the rule**;
4. otherwise → **raise the threshold**: it fires far more often than it matters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, Event, EventKind, Timing
from bot.config.durations import humanize, written

MIN_FIRES_TO_FLAG = 3
NOISY_RATIO = 2.0
"""At least two fires per alert acted on: half of this rule's alerts are ignored."""
SHORT_LIVED = timedelta(minutes=15)
REFIRE_GAP = timedelta(hours=1)
NICE_DURATIONS = tuple(timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30, 60, 120, 240, 480, 720, 1440))
MACHINE_ACTORS = frozenset({SYSTEM_ACTOR, "alertmanager"})


def is_person(actor: str) -> bool:
    return actor not in MACHINE_ACTORS and not actor.startswith("rule:")


@dataclass(frozen=True, slots=True)
class RuleReview:
    rule: str
    models: tuple[str, ...]
    fires: int
    acknowledged: int
    median_time_to_ack: timedelta | None
    auto_resolved_unactioned: int
    acted_on: int
    short_lived: int
    """Auto-resolved without action within :data:`SHORT_LIVED` of firing."""
    refires: int
    """Fired within :data:`REFIRE_GAP` of the previous alert on the same key resolving."""
    flagged: bool
    suggestion: str | None
    """What to change and why, with the numbers; ``None`` unless flagged."""

    @property
    def ratio(self) -> float | None:
        """Fires per alert acted on; ``None`` when none was (never acted on)."""
        return None if self.acted_on == 0 else self.fires / self.acted_on


@dataclass(frozen=True, slots=True)
class _Fire:
    alert: Alert
    fired_at: datetime
    acked_at: datetime | None
    acted_on: bool
    auto_resolved: bool
    lifetime: timedelta | None
    """Firing to resolution."""
    held: timedelta | None
    """Condition first true (pending included) until it cleared: what a ``for:`` must outlast (a
    ``keep_firing_for`` window after the condition cleared is not part of the breach)."""
    refire_gap: timedelta | None


def review(
    alert_history: Sequence[Alert],
    events: Mapping[int, Sequence[Event]],
    now: datetime,
    window: timedelta,
    *,
    timings: Mapping[str, Timing] | None = None,
) -> list[RuleReview]:
    """Per-rule review of the alerts that fired in ``(now − window, now]``, noisiest first.

    ``alert_history`` may reach further back than the window: older alerts are used only to
    tell whether a fire in the window came soon after its predecessor resolved. ``events`` maps
    alert id → its events (an alert without an entry is judged from its own fields). ``timings``
    (rule name → its current ``for:`` and cooldown) keeps a suggestion above what is set already.
    """
    start = now - window
    fires: dict[str, list[_Fire]] = {}
    previous_resolution: dict[str, datetime] = {}
    for alert in sorted((a for a in alert_history if a.fired_at is not None), key=lambda a: a.fired_at or now):
        fired_at = alert.fired_at
        assert fired_at is not None
        if fired_at > now:
            break
        before = previous_resolution.get(alert.key)
        if alert.resolved_at is not None and alert.resolved_at <= now:
            previous_resolution[alert.key] = alert.resolved_at
        if fired_at <= start:
            continue
        fires.setdefault(alert.rule, []).append(_fire(alert, events.get(alert.id or -1), now, before))
    reviews = [_rule_review(rule, items, (timings or {}).get(rule)) for rule, items in fires.items()]
    return sorted(reviews, key=lambda r: (not r.flagged, -r.fires, -(r.ratio or math.inf), r.rule))


def _fire(alert: Alert, events: Sequence[Event] | None, now: datetime, before: datetime | None) -> _Fire:
    fired_at = alert.fired_at
    assert fired_at is not None
    seen = [e for e in events if e.at <= now] if events is not None else None
    if seen is not None:
        acks = [e.at for e in seen if e.kind is EventKind.ACKNOWLEDGED and is_person(e.actor)]
        acked_at = min(acks) if acks else None
        acted = any(is_person(e.actor) for e in seen)
        auto = any(e.kind is EventKind.AUTO_RESOLVED for e in seen)
    else:  # no event history given: the alert row's own fields
        acked_at = alert.acknowledged_at if alert.acknowledged_by and is_person(alert.acknowledged_by) else None
        acted = acked_at is not None or bool(alert.resolved_by and is_person(alert.resolved_by))
        auto = alert.resolved_by == SYSTEM_ACTOR
    resolved = alert.resolved_at if alert.resolved_at is not None and alert.resolved_at <= now else None
    return _Fire(
        alert=alert,
        fired_at=fired_at,
        acked_at=acked_at,
        acted_on=acted,
        auto_resolved=auto and resolved is not None,
        lifetime=resolved - fired_at if resolved is not None else None,
        held=min(resolved, alert.clear_since or resolved) - alert.started_at if resolved is not None else None,
        refire_gap=fired_at - before if before is not None and fired_at - before <= REFIRE_GAP else None,
    )


def _rule_review(rule: str, fires: list[_Fire], timing: Timing | None) -> RuleReview:
    ack_times = [f.acked_at - f.fired_at for f in fires if f.acked_at is not None]
    unactioned = [f for f in fires if f.auto_resolved and not f.acted_on]
    short = [f for f in unactioned if f.lifetime is not None and f.lifetime <= SHORT_LIVED]
    refires = [f for f in fires if f.refire_gap is not None]
    acted = sum(1 for f in fires if f.acted_on)
    count = len(fires)
    ratio = None if acted == 0 else count / acted
    flagged = count >= MIN_FIRES_TO_FLAG and (ratio is None or ratio >= NOISY_RATIO)
    return RuleReview(
        rule=rule,
        models=tuple(sorted({f.alert.model for f in fires})),
        fires=count,
        acknowledged=len(ack_times),
        median_time_to_ack=median(ack_times),
        auto_resolved_unactioned=len(unactioned),
        acted_on=acted,
        short_lived=len(short),
        refires=len(refires),
        flagged=flagged,
        suggestion=_suggest(rule, fires, short, refires, acted, timing) if flagged else None,
    )


def _suggest(
    rule: str, fires: list[_Fire], short: list[_Fire], refires: list[_Fire], acted: int, timing: Timing | None
) -> str:
    count = len(fires)
    slo = rule.startswith("slo:")
    if 2 * len(short) > count and not slo:
        lifetimes = sorted(f.held for f in short if f.held is not None)
        typical = lifetimes[max(math.ceil(0.75 * len(lifetimes)) - 1, 0)]
        wait = _nice_above(max(typical, timing.for_ if timing else timedelta(0)))
        return (
            f"add `for: {written(wait)}` — {len(short)} of {count} fires auto-resolved within "
            f"{humanize(SHORT_LIVED)} with nobody acting (3 in 4 held for {humanize(typical)} or less)"
        )
    if 2 * len(refires) > count:
        gaps = [f.refire_gap for f in refires if f.refire_gap is not None]
        cooldown = _nice_above(max(*gaps, timing.cooldown if timing else timedelta(0)))
        return (
            f"lengthen `cooldown:` to {written(cooldown)} — {len(refires)} of {count} fires came within "
            f"{humanize(max(gaps))} of the previous alert resolving"
        )
    if acted == 0:
        if slo:
            return f"review the SLO's objective and guards (min_events, min_coverage) — none of {count} fires acted on"
        return f"raise the threshold or delete the rule — none of its {count} fires was acknowledged or resolved"
    return f"raise the threshold — only {acted} of {count} fires were acted on"


def median(values: Sequence[timedelta]) -> timedelta | None:
    """The middle value; of an even count, the mean of the middle two."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _nice_above(delta: timedelta) -> timedelta:
    """The first round duration strictly longer than ``delta`` (whole days past the list)."""
    for nice in NICE_DURATIONS:
        if nice > delta:
            return nice
    return timedelta(days=math.floor(delta / timedelta(days=1)) + 1)
