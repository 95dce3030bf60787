"""Rule conditions: safe expressions over metric names, parsed once at load.

``predictions_last_hour < expected_predictions_per_hour * 0.5`` is parsed with Python's
``ast`` and checked against a whitelist (names, numbers, comparisons, and/or/not, arithmetic,
``abs``/``min``/``max``, and the window functions of :mod:`bot.config.windows`, each replaced by a
plain name at parse time), then compiled, once, into nested closures, one per node of that
whitelist: nothing is ever given to ``eval`` or ``compile``. A name with no value (the metric did
not arrive) is *no data*, which the alert lifecycle treats differently from "false": it must not
resolve a firing alert.

Why closures and not a library evaluator: conditions used to run through :mod:`simpleeval`'s
tree walk, which dispatches on every node's type and checks every intermediate result each time,
and that was a quarter of an evaluation pass; at 10,000 models × 20 rules a pass runs 200,000
conditions (issue 16). The whitelist leaves eight kinds of node, each a line here; a test runs
random conditions through both and requires the same outcome (``tests/config/test_conditions.py``).

Nesting is limited (:data:`MAX_DEPTH`): ``- - - … x`` 950 deep would parse, then nest closures
past what the interpreter allows to call.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from bot.config.windows import WINDOW_FUNCTIONS, WindowSyntaxError, WindowTerm, extract_windows, quote_bare_durations

FUNCTIONS: dict[str, Any] = {"abs": abs, "min": min, "max": max}
OPERATORS: dict[type, Any] = {
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
    *OPERATORS,
)


class Outcome(Enum):
    """What one evaluation of a condition says."""

    TRUE = "true"
    FALSE = "false"
    NO_DATA = "no_data"


class ConditionSyntaxError(ValueError):
    """The text is not a condition we accept; the message says what to change."""


Compiled = Callable[[Mapping[str, Any]], Any]
"""A condition or one of its nodes, compiled: the values by name in, the node's value out."""


class Condition:
    """A parsed, validated condition. Immutable and shareable across threads."""

    __slots__ = ("_run", "names", "source", "windows")

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
        self._run = _compiled(tree.body)
        self.windows: tuple[WindowTerm, ...] = windows
        """The windowed terms, each standing in the tree as the plain name :attr:`WindowTerm.name`."""
        terms = {term.name for term in windows}
        self.names: frozenset[str] = frozenset(
            node.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Name) and node.id not in FUNCTIONS and node.id not in terms
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
    """Runs compiled conditions and says what their result means: true, false or no data.

    Stateless (the compiled closures keep nothing between calls); a class so that a benchmark can
    swap how conditions run (``bench/evaluate.py``) and an evaluation pass is handed one."""

    def run(self, condition: Condition, values: Mapping[str, float | str]) -> Outcome:
        try:
            result = condition._run(values)
        except KeyError:  # a name with no value
            return Outcome.NO_DATA
        except (ZeroDivisionError, OverflowError, TypeError, ValueError):
            # 0/0 or a label where a number belongs: the data cannot answer the question.
            return Outcome.NO_DATA
        if isinstance(result, float) and math.isnan(result):
            return Outcome.NO_DATA
        return Outcome.TRUE if result else Outcome.FALSE


def _compiled(node: ast.expr) -> Compiled:
    """The closure computing ``node`` (already checked against the whitelist) from the values.

    Python's own semantics, node by node: ``and``/``or`` stop at the first operand that decides
    and yield it, a chained comparison stops at the first false link, and a missing name raises
    ``KeyError``. A function's name used bare (``abs > 1``) is the function, as in Python."""
    if isinstance(node, ast.Constant):
        constant = node.value
        return lambda _values: constant
    if isinstance(node, ast.Name):
        name = node.id
        if name in FUNCTIONS:
            function = FUNCTIONS[name]
            return lambda values: values.get(name, function)
        return operator.itemgetter(name)
    if isinstance(node, ast.UnaryOp):
        unary, operand = OPERATORS[type(node.op)], _compiled(node.operand)
        return lambda values: unary(operand(values))
    if isinstance(node, ast.BinOp):
        return _applied(OPERATORS[type(node.op)], node.left, node.right)
    if isinstance(node, ast.BoolOp):
        return _boolean(isinstance(node.op, ast.And), tuple(_compiled(value) for value in node.values))
    if isinstance(node, ast.Compare):
        return _comparison(node)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        function, arguments = FUNCTIONS[node.func.id], tuple(_compiled(arg) for arg in node.args)
        return lambda values: function(*[argument(values) for argument in arguments])
    raise ConditionSyntaxError(f"cannot evaluate {type(node).__name__}")  # the whitelist lets none through


def _boolean(conjunction: bool, operands: tuple[Compiled, ...]) -> Compiled:
    def run(values: Mapping[str, Any]) -> Any:
        result = False
        for operand in operands:
            result = operand(values)
            if bool(result) is not conjunction:
                break
        return result

    return run


def _comparison(node: ast.Compare) -> Compiled:
    first = _compiled(node.left)
    pairs = zip(node.ops, node.comparators, strict=True)
    links = tuple((OPERATORS[type(op)], _compiled(comparator)) for op, comparator in pairs)
    if len(links) == 1:
        return _applied(links[0][0], node.left, node.comparators[0])

    def run(values: Mapping[str, Any]) -> Any:
        right = first(values)
        result: Any = True
        for compare, operand in links:
            left, right = right, operand(values)
            result = compare(left, right)
            if not result:
                break
        return result

    return run


def _applied(function: Callable[[Any, Any], Any], left: ast.expr, right: ast.expr) -> Compiled:
    """The closure computing ``function(left, right)``. A metric's name or a number on either side
    is read in place, not through a closure of its own: most conditions compare a metric with a
    number or a setting, and a call per leaf was a third of what running them cost."""
    name, other = _name_of(left), _name_of(right)
    if name is not None and isinstance(right, ast.Constant):
        constant = right.value
        return lambda values: function(values[name], constant)
    if name is not None and other is not None:
        return lambda values: function(values[name], values[other])
    if isinstance(left, ast.Constant) and other is not None:
        constant = left.value
        return lambda values: function(constant, values[other])
    first, second = _compiled(left), _compiled(right)
    if isinstance(right, ast.Constant):
        constant = right.value
        return lambda values: function(first(values), constant)
    if name is not None:
        return lambda values: function(values[name], second(values))
    return lambda values: function(first(values), second(values))


def _name_of(node: ast.expr) -> str | None:
    """The metric or setting ``node`` names, if it is a name (a function's name used bare is not)."""
    return node.id if isinstance(node, ast.Name) and node.id not in FUNCTIONS else None


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
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise ConditionSyntaxError(
                    f"condition {source!r} calls something other than {', '.join(FUNCTIONS)} and the window "
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
