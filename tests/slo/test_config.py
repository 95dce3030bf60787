"""The ``slos:`` keys of rules/*.yaml: what the schema accepts, and errors that name the fix."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.config.loader import load_config
from bot.config.slo_schema import Slo
from bot.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
RATIO: dict[str, Any] = {
    "model": "support-bot",
    "name": "availability",
    "kind": "ratio",
    "good_metric": "responses_ok",
    "total_metric": "responses_total",
    "objective": "above 0.995",
    "warning": 0.99,
    "critical": 0.95,
}
THRESHOLD: dict[str, Any] = {
    "model": "support-bot",
    "metric": "response_time_p95_ms",
    "objective": "below 2000",
    "warning": 3000,
    "critical": 5000,
}


ERRORS = {
    "model": "support-bot",
    "name": "error_rate",
    "kind": "ratio",
    "bad_metric": "responses_error",
    "total_metric": "responses_total",
    "objective": "below 1%",
    "warning": 0.02,
    "critical": 0.05,
}
COST = {
    "model": "support-bot",
    "kind": "quotient",
    "numerator_metric": "cost_usd",
    "denominator_metric": "queries",
    "objective": "below $0.05",
    "warning": 0.08,
    "critical": 0.15,
}


def test_an_error_rate_and_a_cost_per_query_read_as_the_seed_writes_them() -> None:
    errors = Slo.model_validate(ERRORS)
    assert (errors.objective.direction, errors.objective.target) == ("below", 0.01)  # "below 1%"
    assert errors.metric == "responses_error_ratio"
    cost = Slo.model_validate(COST)
    assert (cost.objective.direction, cost.objective.target) == ("below", 0.05)
    assert cost.metric == "cost_usd_per_queries"


def test_every_key_the_core_supports_is_accepted() -> None:
    slo = Slo.model_validate({**RATIO, "window": "28d", "min_events": 500, "absent_after": "30m", "burn_alerts": False})
    assert (slo.kind, slo.good_metric, slo.total_metric, slo.min_events) == (
        "ratio",
        "responses_ok",
        "responses_total",
        500,
    )
    assert slo.metric == "responses_ok_ratio" and not slo.burn_alerts
    threshold = Slo.model_validate({**THRESHOLD, "target_compliance": 0.995, "min_coverage": 0.8})
    assert (threshold.kind, threshold.target_compliance, threshold.min_coverage) == ("threshold", 0.995, 0.8)
    assert threshold.burn_alerts and threshold.absent_after is None  # None: the core's default


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({**RATIO, "total_metric": None}, "a ratio SLO needs total_metric: and one of good_metric: (successes)"),
        ({**RATIO, "bad_metric": "responses_failed"}, "got bad_metric, good_metric, total_metric"),
        ({**RATIO, "objective": "below 0.5"}, "reads 'above 0.995': the share of good events (got 'below 0.5')"),
        ({**RATIO, "objective": "above 99.5", "warning": 99, "critical": 95}, "reads 'above 0.995'"),
        ({**ERRORS, "objective": "above 0.99", "warning": 0.98, "critical": 0.9}, "reads 'below 0.01' (or 'below 1%')"),
        ({**RATIO, "target_compliance": 0.99}, "apply to threshold and quotient SLOs"),
        ({**COST, "denominator_metric": None}, "a quotient SLO needs numerator_metric: and denominator_metric:"),
        ({**COST, "min_events": 10}, "min_events applies to kind: ratio"),
        ({**THRESHOLD, "good_metric": "ok"}, "a threshold SLO reads metric: alone; for counts add kind: ratio"),
        ({**THRESHOLD, "min_events": 10}, "min_events applies to kind: ratio; for a threshold or quotient SLO use"),
        ({**THRESHOLD, "target_compliance": 99}, "strictly between 0 and 1, e.g. 0.99"),
        ({**THRESHOLD, "min_coverage": 1.5}, "min_coverage must lie between 0 and 1"),
        ({**THRESHOLD, "window": "0s"}, "window must be positive, e.g. 7d"),
        ({**THRESHOLD, "absent_after": "0s"}, "absent_after must be positive"),
        ({**THRESHOLD, "min_events": -1}, "greater than or equal to 0"),
        ({**THRESHOLD, "kind": "quantile"}, "'threshold', 'ratio' or 'quotient'"),
        ({**THRESHOLD, "name": "x" * 97}, "give it a name: of at most 96 characters"),
    ],
)
def test_bad_entries_say_how_to_fix_them(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        Slo.model_validate({k: v for k, v in entry.items() if v is not None})
    assert message in str(error.value)


def copy_config(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    shutil.copytree(REPO / "runbooks", tmp_path / "runbooks")
    return tmp_path


def test_check_names_file_and_line_of_a_bad_slo(tmp_path: Path) -> None:
    root = copy_config(tmp_path)
    (root / "rules" / "more.yaml").write_text(
        "slos:\n"
        "  - model: support-bot\n"
        "    kind: ratio\n"
        "    good_metric: responses_ok\n"
        "    objective: above 0.99\n"
        "    warning: 0.98\n"
        "    critical: 0.9\n"
    )
    with pytest.raises(ConfigError) as error:
        load_config(root)
    (problem,) = error.value.problems
    assert problem.file == "rules/more.yaml" and problem.line == 2
    assert "a ratio SLO needs total_metric: and one of good_metric:" in str(problem)


def test_two_slos_of_one_model_need_distinct_labels(tmp_path: Path) -> None:
    root = copy_config(tmp_path)  # files load in name order: zz.yaml after slos.yaml
    (root / "rules" / "zz.yaml").write_text(
        "slos:\n"
        "  - model: support-bot\n"
        "    metric: helpfulness\n"
        "    objective: above 0.9\n"
        "    warning: 0.8\n"
        "    critical: 0.7\n"
    )
    with pytest.raises(ConfigError) as error:
        load_config(root)
    (problem,) = error.value.problems
    assert problem.file == "rules/zz.yaml" and problem.line == 2
    assert "support-bot already has an SLO labelled 'helpfulness' (rules/slos.yaml slos[1])" in str(problem)
    assert "give one a distinct name:" in str(problem)


def test_a_misspelt_slo_key_gets_a_suggestion(tmp_path: Path) -> None:
    root = copy_config(tmp_path)
    (root / "rules" / "more.yaml").write_text(
        "slos:\n"
        "  - model: support-bot\n"
        "    metric: p99_latency_ms\n"
        "    objective: below 2000\n"
        "    warning: 3000\n"
        "    critical: 5000\n"
        "    min_event: 10\n"
    )
    with pytest.raises(ConfigError) as error:
        load_config(root)
    assert "unknown key 'min_event'; did you mean 'min_events'?" in str(error.value)


def test_the_shipped_slos_load() -> None:
    config = load_config(REPO)
    ratio = next(s for s in config.slos if s.kind == "ratio")
    assert (ratio.name, ratio.good_metric, ratio.total_metric) == ("availability", "responses_ok", "responses_total")
    assert {"responses_ok", "responses_total"} <= set(config.metrics)
