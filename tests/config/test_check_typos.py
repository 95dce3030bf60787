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
