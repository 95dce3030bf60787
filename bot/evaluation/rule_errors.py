"""Rules that fail to evaluate: skipped, counted, logged once, shown in ``/healthz`` and ``/metrics``.

A rule whose condition or templates raise (a bug, or a limit the load-time checks missed) must
neither stop the other rules nor pass unnoticed. Before this, one ``RecursionError`` ended every
pass: no rule fired for any model while ``/healthz`` said ok. Now the pass skips the failing
(rule, model) -- no transition, so a firing alert stays open and a pending one keeps waiting --
and reports it here.

Logging is on change: ERROR (with the traceback) when a rule starts failing or fails differently,
INFO when it stops; a rule failing every 30 s for a day writes two lines, not 2,880. The counter
``incident_bot_rule_evaluation_errors_total{rule}`` counts every failed evaluation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.observability import Metrics

log = logging.getLogger(__name__)

ERROR_CHARS = 200
"""How much of an exception's text is kept: enough to recognise it, short enough for /healthz."""


@dataclass(frozen=True)
class RuleFailure:
    """One (rule, model) evaluation that raised."""

    rule: str
    model: str
    error: str
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, rule: str, model: str, exc: BaseException) -> RuleFailure:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return cls(rule, model, text[:ERROR_CHARS], exc)


@dataclass(frozen=True)
class _Failing:
    first: RuleFailure
    models: int


class RuleErrors:
    """Which rules failed in the latest evaluation pass. Thread-safe: the scheduler's pass
    records, ``/healthz`` reads."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._failing: dict[str, _Failing] = {}

    def record_pass(self, failures: Iterable[RuleFailure]) -> None:
        """Replace the picture with one pass's failures (none: every rule evaluated)."""
        by_rule: dict[str, list[RuleFailure]] = {}
        for failure in failures:
            by_rule.setdefault(failure.rule, []).append(failure)
        now_failing = {rule: _Failing(found[0], len(found)) for rule, found in by_rule.items()}
        with self._lock:
            before, self._failing = self._failing, now_failing
        for rule, failing in sorted(now_failing.items()):
            if self._metrics:
                self._metrics.rule_evaluation_errors(rule, failing.models)
            if rule not in before or before[rule].first.error != failing.first.error:
                log.error(
                    "rule %s cannot be evaluated for %d model(s), e.g. %s: %s; it is skipped, the other rules run",
                    rule,
                    failing.models,
                    failing.first.model,
                    failing.first.error,
                    exc_info=failing.first.exception,
                )
        for rule in sorted(before.keys() - now_failing.keys()):
            log.info("rule %s evaluates again", rule)

    def failing(self) -> dict[str, str]:
        """Rule → what went wrong in the latest pass, for ``/healthz``."""
        with self._lock:
            current = dict(self._failing)
        return {
            rule: f"{failing.models} model(s), e.g. {failing.first.model}: {failing.first.error}"
            for rule, failing in sorted(current.items())
        }
