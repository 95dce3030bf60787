"""Rule conditions: safe expressions over metric names, checked at load, never ``eval``."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simpleeval import NameNotDefined, SimpleEval

from bot.config.conditions import (
    FUNCTIONS,
    MAX_DEPTH,
    OPERATORS,
    Condition,
    ConditionEvaluator,
    ConditionSyntaxError,
    Outcome,
)

SEED = {
    "prediction_volume_drop": "predictions_last_hour < expected_predictions_per_hour * 0.5",
    "significant_data_drift": "drifted_feature_count >= total_features * 0.25",
    "accuracy_degradation": "current_accuracy < baseline_accuracy * 0.95",
    "latency_spike": "p99_latency_ms > 5000",
    "llm_cost_runaway": "daily_cost_usd > daily_budget_usd * 0.8",
}


@pytest.fixture
def evaluator() -> ConditionEvaluator:
    return ConditionEvaluator()


# --- the seed's conditions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "names", "true_when", "false_when"),
    [
        (
            "prediction_volume_drop",
            {"predictions_last_hour", "expected_predictions_per_hour"},
            {"predictions_last_hour": 5000, "expected_predictions_per_hour": 12000},
            {"predictions_last_hour": 6000, "expected_predictions_per_hour": 12000},
        ),
        (
            "significant_data_drift",
            {"drifted_feature_count", "total_features"},
            {"drifted_feature_count": 10, "total_features": 40},
            {"drifted_feature_count": 9, "total_features": 40},
        ),
        (
            "accuracy_degradation",
            {"current_accuracy", "baseline_accuracy"},
            {"current_accuracy": 0.80, "baseline_accuracy": 0.95},
            {"current_accuracy": 0.91, "baseline_accuracy": 0.95},
        ),
        (
            "latency_spike",
            {"p99_latency_ms"},
            {"p99_latency_ms": 5001},
            {"p99_latency_ms": 5000},
        ),
        (
            "llm_cost_runaway",
            {"daily_cost_usd", "daily_budget_usd"},
            {"daily_cost_usd": 401, "daily_budget_usd": 500},
            {"daily_cost_usd": 400, "daily_budget_usd": 500},
        ),
    ],
)
def test_seed_conditions_parse_and_evaluate(
    evaluator: ConditionEvaluator,
    rule: str,
    names: set[str],
    true_when: dict[str, float],
    false_when: dict[str, float],
) -> None:
    condition = Condition(SEED[rule])

    assert condition.names == names
    assert evaluator.run(condition, true_when) is Outcome.TRUE
    assert evaluator.run(condition, false_when) is Outcome.FALSE
    assert condition.evaluate(true_when, evaluator) is Outcome.TRUE


def test_source_is_kept_trimmed_for_messages() -> None:
    condition = Condition("  p99_latency_ms > 5000\n")

    assert condition.source == "p99_latency_ms > 5000"
    assert repr(condition) == "Condition('p99_latency_ms > 5000')"


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("a > 1 and b > 1", {"a": 2, "b": 2}, Outcome.TRUE),
        ("a > 1 and b > 1", {"a": 2, "b": 0}, Outcome.FALSE),
        ("a > 1 or b > 1", {"a": 0, "b": 2}, Outcome.TRUE),
        ("not a > 1", {"a": 0}, Outcome.TRUE),
        ("1 < a < 3", {"a": 2}, Outcome.TRUE),
        ("1 < a < 3", {"a": 3}, Outcome.FALSE),
        ("abs(a - b) > 0.1", {"a": 0.5, "b": 0.8}, Outcome.TRUE),
        ("max(a, b) >= 10", {"a": 3, "b": 10}, Outcome.TRUE),
        ("min(a, b) >= 10", {"a": 3, "b": 10}, Outcome.FALSE),
        ("a % 7 == 3", {"a": 10}, Outcome.TRUE),
        ("-a < 0", {"a": 1}, Outcome.TRUE),
        ("a != 0", {"a": 0}, Outcome.FALSE),
        ("a", {"a": 0}, Outcome.FALSE),
        ("a / b > 0.5", {"a": 1.0, "b": 1.5}, Outcome.TRUE),
    ],
)
def test_the_allowed_language(
    evaluator: ConditionEvaluator, text: str, values: dict[str, float], expected: Outcome
) -> None:
    assert evaluator.run(Condition(text), values) is expected


def test_function_names_are_not_metric_names() -> None:
    assert Condition("abs(drift) > max(a, b) + min(c, 1)").names == {"drift", "a", "b", "c"}


# --- no data ----------------------------------------------------------------------------------


def test_a_missing_name_is_no_data_not_false(evaluator: ConditionEvaluator) -> None:
    condition = Condition(SEED["accuracy_degradation"])

    assert evaluator.run(condition, {}) is Outcome.NO_DATA
    assert evaluator.run(condition, {"current_accuracy": 0.80}) is Outcome.NO_DATA
    assert evaluator.run(condition, {"baseline_accuracy": 0.95}) is Outcome.NO_DATA


@pytest.mark.parametrize("text", ["a / b > 1", "a % b > 1", "a / (b - b) > 1", "0 / 0 > 1"])
def test_division_by_zero_is_no_data(evaluator: ConditionEvaluator, text: str) -> None:
    assert evaluator.run(Condition(text), {"a": 1.0, "b": 0.0}) is Outcome.NO_DATA


def test_a_nan_result_is_no_data(evaluator: ConditionEvaluator) -> None:
    assert evaluator.run(Condition("a"), {"a": float("nan")}) is Outcome.NO_DATA


def test_the_evaluator_is_reusable_after_no_data(evaluator: ConditionEvaluator) -> None:
    latency = Condition(SEED["latency_spike"])

    assert evaluator.run(latency, {}) is Outcome.NO_DATA
    assert evaluator.run(Condition("a / b > 1"), {"a": 1, "b": 0}) is Outcome.NO_DATA
    assert evaluator.run(latency, {"p99_latency_ms": 6100}) is Outcome.TRUE


# --- refused at load --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("x.__class__", "uses Attribute, which is not allowed"),
        ("p99_latency_ms.real > 1", "uses Attribute"),
        ("x[0] > 1", "uses Subscript, which is not allowed"),
        ("(lambda: 1)() > 0", "calls something other than abs, min, max"),
        ("lambda: 1", "uses Lambda, which is not allowed"),
        ("model == 'fraud'", "only numbers may appear as literals"),
        ("x > True", "only numbers may appear as literals"),
        ("open('/etc/passwd')", "calls something other than abs, min, max"),
        ("__import__('os')", "calls something other than abs, min, max"),
        ("__import__", "names may not start with '_'"),
        ("max(x, key=y) > 1", "keyword arguments are not allowed"),
        ("x ** 99999 > 1", "uses Pow, which is not allowed"),
        ("x if y else z", "uses IfExp, which is not allowed"),
        ("[x for x in y]", "uses ListComp, which is not allowed"),
        ("(x := 1) > 0", "uses NamedExpr, which is not allowed"),
    ],
)
def test_unsafe_or_unsupported_expressions_are_rejected_with_a_clear_message(text: str, says: str) -> None:
    with pytest.raises(ConditionSyntaxError) as refused:
        Condition(text)

    assert f"condition {text!r}" in str(refused.value), "the message quotes what the author wrote"
    assert says in str(refused.value)


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_an_empty_condition_is_rejected_with_an_example(text: str) -> None:
    with pytest.raises(ConditionSyntaxError, match=r"a condition is required, e\.g\. p99_latency_ms > 5000"):
        Condition(text)


def test_a_non_text_condition_is_rejected() -> None:
    with pytest.raises(ConditionSyntaxError, match="a condition is required"):
        Condition(5000)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("p99_latency_ms > > 5000", 18),
        ("p99_latency_ms > 5000 )", 23),
        ("p99_latency_ms = 5000", 16),
        ("p99_latency_ms >", 17),  # at the end of the text
    ],
)
def test_syntax_errors_name_the_column(text: str, column: int) -> None:
    with pytest.raises(ConditionSyntaxError) as refused:
        Condition(text)

    message = str(refused.value)
    assert f"cannot parse condition {text!r} at column {column}:" in message
    assert "write a comparison such as p99_latency_ms > 5000" in message


def test_conditions_never_reach_python_eval(monkeypatch: pytest.MonkeyPatch, evaluator: ConditionEvaluator) -> None:
    import builtins

    def no_eval(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval() must never run a rule condition")

    monkeypatch.setattr(builtins, "eval", no_eval)
    monkeypatch.setattr(builtins, "exec", no_eval)

    assert evaluator.run(Condition(SEED["latency_spike"]), {"p99_latency_ms": 6100}) is Outcome.TRUE


# --- nesting ----------------------------------------------------------------------------------


def test_a_condition_at_the_nesting_limit_loads_and_evaluates(evaluator: ConditionEvaluator) -> None:
    condition = Condition("- " * (MAX_DEPTH - 2) + "x > 1")  # Compare, 48 signs, Name: 50 levels

    assert evaluator.run(condition, {"x": 5.0}) is Outcome.TRUE  # an even number of signs


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("- " * (MAX_DEPTH - 1) + "x > 1", "51 levels"),
        ("- " * 950 + "x > 1", "952 levels"),  # parses, then made every evaluation pass raise RecursionError
        ("not " * 60 + "x", "61 levels"),
        (" + ".join(["x"] * 60) + " > 1", "61 levels"),
        ("- " * 5000 + "x > 1", "thousands of levels"),  # past the parser's own limit
        ("- " * 100_000 + "x > 1", "thousands of levels"),
    ],
)
def test_conditions_nested_past_the_limit_are_refused_at_load(text: str, depth: str) -> None:
    with pytest.raises(ConditionSyntaxError) as refused:
        Condition(text)

    message = str(refused.value)
    assert f"nests {depth} deep, over the limit of {MAX_DEPTH}" in message
    assert "split it into several rules" in message
    assert len(message) < 400, "a long condition is shortened in the message"


# --- compiled conditions agree with a library evaluator ----------------------------------------

NAMES = ("a", "b", "c", "missing", "abs")
"""``missing`` never has a value; ``abs`` is a function's name used bare unless a value shadows it."""


