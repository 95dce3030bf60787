"""Windowed terms of a condition: ``avg_over_time(helpfulness, "1h")`` and friends.

A condition is parsed once (:mod:`bot.config.conditions`); here each call of a window function
is checked (its name, how many arguments, a metric name, a duration) and replaced in the tree by
a plain name, the term's :attr:`WindowTerm.name` (``avg_over_time_helpfulness_1h``). Evaluation
then stays what it was, names looked up in a mapping: the pass computes each term's value from
the samples of its window (:mod:`bot.evaluation.windows`), or over a pulled metric Prometheus does
(:mod:`bot.config.promql_windows`), and it is handed in under that name, which is also how a
template shows it (``{avg_over_time_helpfulness_1h:.2f}``). A window without
samples has no value, so the condition is no data.

The window is written quoted (``"1h"``), the contract; a bare ``1h`` is accepted too, quoted
before parsing (no valid expression contains a number followed by a unit letter).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from datetime import timedelta

from bot.config.durations import DURATION_HINT, parse_duration

RANGE_FUNCTIONS = frozenset(
    {"avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "rate", "delta"}
)
"""Functions of the samples in the window ``(now - window, now]``."""
QUANTILE = "quantile_over_time"
AGO = "ago"
"""``ago(m, "1d")``: the value ``m`` had that long ago (its newest sample then, if not stale)."""
WINDOW_FUNCTIONS = RANGE_FUNCTIONS | {QUANTILE, AGO}

_BARE_DURATION = re.compile(r"(?<![\w.'\"])((?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+)(?![\w.'\"])")


@dataclass(frozen=True, slots=True)
class WindowTerm:
    """One windowed call of a condition, as the pass computes it."""

    function: str
    metric: str
    window: timedelta
    """The range (``rate(m, "5m")``) or, for ``ago``, how long ago."""
    name: str
    """The plain name standing for the call in the condition, in alert values and in templates."""
    phi: float | None = None
    """The quantile of ``quantile_over_time``."""


def quote_bare_durations(source: str) -> str:
    """``avg_over_time(m, 1h)`` → ``avg_over_time(m, "1h")``; a valid expression is left alone."""
    return _BARE_DURATION.sub(r'"\1"', source)


class WindowSyntaxError(ValueError):
    """A windowed call is written wrongly; the message says how to write it."""


def extract_windows(tree: ast.Expression, source: str) -> tuple[ast.Expression, tuple[WindowTerm, ...]]:
    """Replace every window function call in ``tree`` by the name of its term; return the new tree
    and the terms (each once, in order of appearance)."""
    if not any(_is_window_call(node) for node in ast.walk(tree)):
        return tree, ()  # nothing to rewrite (and no recursion over a deep tree)
    terms: dict[str, WindowTerm] = {}

    class _Rewrite(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:
            if _is_window_call(node):
                term = _term(node, source)
                terms.setdefault(term.name, term)
                return ast.copy_location(ast.Name(id=term.name, ctx=ast.Load()), node)
            return self.generic_visit(node)

    rewritten = _Rewrite().visit(tree)
    assert isinstance(rewritten, ast.Expression)
    return rewritten, tuple(terms.values())


def _is_window_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in WINDOW_FUNCTIONS


def _usage(function: str) -> str:
    if function == QUANTILE:
        return f'{QUANTILE}(0.95, metric, "5m")'
    window = {AGO: "1d", "rate": "5m", "delta": "1h"}.get(function, "1h")
    return f'{function}(metric, "{window}")'


def _term(node: ast.Call, source: str) -> WindowTerm:
    assert isinstance(node.func, ast.Name)
    function = node.func.id
    usage = _usage(function)
    wanted = 3 if function == QUANTILE else 2
    if node.keywords or len(node.args) != wanted:
        raise WindowSyntaxError(
            f"condition {source!r}: {function} takes {wanted} arguments, written {usage}; got {len(node.args)}"
            + (" and keyword arguments" if node.keywords else "")
        )
    phi: float | None = None
    if function == QUANTILE:
        first = node.args[0]
        if (
            not isinstance(first, ast.Constant)
            or isinstance(first.value, bool)
            or not isinstance(first.value, int | float)
            or not 0 <= first.value <= 1
        ):
            raise WindowSyntaxError(
                f"condition {source!r}: the first argument of {QUANTILE} is the quantile, a number "
                f"from 0 to 1, e.g. {usage}"
            )
        phi = float(first.value)
    metric_node, window_node = node.args[-2], node.args[-1]
    if not isinstance(metric_node, ast.Name) or metric_node.id.startswith("_") or metric_node.id in WINDOW_FUNCTIONS:
        raise WindowSyntaxError(
            f"condition {source!r}: {function} reads the stored samples of one metric, so its "
            f"{'second' if phi is not None else 'first'} argument is a metric name, e.g. {usage}"
        )
    if not isinstance(window_node, ast.Constant) or not isinstance(window_node.value, str):
        raise WindowSyntaxError(f"condition {source!r}: the last argument of {function} is a duration, e.g. {usage}")
    try:
        window = parse_duration(window_node.value)
    except ValueError:
        raise WindowSyntaxError(
            f"condition {source!r}: {window_node.value!r} in {function} is not a duration; {DURATION_HINT}"
        ) from None
    if window <= timedelta(0):
        raise WindowSyntaxError(f"condition {source!r}: the window of {function} must be longer than 0s, e.g. {usage}")
    return WindowTerm(function, metric_node.id, window, _name(function, metric_node.id, window_node.value, phi), phi)


def _name(function: str, metric: str, window: str, phi: float | None) -> str:
    """``avg_over_time_helpfulness_1h``, ``quantile_over_time_0_95_latency_5m``: letters, digits, ``_``."""
    parts = [function] + ([f"{phi:g}"] if phi is not None else []) + [metric, window.strip()]
    return "_".join(parts).replace(".", "_")
