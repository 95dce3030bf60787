"""Rule conditions: safe expressions over metric names, parsed once at load.

``predictions_last_hour < expected_predictions_per_hour * 0.5`` is parsed with Python's
``ast`` and checked against a whitelist (names, numbers, comparisons, and/or/not, arithmetic,
``abs``/``min``/``max``, and the window functions of :mod:`bot.config.windows`, each replaced by a
plain name at parse time), then evaluated by :mod:`simpleeval`, a maintained evaluator that never
calls ``eval``. A name with no value (the metric did not arrive) is *no data*, which the alert
lifecycle treats differently from "false": it must not resolve a firing alert.

Nesting is limited (:data:`MAX_DEPTH`): simpleeval walks the tree recursively, so ``- - - … x``
950 deep would parse here and then raise ``RecursionError`` on every evaluation pass.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping
from enum import Enum
from typing import Any

from simpleeval import NameNotDefined, SimpleEval

from bot.config.windows import WINDOW_FUNCTIONS, WindowSyntaxError, WindowTerm, extract_windows, quote_bare_durations

_FUNCTIONS: dict[str, Any] = {"abs": abs, "min": min, "max": max}
_OPERATORS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
MAX_DEPTH = 50
"""How deeply a condition may nest (``-(-x)`` is 3, ``a + b + c`` is 3); real ones stay under 10."""

_ALLOWED_NODES = (
    ast.Expression,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Compare,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.BinOp,
    ast.UnaryOp,
    ast.Call,
    *_OPERATORS,
)


class Outcome(Enum):
    """What one evaluation of a condition says."""

    TRUE = "true"
    FALSE = "false"
    NO_DATA = "no_data"


class ConditionSyntaxError(ValueError):
    """The text is not a condition we accept; the message says what to change."""


class Condition:
    """A parsed, validated condition. Immutable and shareable across threads."""

    __slots__ = ("_tree", "names", "source", "windows")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ConditionSyntaxError("a condition is required, e.g. p99_latency_ms > 5000")
        self.source = source.strip()
        try:
            tree = ast.parse(quote_bare_durations(self.source), mode="eval")
        except (RecursionError, MemoryError):  # the parser's own limit, thousands deep
            raise ConditionSyntaxError(_too_deep(self.source, None)) from None
        except SyntaxError as exc:
            raise ConditionSyntaxError(
                f"cannot parse condition {self.source!r} at column {exc.offset or len(self.source) + 1}: {exc.msg}; "
                "write a comparison such as p99_latency_ms > 5000"
            ) from None
        if (depth := _depth(tree.body)) > MAX_DEPTH:  # before rewriting: that recurses
            raise ConditionSyntaxError(_too_deep(self.source, depth))
        try:
            tree, windows = extract_windows(tree, self.source)
        except WindowSyntaxError as exc:
            raise ConditionSyntaxError(str(exc)) from None
        _check_whitelist(tree, self.source)
        self._tree = tree.body
        self.windows: tuple[WindowTerm, ...] = windows
        """The windowed terms, each standing in the tree as the plain name :attr:`WindowTerm.name`."""
        terms = {term.name for term in windows}
        self.names: frozenset[str] = frozenset(
            node.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Name) and node.id not in _FUNCTIONS and node.id not in terms
        )
        """The metric and model-setting names read as they are now (not through a window)."""

    @property
    def inputs(self) -> frozenset[str]:
        """Every name the evaluation looks up: :attr:`names` and the windowed terms' names."""
        return self.names | {term.name for term in self.windows}

    def evaluate(self, values: Mapping[str, float], evaluator: ConditionEvaluator) -> Outcome:
        return evaluator.run(self, values)

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


class ConditionEvaluator:
    """Evaluates conditions with one reusable :class:`SimpleEval`.

    simpleeval keeps per-call state on the instance, so an evaluator belongs to one thread
    (one evaluation pass); building one per call would cost more than the evaluation.
    """

    def __init__(self) -> None:
        self._engine = SimpleEval(operators=dict(_OPERATORS), functions=dict(_FUNCTIONS), names={})

    def run(self, condition: Condition, values: Mapping[str, float | str]) -> Outcome:
        engine = self._engine
        engine.names = values
        engine.expr = condition.source
        try:
            result = engine._eval(condition._tree)  # previously parsed: skip re-parsing
        except NameNotDefined:
            return Outcome.NO_DATA
        except (ZeroDivisionError, OverflowError, TypeError, ValueError):
            # 0/0 or a label where a number belongs: the data cannot answer the question.
            return Outcome.NO_DATA
        if isinstance(result, float) and math.isnan(result):
            return Outcome.NO_DATA
        return Outcome.TRUE if result else Outcome.FALSE


def _depth(root: ast.expr) -> int:
    """The deepest chain of nested expressions, counted without recursing (the tree may be deep)."""
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))
    return deepest


def _too_deep(source: str, depth: int | None) -> str:
    shown = source if len(source) <= 60 else f"{source[:57]}..."
    how_deep = f"{depth} levels" if depth is not None else "thousands of levels"
    return (
        f"condition {shown!r} nests {how_deep} deep, over the limit of {MAX_DEPTH}; each sign, call and "
        "chained operator adds a level: simplify it (drop repeated - or not) or split it into several rules"
    )


def _check_whitelist(tree: ast.AST, source: str) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
                raise ConditionSyntaxError(
                    f"condition {source!r} calls something other than {', '.join(_FUNCTIONS)} and the window "
                    f"functions ({', '.join(sorted(WINDOW_FUNCTIONS))}); only those functions are available"
                )
            if node.keywords:
                raise ConditionSyntaxError(f"condition {source!r}: keyword arguments are not allowed")
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise ConditionSyntaxError(
                    f"condition {source!r} contains {node.value!r}; only numbers may appear as "
                    "literals (compare metrics with numbers)"
                )
        elif isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise ConditionSyntaxError(f"condition {source!r}: names may not start with '_' ({node.id})")
        elif not isinstance(node, _ALLOWED_NODES):
            raise ConditionSyntaxError(
                f"condition {source!r} uses {type(node).__name__}, which is not allowed; use "
                "metric names, numbers, comparisons, and/or/not, + - * / % and abs/min/max"
            )
