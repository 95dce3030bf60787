"""Which models a pass may leave alone: evaluation work proportional to change (issue 16).

At 10,000 models × 20 rules a pass spent most of its time re-deciding that nothing changed: a
model's rules decide from its current values (samples, settings, windowed terms), its open alerts
and the clock, and the clock matters only through an alert's timers (``for:``, ``cooldown``,
``keep_firing_for``; :func:`bot.alerts.lifecycle.next_change`). So when a pass found nothing to
change for a model, it remembers what that model's rules saw and the earliest timer; a later pass
that sees the same values and the same open alerts before that time skips the model's rules.

The pass still reads every model's values and open alerts (that is how it knows they did not
change, whichever replica or push changed them), so this is a shortcut of the CPU work only, never
of what the pass sees. Pure: no I/O, the pass's ``now`` passed in. Staleness needs no timer: a
stale sample leaves the values the pass computes, which is a change.

A model is first remembered by a fingerprint of its values only, and so is one whose values moved
since: in a fleet whose every value moves at every push, keeping each model's values (10,000
dictionaries) bought nothing and held about 10 MB. When the fingerprint comes back the same, the
values are kept, and the pass after that may skip the model: a model is left alone from the third
pass that sees its values unchanged, one pass later than it could be. Only whole values decide a
skip; the fingerprint only decides what is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.alerts.lifecycle import Alert, Value
from bot.config.loader import Config


@dataclass(frozen=True, slots=True)
class _Seen:
    values: Mapping[str, Value] | None
    """``None`` until the model's values have held for a pass (see the module's docstring)."""
    fingerprint: int
    alerts: Sequence[Alert]
    until: datetime | None
    """The earliest timer of the model's alerts; ``None``: nothing changes while the inputs hold."""


class QuietModels:
    """Models whose last pass changed nothing, with what they saw. One per process (the scheduler
    runs one pass at a time); a new configuration or a pass earlier than the last forgets them all."""

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}
        self._config: Config | None = None
        self._last: datetime | None = None

    def begin(self, config: Config, now: datetime) -> None:
        """Start a pass: what was remembered under another configuration, or later than ``now``, no
        longer holds (rules, settings and policies may differ; a timer may lie ahead again)."""
        if config is not self._config or (self._last is not None and now < self._last):
            self._seen.clear()
            self._config = config
        self._last = now

    def unchanged(self, model: str, values: Mapping[str, Value], alerts: Sequence[Alert], now: datetime) -> bool:
        """Whether ``model``'s rules would decide as last time: same values, same open alerts, no timer due."""
        seen = self._seen.get(model)
        if seen is None or seen.values is None or (seen.until is not None and now >= seen.until):
            return False
        return seen.values == values and seen.alerts == alerts

    def record(
        self, model: str, values: Mapping[str, Value], alerts: Sequence[Alert], *, changed: bool, until: datetime | None
    ) -> None:
        """What ``model``'s rules saw in this pass. Only a pass that ``changed`` nothing (no transition,
        no failing rule) is remembered: after a change the alerts differ, and a failing rule is
        reported again each pass it fails."""
        if changed:
            self._seen.pop(model, None)
            return
        fingerprint = hash(tuple(values.items()))
        before = self._seen.get(model)
        held = before is not None and before.fingerprint == fingerprint
        self._seen[model] = _Seen(values if held else None, fingerprint, alerts, until)

    def __len__(self) -> int:
        return len(self._seen)
