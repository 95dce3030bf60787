"""The severity scale of seed 001, shared by configuration, alerts and notifiers."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """P0 is the most severe. Ordering follows urgency: ``Severity.P0 < Severity.P3``."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"

    @property
    def rank(self) -> int:
        return int(self.value[1])

    @property
    def emoji(self) -> str:
        return _EMOJI[self]

    @property
    def label(self) -> str:
        return _LABEL[self]

    @property
    def pages(self) -> bool:
        """P0 and P1 page PagerDuty (seed 001's routing table)."""
        return self in (Severity.P0, Severity.P1)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank


_EMOJI = {Severity.P0: "🔴", Severity.P1: "🟠", Severity.P2: "🟡", Severity.P3: "🔵"}
_LABEL = {Severity.P0: "critical", Severity.P1: "high", Severity.P2: "medium", Severity.P3: "low"}