def _operand(depth: int) -> st.SearchStrategy[str]:
    leaf = st.one_of(
        st.sampled_from(NAMES),
        st.sampled_from(["0", "0.0", "1", "2.5", "1e308", "3", "-1"]),
    )
    if depth == 0:
        return leaf
    inner = _operand(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["-", "+", "not "]), inner).map(lambda t: f"({t[0]}{t[1]})"),
        st.tuples(st.sampled_from(["abs", "min", "max"]), st.lists(inner, min_size=1, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
    )


def _condition(depth: int = 2) -> st.SearchStrategy[str]:
    operand = _operand(depth)
    comparison = st.tuples(operand, st.lists(st.tuples(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), operand),
                                             min_size=1, max_size=3)).map(
        lambda t: t[0] + "".join(f" {op} {right}" for op, right in t[1])
    )  # fmt: skip
    clause = st.one_of(comparison, operand)
    return st.lists(clause, min_size=1, max_size=3).flatmap(
        lambda parts: st.sampled_from([" and ", " or "]).map(lambda joint: joint.join(f"({p})" for p in parts))
    )


def _reference(source: str, values: dict[str, float]) -> Outcome:
    """What the library evaluator the conditions used to run through says, mapped as they mapped it."""
    engine = SimpleEval(operators=dict(OPERATORS), functions=dict(FUNCTIONS), names=values)
    try:
        result = engine.eval(source)
    except (NameNotDefined, ZeroDivisionError, OverflowError, TypeError, ValueError):
        return Outcome.NO_DATA
    if isinstance(result, float) and math.isnan(result):
        return Outcome.NO_DATA
    return Outcome.TRUE if result else Outcome.FALSE


@settings(max_examples=3000, deadline=None)
@given(
    source=_condition(),
    values=st.fixed_dictionaries(
        {},
        optional={
            name: st.one_of(st.floats(allow_nan=False), st.integers(-5, 5), st.sampled_from([0.0, -0.0, math.inf]))
            for name in ("a", "b", "c", "abs")
        },
    ),
)
def test_compiled_conditions_decide_as_simpleeval_did(source: str, values: dict[str, float]) -> None:
    """Every node of the whitelist, chained comparisons, and/or yielding an operand, a missing
    name, 0/0, overflow, infinity, a function's name used bare: the same outcome as the reference."""
    try:
        condition = Condition(source)
    except ConditionSyntaxError:  # too deep, or a literal the whitelist refuses: not a condition
        return
    assert ConditionEvaluator().run(condition, values) is _reference(source, values), (source, values)
