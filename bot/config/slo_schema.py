"""The ``slos:`` section of ``rules/*.yaml``: one service level objective each (seed 000).

Validation says, per ``kind``, which metric keys and which objective make sense, so a ratio SLO
missing its ``total_metric:`` fails at load with a hint, not at the first evaluation.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from bot.config.fields import Duration, Identifier, ModelName, Strict


class Objective(Strict):
    direction: Literal["below", "above"]
    target: float


def _objective(value: object) -> object:
    if isinstance(value, str):
        match = re.match(r"^\s*(below|above)\s+\$?(-?[0-9.]+(?:e-?\d+)?)\s*(%?)\s*$", value)
        if not match:
            raise ValueError(
                f"objective {value!r} must read 'below <number>' or 'above <number>' ('below 1%', 'below $0.05')"
            )
        target = float(match.group(2)) / (100.0 if match.group(3) else 1.0)
        return {"direction": match.group(1), "target": target}
    return value


SLO_LABEL_MAX = 96
"""An SLO's alerts carry the rule name ``slo:<label>``, stored in a 100-character column."""


class Slo(Strict):
    """One SLO (seed 000). ``kind: threshold`` (default) holds ``metric`` to its objective over
    time; ``kind: ratio`` divides two per-interval counts, ``good_metric / total_metric`` (above
    its objective) or ``bad_metric / total_metric`` (an error rate, below it); ``kind: quotient``
    holds ``numerator_metric / denominator_metric`` per interval (cost per query) to its objective
    over time. For the last two ``metric`` is only the SLI's label (default ``<good or bad or
    numerator>_per_<denominator>``). Keys left out take the defaults of :mod:`bot.slo.spec` (``None``
    here means "the default")."""

    model: ModelName
    metric: Identifier
    objective: Annotated[Objective, BeforeValidator(_objective)]
    warning: float
    critical: float
    window: Duration = timedelta(days=7)
    name: str | None = None
    kind: Literal["threshold", "ratio", "quotient"] = "threshold"
    good_metric: Identifier | None = None
    bad_metric: Identifier | None = None
    total_metric: Identifier | None = None
    numerator_metric: Identifier | None = None
    denominator_metric: Identifier | None = None
    target_compliance: float | None = None
    """Threshold SLOs: the share of the window the objective must hold (default 0.99)."""
    min_events: int | None = Field(default=None, ge=0)
    """Ratio SLOs: no burn alert on fewer events than this in the long window (default 100)."""
    min_coverage: float | None = None
    """Threshold SLOs: no burn alert on a long window with data for less than this share (default 0.5)."""
    absent_after: Duration | None = None
    """Alert when the SLI's metric has had no sample this long (default: ``settings.stale_after``)."""
    burn_alerts: bool = True

    @model_validator(mode="before")
    @classmethod
    def _ratio_label(cls, data: object) -> object:
        """A ratio or quotient SLO needs no ``metric:``: its label defaults to ``<good or bad
        metric>_ratio`` or ``<numerator>_per_<denominator>``."""
        if isinstance(data, dict) and data.get("kind") in ("ratio", "quotient") and "metric" not in data:
            first = data.get("good_metric") or data.get("bad_metric") or data.get("numerator_metric")
            denominator = data.get("denominator_metric")
            if isinstance(first, str):
                label = f"{first}_per_{denominator}" if isinstance(denominator, str) else f"{first}_ratio"
                return {**data, "metric": label}
        return data

    @model_validator(mode="after")
    def _kind_keys(self) -> Slo:
        given = {
            key
            for key in ("good_metric", "bad_metric", "total_metric", "numerator_metric", "denominator_metric")
            if getattr(self, key)
        }
        problem = _kind_problem(self.kind, given, self.objective)
        if problem is not None:
            raise ValueError(problem)
        if self.kind == "ratio" and (self.target_compliance is not None or self.min_coverage is not None):
            raise ValueError(
                "target_compliance and min_coverage apply to threshold and quotient SLOs; a ratio SLO's objective "
                "is its target and min_events its traffic guard: remove them"
            )
        if self.kind != "ratio" and self.min_events is not None:
            raise ValueError("min_events applies to kind: ratio; for a threshold or quotient SLO use min_coverage")
        if self.target_compliance is not None and not 0.0 < self.target_compliance < 1.0:
            raise ValueError(
                f"target_compliance must lie strictly between 0 and 1, e.g. 0.99 for 99% of the time "
                f"(got {self.target_compliance:g})"
            )
        if self.min_coverage is not None and not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(f"min_coverage must lie between 0 and 1, e.g. 0.5 (got {self.min_coverage:g})")
        if self.window <= timedelta(0):
            raise ValueError("window must be positive, e.g. 7d, 28d or 30d")
        if self.absent_after is not None and self.absent_after <= timedelta(0):
            raise ValueError("absent_after must be positive, e.g. 15m")
        if len(self.name or self.metric) > SLO_LABEL_MAX:
            raise ValueError(f"the SLO's label is too long; give it a name: of at most {SLO_LABEL_MAX} characters")
        return self

    @model_validator(mode="after")
    def _levels_in_order(self) -> Slo:
        target = self.objective.target
        ordered = (
            target <= self.warning <= self.critical
            if self.objective.direction == "below"
            else target >= self.warning >= self.critical
        )
        if not ordered:
            word = "above" if self.objective.direction == "below" else "below"
            raise ValueError(
                f"for an objective '{self.objective.direction} {target:g}', warning and critical "
                f"must lie {word} the target, critical furthest (got warning {self.warning:g}, "
                f"critical {self.critical:g})"
            )
        return self


_KIND_METRICS: dict[str, tuple[frozenset[str], ...]] = {
    "threshold": (frozenset(),),
    "ratio": (frozenset({"good_metric", "total_metric"}), frozenset({"bad_metric", "total_metric"})),
    "quotient": (frozenset({"numerator_metric", "denominator_metric"}),),
}
_KIND_HINTS = {
    "threshold": "a threshold SLO reads metric: alone; for counts add kind: ratio or kind: quotient",
    "ratio": "a ratio SLO needs total_metric: and one of good_metric: (successes) or bad_metric: (errors), "
    "counts per push such as responses_ok and responses_total",
    "quotient": "a quotient SLO needs numerator_metric: and denominator_metric:, e.g. cost_usd and queries per push",
}


def _kind_problem(kind: str, given: set[str], objective: Objective) -> str | None:
    """What is wrong with an SLO's metric keys and objective for its ``kind``, or None."""
    if frozenset(given) not in _KIND_METRICS[kind]:
        return _KIND_HINTS[kind] + f" (got {', '.join(sorted(given)) or 'none of them'})"
    if kind != "ratio":
        return None
    wanted = "below" if "bad_metric" in given else "above"
    if objective.direction != wanted or not 0.0 < objective.target < 1.0:
        share = (
            "'below 0.01' (or 'below 1%'): the share of bad events"
            if wanted == "below"
            else ("'above 0.995': the share of good events")
        )
        return f"this ratio SLO's objective reads {share} (got '{objective.direction} {objective.target:g}')"
    return None
