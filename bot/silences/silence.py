"""What a silence is and what it matches (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Silence:
    rule: str | None
    """``None`` matches every rule."""
    model: str | None
    """``None`` matches every model."""
    starts_at: datetime
    ends_at: datetime
    created_by: str
    reason: str = ""
    id: int | None = None

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, rule: str, model: str) -> bool:
        return (self.rule is None or self.rule == rule) and (self.model is None or self.model == model)

    def describe(self) -> str:
        target = " on ".join(part for part in (self.rule, self.model) if part) or "everything"
        return target


def silenced(silences: list[Silence], *, rule: str, model: str, now: datetime) -> bool:
    return any(s.active(now) and s.matches(rule, model) for s in silences)
