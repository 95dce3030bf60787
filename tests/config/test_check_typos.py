"""``incident-bot check`` on the shipped configuration with the typos issue 13 found passing:
each would have made a rule load, run and never fire, or every evaluation pass fail."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.cli import main

REPO = Path(__file__).resolve().parents[2]
Capsys = pytest.CaptureFixture[str]


@pytest.fixture
def shipped_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    shutil.copytree(REPO / "runbooks", tmp_path / "runbooks")
    return tmp_path


def edit(root: Path, name: str, old: str, new: str) -> int:
    """Replace ``old`` by ``new`` in ``rules/<name>``; return the line it is on."""
    path = root / "rules" / name
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    return text[: text.index(old)].count("\n") + 1


def check(root: Path, capsys: Capsys) -> list[str]:
    assert main(["check", str(root)]) == 1
    return [line.strip() for line in capsys.readouterr().err.splitlines()[1:]]


def test_misspelt_metric_and_model_setting_in_conditions(shipped_copy: Path, capsys: Capsys) -> None:
    latency = edit(shipped_copy, "ml.yaml", "condition: p99_latency_ms > 5000", "condition: p99_latncy_ms > 5000")
    accuracy = edit(shipped_copy, "ml.yaml", "< baseline_accuracy * 0.95", "< baseline_acuracy * 0.95")

    first, second = check(shipped_copy, capsys)

    assert first.startswith(f"rules/ml.yaml:{accuracy}: rules[2] (accuracy_degradation).condition: 'baseline_acuracy'")
    assert "did you mean 'baseline_accuracy'" in first
    assert second.startswith(f"rules/ml.yaml:{latency}: rules[3] (latency_spike).condition: 'p99_latncy_ms'")
    assert "did you mean 'p99_latency_ms'?" in second
    assert second.endswith("declare it under metrics: (- name: p99_latncy_ms)")


def test_a_pushed_metric_declared_in_the_catalogue_passes(shipped_copy: Path, capsys: Capsys) -> None:
    edit(shipped_copy, "ml.yaml", "condition: p99_latency_ms > 5000", "condition: gpu_memory_pct > 95")
    assert main(["check", str(shipped_copy)]) == 1
    capsys.readouterr()

    edit(shipped_copy, "models.yaml", "metrics:\n", "metrics:\n  - {name: gpu_memory_pct, unit: '%'}\n")

    assert main(["check", str(shipped_copy)]) == 0


def test_a_condition_nested_950_deep(shipped_copy: Path, capsys: Capsys) -> None:
    deep = f'condition: "{"- " * 950}p99_latency_ms > 5000"'
    line = edit(shipped_copy, "ml.yaml", "condition: p99_latency_ms > 5000", deep)

    [problem] = check(shipped_copy, capsys)

    assert problem.startswith(f"rules/ml.yaml:{line}: rules[3] (latency_spike).condition: ")
    assert "over the limit of 50" in problem


def test_a_tab_in_the_indentation(shipped_copy: Path, capsys: Capsys) -> None:
    line = edit(shipped_copy, "settings.yaml", "  group_wait: 10s", "\tgroup_wait: 10s")

    [problem] = check(shipped_copy, capsys)

    assert problem.startswith(f"rules/settings.yaml:{line}: not valid YAML: ")
    assert problem.endswith("YAML does not allow tabs for indentation; use spaces")


def test_a_model_setting_misspelt_on_one_model(shipped_copy: Path, capsys: Capsys) -> None:
    edit(shipped_copy, "models.yaml", "    baseline_accuracy: 0.90", "    baseline_acuracy: 0.90")

    rules = (shipped_copy / "rules" / "ml.yaml").read_text().splitlines()
    line = 1 + next(i for i, text in enumerate(rules) if "condition: current_accuracy" in text)

    [problem] = check(shipped_copy, capsys)

    assert problem.startswith(f"rules/ml.yaml:{line}: rules[2] (accuracy_degradation).condition: model setting ")
    assert "not set on support-bot (support-bot has 'baseline_acuracy': a typo?)" in problem


# --- windowed conditions ----------------------------------------------------------------------

HELPFULNESS = 'condition: avg_over_time(helpfulness, "1h") < 0.8'


def test_the_shipped_windowed_rule_passes_and_its_template_shows_the_term(shipped_copy: Path) -> None:
    assert main(["check", str(shipped_copy)]) == 0


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        (
            'condition: avg_over_time(helpfulnes, "1h") < 0.8',
            "avg_over_time reads the stored samples of 'helpfulnes', which is no metric",
        ),
        ('condition: avg_over_time(helpfulness, "1hour") < 0.8', "'1hour' in avg_over_time is not a duration"),
        ("condition: avg_over_time(helpfulness) < 0.8", "avg_over_time takes 2 arguments, written avg_over_time("),
        (
            'condition: quantile_over_time(helpfulness, "1h") < 0.8',
            'quantile_over_time takes 3 arguments, written quantile_over_time(0.95, metric, "5m")',
        ),
        ('condition: quantile_over_time(95, helpfulness, "1h") < 0.8', "the quantile, a number from 0 to 1"),
        ('condition: avg_over_tme(helpfulness, "1h") < 0.8', "calls something other than abs, min, max"),
        (
            'condition: avg_over_time(baseline_accuracy, "1h") < 0.8',
            "a model setting has no samples",
        ),
    ],
)
def test_check_names_the_wrong_part_of_a_windowed_condition(
    shipped_copy: Path, capsys: Capsys, condition: str, says: str
) -> None:
    line = edit(shipped_copy, "ml.yaml", HELPFULNESS, condition)

    problems = check(shipped_copy, capsys)

    assert problems[0].startswith(f"rules/ml.yaml:{line}:"), problems
    assert says in problems[0]


def test_a_bare_window_duration_is_accepted_too(shipped_copy: Path) -> None:
    edit(shipped_copy, "ml.yaml", HELPFULNESS, "condition: avg_over_time(helpfulness, 1h) < 0.8")
    assert main(["check", str(shipped_copy)]) == 0


def test_a_template_field_of_a_term_the_condition_lacks(shipped_copy: Path, capsys: Capsys) -> None:
    edit(shipped_copy, "ml.yaml", "{avg_over_time_helpfulness_1h:.2f}", "{avg_over_time_helpfulness_5m:.2f}")

    [problem] = check(shipped_copy, capsys)

    assert "field {avg_over_time_helpfulness_5m} names no metric" in problem
    assert "did you mean {avg_over_time_helpfulness_1h}?" in problem
