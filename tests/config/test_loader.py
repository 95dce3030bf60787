"""Loading a configuration directory: all or nothing, every error names file, line and the fix."""

from __future__ import annotations

import shutil
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bot.config import yaml_lines
from bot.config.choices import model_runbook
from bot.config.loader import load_config
from bot.config.runbooks import Runbook
from bot.config.yaml_lines import YamlProblem, load_located
from bot.errors import ConfigError, ConfigProblem
from bot.severity import Severity

REPO_ROOT = Path(__file__).resolve().parents[2]

RULE = """\
metrics:
  - name: p99_latency_ms
rules:
  - name: latency_spike
    models: ["*"]
    condition: p99_latency_ms > 5000
    for: 2m
    severity: P1
    title: "P99 latency >5s for {model}"
    description: "P99 latency: {p99_latency_ms}ms (threshold: 5000ms)."
    cooldown: 15m
    runbook: latency-spike
"""

MODEL = """\
models:
  - name: fraud-detector-v2
    channel: "#ml-alerts"
    baseline_accuracy: 0.95
"""

MakeDir = Callable[..., Path]


@pytest.fixture
def config_dir(tmp_path: Path) -> MakeDir:
    """A config dir with the shipped runbooks and the rules files given, by file name."""

    def make(**files: str) -> Path:
        root = tmp_path / "config"
        shutil.copytree(REPO_ROOT / "runbooks", root / "runbooks")
        (root / "rules").mkdir()
        for name, text in files.items():
            (root / "rules" / f"{name}.yaml").write_text(text, encoding="utf-8")
        return root

    return make


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line where ``needle`` appears (the n-th time) in ``text``."""
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def problems_of(root: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as failed:
        load_config(root)
    assert failed.value.problems, "a ConfigError always says what is wrong"
    return failed.value.problems


def the_problem(root: Path) -> ConfigProblem:
    problems = problems_of(root)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


# --- the shipped configuration ----------------------------------------------------------------


def test_the_shipped_configuration_loads() -> None:
    config = load_config(REPO_ROOT)

    assert [r.name for r in config.rules] == [
        "prediction_volume_drop",
        "significant_data_drift",
        "accuracy_degradation",
        "latency_spike",
        "llm_cost_runaway",
        "helpfulness_drop",  # seed 000's LangSmith alert, a windowed condition
    ]
    assert sorted(config.models) == ["fraud-detector-v2", "support-bot"]
    assert {(s.model, s.metric) for s in config.slos} == {
        ("support-bot", "current_accuracy"),
        ("support-bot", "helpfulness"),
        ("support-bot", "response_time_p95_ms"),
        ("fraud-detector-v2", "p99_latency_ms"),
        ("support-bot", "responses_ok_ratio"),  # the availability ratio SLO: good / total responses
        ("support-bot", "responses_error_ratio"),  # the error rate: bad / total responses, below 1%
        ("support-bot", "cost_usd_per_responses_total"),  # cost per query: spend / responses, below $0.05
    }
    assert [(step.after, step.severity) for step in config.escalation["default"]] == [
        (timedelta(minutes=15), Severity.P3),
        (timedelta(minutes=30), Severity.P2),
        (timedelta(minutes=60), Severity.P1),
    ]
    assert config.routing.page == [Severity.P0, Severity.P1]
    assert config.settings.evaluation_interval == timedelta(seconds=30)
    assert config.settings.stale_after == timedelta(minutes=15)


def test_the_shipped_rules_match_seed_001() -> None:
    config = load_config(REPO_ROOT)
    rules = {r.name: r for r in config.rules}

    assert rules["latency_spike"].condition.source == "p99_latency_ms > 5000"
    assert rules["latency_spike"].for_ == timedelta(minutes=2)
    assert rules["latency_spike"].cooldown == timedelta(minutes=15)
    assert rules["prediction_volume_drop"].for_ == timedelta(minutes=5)
    assert rules["significant_data_drift"].severity is Severity.P2
    assert rules["llm_cost_runaway"].models == ["support-bot"]
    seed_001 = set(rules) - {"significant_data_drift", "helpfulness_drop"}
    assert {rules[n].severity for n in seed_001} == {Severity.P1}
    assert rules["helpfulness_drop"].condition.source == 'avg_over_time(helpfulness, "1h") < 0.8'


def test_every_runbook_the_shipped_rules_name_exists_and_default_serves_the_rest() -> None:
    config = load_config(REPO_ROOT)

    assert {r.runbook for r in config.rules} <= set(config.runbooks)
    assert "default" in config.runbooks
    runbook = model_runbook(config, "fraud-detector-v2")
    assert runbook is not None and runbook.name == "default"


def test_a_runbook_fills_model_settings_and_leaves_unknown_fields_and_code_braces_alone() -> None:
    config = load_config(REPO_ROOT)
    runbook = model_runbook(config, "fraud-detector-v2")
    assert runbook is not None

    text = runbook.render({**config.models["fraud-detector-v2"].settings, "model": "fraud-detector-v2"})

    assert text.startswith("# ML Incident Runbook: fraud-detector-v2")
    assert "curl -s https://ml.internal/fraud/v2/health | jq .status" in text
    assert {"model", "endpoint", "dashboard"} <= runbook.fields
    assert runbook.render({}) == runbook.text, "an unset field stays as written"


def test_runbook_fields_are_plain_names_so_json_and_shell_braces_stay_text() -> None:
    runbook = Runbook("x", Path("x.md"), """curl -d '{"model": "{model}"}' {endpoint}/{unset} && echo ${HOME} {a.b}""")

    assert {"model", "endpoint", "unset"} <= runbook.fields
    assert "a.b" not in runbook.fields
    assert runbook.render({"model": "fraud", "endpoint": "https://ml"}) == (
        """curl -d '{"model": "fraud"}' https://ml/{unset} && echo ${HOME} {a.b}"""
    )


def test_a_given_directory_replaces_the_defaults(config_dir: MakeDir) -> None:
    config = load_config(config_dir(only=RULE))

    assert [r.name for r in config.rules] == ["latency_spike"]
    assert dict(config.models) == {}
    assert config.slos == ()
    assert [s.after for s in config.escalation["default"]] == [timedelta(minutes=m) for m in (15, 30, 60)]


def test_model_settings_and_rule_labels_may_appear_in_templates(config_dir: MakeDir) -> None:
    text = RULE.replace("(threshold: 5000ms).", "baseline {baseline_accuracy}, service {service}.")
    text += "    labels: {service: payments}\n"

    config = load_config(config_dir(rules=text, models=MODEL))

    assert config.rules[0].description.fields == {"p99_latency_ms", "baseline_accuracy", "service"}


# --- one problem, located, with the fix -------------------------------------------------------


def test_unknown_key_suggests_the_known_one(config_dir: MakeDir) -> None:
    text = RULE + '    chanel: "#ml-alerts"\n'

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, "chanel:"))
    assert problem.message == "rules[0] (latency_spike).chanel: unknown key 'chanel'; did you mean 'channel'?"


def test_a_misspelt_required_key_is_reported_as_unknown_with_the_suggestion(config_dir: MakeDir) -> None:
    text = RULE.replace("    severity:", "    sevrity:")

    problems = problems_of(config_dir(bad=text))

    assert (
        ConfigProblem(
            "rules/bad.yaml",
            line_of(text, "sevrity:"),
            "rules[0] (latency_spike).sevrity: unknown key 'sevrity'; did you mean 'severity'?",
        )
        in problems
    )


def test_unknown_key_without_a_close_match_says_remove_it(config_dir: MakeDir) -> None:
    text = RULE + "    colour: red\n"

    problem = the_problem(config_dir(bad=text))

    assert problem.line == line_of(text, "colour:")
    assert problem.message.endswith("unknown key 'colour'; remove it")


def test_unknown_top_level_section(config_dir: MakeDir) -> None:
    text = RULE + "modles: []\n"

    problem = the_problem(config_dir(bad=text))

    assert problem.line == line_of(text, "modles:")
    assert problem.message == "modles: unknown key 'modles'; did you mean 'models'?"


@pytest.mark.parametrize(
    ("replace", "by", "key", "says"),
    [
        ('    models: ["*"]', "    models: fraud-detector-v2", "models:", "Input should be a valid list"),
        ("    severity: P1", "    severity: [P1]", "severity:", "(got ['P1'])"),
        ('    title: "P99 latency >5s for {model}"', "    title: {model: 1}", "title:", "a template must be text"),
    ],
)
def test_wrong_type(config_dir: MakeDir, replace: str, by: str, key: str, says: str) -> None:
    text = RULE.replace(replace, by)
    assert text != RULE

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, key))
    assert problem.message.startswith(f"rules[0] (latency_spike).{key.rstrip(':')}: ")
    assert says in problem.message


def test_wrong_type_in_settings(config_dir: MakeDir) -> None:
    text = "settings:\n  evaluation_interval: 30s\n  accept_unknown_models: maybe\n"

    problem = the_problem(config_dir(settings=text))

    assert (problem.file, problem.line) == ("rules/settings.yaml", 3)
    assert problem.message.startswith("settings.accept_unknown_models: Input should be a valid boolean")
    assert "(got 'maybe')" in problem.message


def test_unparsable_condition(config_dir: MakeDir) -> None:
    text = RULE.replace("p99_latency_ms > 5000", "p99_latency_ms > > 5000")

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, "condition:"))
    assert "cannot parse condition 'p99_latency_ms > > 5000' at column 18" in problem.message
    assert "write a comparison such as p99_latency_ms > 5000" in problem.message


def test_unsafe_condition(config_dir: MakeDir) -> None:
    text = RULE.replace("p99_latency_ms > 5000", "p99_latency_ms.__class__ > 5000")

    problem = the_problem(config_dir(bad=text))

    assert problem.line == line_of(text, "condition:")
    assert "uses Attribute, which is not allowed" in problem.message


def test_unsafe_template(config_dir: MakeDir) -> None:
    text = RULE.replace("for {model}", "for {model.__class__}")

    problem = the_problem(config_dir(bad=text))

    assert problem.line == line_of(text, "title:")
    assert "field {model.__class__} is not allowed" in problem.message


def test_template_field_naming_no_metric_suggests_the_closest(config_dir: MakeDir) -> None:
    text = RULE.replace("{p99_latency_ms}ms", "{p99_latncy_ms}ms")

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, "description:"))
    assert problem.message == (
        "rules[0] (latency_spike).description: field {p99_latncy_ms} names no metric; did you mean {p99_latency_ms}?"
    )


def test_template_field_naming_nothing_close_says_how_to_declare_it(config_dir: MakeDir) -> None:
    text = RULE.replace("for {model}", "for {zzz}")

    problem = the_problem(config_dir(bad=text))

    assert problem.line == line_of(text, "title:")
    assert problem.message.endswith("field {zzz} names no metric; declare it under metrics:")


def test_a_declared_metric_may_be_used_in_templates(config_dir: MakeDir) -> None:
    text = RULE.replace("for {model}", "for {model} ({gpu_memory_mb} MB)").replace(
        "metrics:\n", "metrics:\n  - name: gpu_memory_mb\n"
    )

    assert load_config(config_dir(rules=text)).rules[0].title.fields == {"model", "gpu_memory_mb"}


# --- condition names: a typo would make the rule load, run and never fire ----------------------


def test_a_misspelt_metric_in_a_condition_suggests_the_catalogued_one(config_dir: MakeDir) -> None:
    text = RULE.replace("condition: p99_latency_ms > 5000", "condition: p99_latncy_ms > 5000")

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, "condition:"))
    assert problem.message == (
        "rules[0] (latency_spike).condition: 'p99_latncy_ms' is no metric of the metrics: catalogue, no model "
        "setting and no metric source's metric, so this rule would never fire; did you mean 'p99_latency_ms'? "
        "If samples really arrive as p99_latncy_ms, declare it under metrics: (- name: p99_latncy_ms)"
    )


def test_a_misspelt_model_setting_in_a_condition_suggests_the_setting(config_dir: MakeDir) -> None:
    text = RULE.replace("p99_latency_ms > 5000", "p99_latency_ms > baseline_acuracy * 5000")

    problem = the_problem(config_dir(bad=text, models=MODEL))

    assert problem.line == line_of(text, "condition:")
    assert "'baseline_acuracy' is no metric" in problem.message
    assert "did you mean 'baseline_accuracy'?" in problem.message


SECOND_MODEL = """\
  - name: support-bot
    baseline_acuracy: 0.90
"""


def test_a_setting_misspelt_on_one_model_is_found_through_the_rule_that_reads_it(config_dir: MakeDir) -> None:
    text = RULE.replace("p99_latency_ms > 5000", "p99_latency_ms > baseline_accuracy * 5000")

    problem = the_problem(config_dir(bad=text, models=MODEL + SECOND_MODEL))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, "condition:"))
    assert problem.message == (
        "rules[0] (latency_spike).condition: model setting 'baseline_accuracy' is not set on support-bot "
        "(support-bot has 'baseline_acuracy': a typo?), so this rule would never fire there; set it on the model, "
        "narrow the rule's models:, or if samples arrive as baseline_accuracy, declare it under metrics:"
    )


@pytest.mark.parametrize(
    ("replace", "by"),
    [
        ('models: ["*"]', 'models: ["fraud-*"]'),  # the rule covers only models that set it
        ("  - name: p99_latency_ms\n", "  - name: p99_latency_ms\n  - name: baseline_accuracy\n"),  # pushed
    ],
    ids=["narrowed models", "declared as pushed"],
)
def test_a_setting_some_models_lack_is_fine_where_the_rule_cannot_miss_it(
    config_dir: MakeDir, replace: str, by: str
) -> None:
    text = RULE.replace("p99_latency_ms > 5000", "p99_latency_ms > baseline_accuracy * 5000").replace(replace, by)

    assert load_config(config_dir(rules=text, models=MODEL + SECOND_MODEL)).rules[0].name == "latency_spike"


def test_an_unknown_name_with_nothing_close_says_how_to_declare_it(config_dir: MakeDir) -> None:
    text = RULE.replace("p99_latency_ms > 5000", "p99_latency_ms > 5000 and gpu_memory_mb > 100")

    problem = the_problem(config_dir(bad=text))

    assert "did you mean" not in problem.message
    assert problem.message.endswith(
        "would never fire; if samples really arrive as gpu_memory_mb, declare it under metrics: (- name: gpu_memory_mb)"
    )


def test_declaring_a_pushed_name_in_any_files_catalogue_makes_it_known(config_dir: MakeDir) -> None:
    text = RULE.replace("p99_latency_ms > 5000", "p99_latency_ms > 5000 and gpu_memory_mb > 100")

    config = load_config(config_dir(rules=text, catalogue="metrics:\n  - {name: gpu_memory_mb, unit: MB}\n"))

    assert config.rules[0].condition.names == {"p99_latency_ms", "gpu_memory_mb"}


@pytest.mark.parametrize(
    "source",
    [
        "prometheus:\n  queries: [{model: fraud-detector-v2, metric: pulled_metric, query: up}]\n",
        "slos:\n  - {model: fraud-detector-v2, metric: pulled_metric, objective: below 1, warning: 2, critical: 3}\n",
        "slos:\n  - {model: fraud-detector-v2, kind: ratio, good_metric: pulled_metric, total_metric: all_events,\n"
        "     objective: above 0.9, warning: 0.8, critical: 0.7}\n",
        "slos:\n  - {model: fraud-detector-v2, kind: ratio, good_metric: ok_events, total_metric: pulled_metric,\n"
        "     objective: above 0.9, warning: 0.8, critical: 0.7}\n",
    ],
    ids=["prometheus query", "threshold SLO", "ratio SLO good", "ratio SLO total"],
)
def test_names_a_metric_source_reads_need_no_catalogue_entry(config_dir: MakeDir, source: str) -> None:
    text = RULE.replace("p99_latency_ms > 5000", "pulled_metric > 1")

    assert load_config(config_dir(rules=text, models=MODEL, sources=source)).rules[0].condition.names == {
        "pulled_metric"
    }


def test_a_ratio_slos_label_is_not_a_metric_samples_arrive_under(config_dir: MakeDir) -> None:
    slo = (
        "slos:\n  - {model: fraud-detector-v2, kind: ratio, good_metric: ok_events, total_metric: all_events,\n"
        "     objective: above 0.9, warning: 0.8, critical: 0.7}\n"
    )
    text = RULE.replace("p99_latency_ms > 5000", "ok_events_ratio < 0.9")

    problem = the_problem(config_dir(rules=text, models=MODEL, slos=slo))

    assert "'ok_events_ratio' is no metric" in problem.message


def test_the_template_check_no_longer_trusts_a_misspelt_condition_name(config_dir: MakeDir) -> None:
    text = RULE.replace("p99_latency_ms > 5000", "p99_latncy_ms > 5000").replace(
        "{p99_latency_ms}ms", "{p99_latncy_ms}ms"
    )

    problems = problems_of(config_dir(bad=text))

    assert [p.message.split(": ", 1)[0] for p in problems] == [
        "rules[0] (latency_spike).condition",
        "rules[0] (latency_spike).description",
    ]


# --- conditions and YAML nested past any sane depth -------------------------------------------


def test_a_condition_nested_950_deep_is_refused_with_its_line(config_dir: MakeDir) -> None:
    text = RULE.replace("p99_latency_ms > 5000", '"' + "- " * 950 + 'p99_latency_ms > 5000"')

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, "condition:"))
    assert "nests 952 levels deep, over the limit of 50" in problem.message


@pytest.mark.parametrize(
    "nested",
    ["- " * 950 + "p99_latency_ms > 5000", "[" * 5000 + "]" * 5000],
    ids=["dashes", "brackets"],
)
def test_yaml_nested_past_the_limit_is_refused_with_its_line(config_dir: MakeDir, nested: str) -> None:
    text = RULE.replace("    condition: p99_latency_ms > 5000\n", f"    condition:\n      {nested}\n")

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, nested[:20]))
    assert problem.message.startswith("nested more than 20 levels deep; ")


# --- YAML syntax errors say what usually causes them ------------------------------------------


@pytest.mark.parametrize(
    ("replace", "by", "at", "hint"),
    [
        ("    severity: P1", "\tseverity: P1", "severity:", "YAML does not allow tabs for indentation; use spaces"),
        ("    severity: P1", "    severity:P1", "severity:", "a key needs a colon and a space before its value"),
        ("    severity: P1", "      severity: P1", "severity:", "indented deeper than the key above it"),
        ("    severity: P1", "   severity: P1", "severity:", "the indentation does not match the lines above"),
        ('    title: "P99 latency >5s for {model}"', "    title: P99: slow", "title:", "quote the value"),
        ('(threshold: 5000ms)."', "(threshold: 5000ms).", "description:", "a quote opened here is never closed"),
    ],
    ids=["tab", "no space after colon", "indented too deep", "indented too little", "colon in value", "open quote"],
)
def test_yaml_errors_carry_a_hint_and_the_line(config_dir: MakeDir, replace: str, by: str, at: str, hint: str) -> None:
    text = RULE.replace(replace, by)
    assert text != RULE

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, at))
    assert problem.message.startswith("not valid YAML: ")
    assert hint in problem.message


def test_a_key_glued_to_its_value_is_explained(config_dir: MakeDir) -> None:
    text = "settings:\n  stale_after:15m\n"

    problem = the_problem(config_dir(settings=text))

    assert problem.message.endswith("(got 'stale_after:15m'); a key needs a space after its colon (stale_after: 15m)")


@pytest.mark.parametrize("severity", ["P5", "critical", "1"])
def test_unknown_severity(config_dir: MakeDir, severity: str) -> None:
    text = RULE.replace("severity: P1", f"severity: {severity}")

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, "severity:"))
    assert "unknown severity" in problem.message
    assert "use one of P0, P1, P2, P3 (P0 is the most severe)" in problem.message


def test_lower_case_severity_is_accepted(config_dir: MakeDir) -> None:
    config = load_config(config_dir(rules=RULE.replace("severity: P1", "severity: p2")))

    assert config.rules[0].severity is Severity.P2


@pytest.mark.parametrize(("key", "value"), [("for", "5"), ("for", "5 minutes"), ("cooldown", "soon")])
def test_bad_duration(config_dir: MakeDir, key: str, value: str) -> None:
    text = RULE.replace(f"    {key}: ", f"    {key}: {value}  # was: ")

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, f"{key}:"))
    assert problem.message.startswith(f"rules[0] (latency_spike).{key}: ")
    assert "is not a duration; write a number and a unit, e.g. 30s, 5m, 1h30m, 7d" in problem.message


def test_runbook_that_does_not_exist_suggests_the_closest(config_dir: MakeDir) -> None:
    text = RULE.replace("runbook: latency-spike", "runbook: latency-spik")

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, "runbook:"))
    assert problem.message == (
        "rules[0]: runbook 'latency-spik' does not exist (no runbooks/latency-spik.md); did you mean 'latency-spike'?"
    )


def test_runbook_that_does_not_exist_lists_the_available_ones(config_dir: MakeDir) -> None:
    text = MODEL + "    runbook: zzz\n"

    problem = the_problem(config_dir(models=text))

    assert problem.line == line_of(text, "runbook:")
    assert "models[0]: runbook 'zzz' does not exist (no runbooks/zzz.md); available: accuracy-drop, " in problem.message


def test_duplicate_rule_names_across_two_files(config_dir: MakeDir) -> None:
    second = "# the same rule again\n" + RULE

    problem = the_problem(config_dir(a=RULE, b=second))

    assert (problem.file, problem.line) == ("rules/b.yaml", line_of(second, "- name: latency_spike"))
    assert problem.message == "rule 'latency_spike' is already defined in rules/a.yaml; rename one"


def test_duplicate_key_in_one_mapping(config_dir: MakeDir) -> None:
    text = RULE.replace("    cooldown: 15m\n", "    cooldown: 15m\n    severity: P3\n")

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, "severity:", occurrence=2))
    assert problem.message == "key 'severity' appears twice in the same mapping; keep one"


def test_invalid_yaml(config_dir: MakeDir) -> None:
    text = RULE.replace('    title: "P99 latency >5s for {model}"', '    title: "P99 latency >5s" for {model}')

    problem = the_problem(config_dir(bad=text))

    assert (problem.file, problem.line) == ("rules/bad.yaml", line_of(text, "title:"))
    assert problem.message.startswith("not valid YAML: ")


def test_a_file_that_is_not_a_mapping(config_dir: MakeDir) -> None:
    problem = the_problem(config_dir(bad="- just\n- a list\n"))

    assert (problem.file, problem.line) == ("rules/bad.yaml", 1)
    assert "the top level must be a mapping" in problem.message


def test_slo_for_an_undefined_model(config_dir: MakeDir) -> None:
    text = "slos:\n  - model: ghost-model\n    metric: p99_latency_ms\n    objective: below 2000\n"
    text += "    warning: 3000\n    critical: 5000\n"

    problem = the_problem(config_dir(models=MODEL, slos=text))

    assert (problem.file, problem.line) == ("rules/slos.yaml", line_of(text, "model: ghost-model"))
    assert problem.message == "slos[0]: model 'ghost-model' is not defined under models:; add it or fix the name"


def test_slo_may_name_a_model_of_another_file(config_dir: MakeDir) -> None:
    text = "slos:\n  - model: fraud-detector-v2\n    metric: p99_latency_ms\n    objective: below 2000\n"
    text += "    warning: 3000\n    critical: 5000\n"

    config = load_config(config_dir(a_slos=text, z_models=MODEL))

    assert [s.model for s in config.slos] == ["fraud-detector-v2"]


def test_slo_levels_out_of_order(config_dir: MakeDir) -> None:
    text = "slos:\n  - model: fraud-detector-v2\n    metric: p99_latency_ms\n    objective: below 2000\n"
    text += "    warning: 5000\n    critical: 3000\n"

    problem = the_problem(config_dir(models=MODEL, slos=text))

    assert problem.file == "rules/slos.yaml"
    assert problem.line == line_of(text, "- model:")
    assert "warning and critical must lie above the target, critical furthest" in problem.message


def test_a_model_naming_an_undefined_escalation_policy(config_dir: MakeDir) -> None:
    text = MODEL + "    escalation: nightly\n"

    problem = the_problem(config_dir(models=text))

    assert (problem.file, problem.line) == ("rules/models.yaml", line_of(text, "escalation:"))
    assert problem.message == (
        "models[0] (fraud-detector-v2): escalation policy 'nightly' is not defined; known: default"
    )


def test_a_model_may_name_a_policy_of_another_file(config_dir: MakeDir) -> None:
    policy = "escalation:\n  nightly:\n    - after: 5m\n      severity: P1\n"

    config = load_config(config_dir(models=MODEL + "    escalation: nightly\n", policy=policy))

    assert config.models["fraud-detector-v2"].escalation == "nightly"
    assert [s.severity for s in config.escalation["nightly"]] == [Severity.P1]


def test_escalation_steps_out_of_order(config_dir: MakeDir) -> None:
    text = (
        "# escalation timeline\n"
        "escalation:\n"
        "  default:\n"
        "    - after: 30m\n"
        "      severity: P2\n"
        "    - after: 15m\n"
        "      severity: P3\n"
    )

    problem = the_problem(config_dir(settings=text))

    assert (problem.file, problem.line) == ("rules/settings.yaml", line_of(text, "escalation:"))
    assert problem.message == "escalation: escalation policy 'default': steps must be in order of 'after'"


def test_a_single_section_set_in_two_files(config_dir: MakeDir) -> None:
    settings = "settings:\n  evaluation_interval: 30s\n"
    again = "# also here\nsettings:\n  evaluation_interval: 10s\n"

    problem = the_problem(config_dir(a=settings, b=again))

    assert (problem.file, problem.line) == ("rules/b.yaml", 2)
    assert problem.message == "settings: already set in rules/a.yaml; keep one"


def test_evaluation_interval_below_a_second(config_dir: MakeDir) -> None:
    problem = the_problem(config_dir(settings="settings:\n  evaluation_interval: 500ms\n"))

    assert problem.line == 2
    assert "evaluation_interval must be at least 1s" in problem.message


def test_no_rules_directory(tmp_path: Path) -> None:
    problem = the_problem(tmp_path)

    assert problem.line is None
    assert "no rules/ directory here" in problem.message
    assert "BOT_CONFIG_DIR" in problem.message


def test_an_empty_rules_directory(config_dir: MakeDir) -> None:
    problem = the_problem(config_dir())

    assert problem.message == "no *.yaml files; add at least one rules file"


# --- all or nothing; every problem at once ----------------------------------------------------


def test_a_bad_file_never_half_loads(config_dir: MakeDir) -> None:
    broken = RULE.replace("latency_spike", "other_rule").replace("severity: P1", "severity: P9")
    root = config_dir(good=RULE + MODEL, bad=broken)
    loaded = None

    with pytest.raises(ConfigError) as failed:
        loaded = load_config(root)

    assert loaded is None, "nothing comes back, not even the good file's rules"
    assert [p.file for p in failed.value.problems] == ["rules/bad.yaml"]
    (root / "rules" / "bad.yaml").unlink()
    assert [r.name for r in load_config(root).rules] == ["latency_spike"], "the good file alone is fine"


def test_several_problems_in_one_file_are_all_reported(config_dir: MakeDir) -> None:
    text = (
        RULE.replace("severity: P1", "severity: P9")
        .replace("for: 2m", "for: soon")
        .replace("    models:", "    modles:")
        + "  - name: Bad Name\n"
        + "    condition: x >\n"
        + "    severity: P2\n"
        + '    title: "t"\n'
    )

    problems = problems_of(config_dir(bad=text))

    located = {(p.line, p.message.split(": ", 1)[0]) for p in problems}
    assert located >= {
        (line_of(text, "severity: P9"), "rules[0] (latency_spike).severity"),
        (line_of(text, "for: soon"), "rules[0] (latency_spike).for"),
        (line_of(text, "modles:"), "rules[0] (latency_spike).modles"),
        (line_of(text, "name: Bad Name"), "rules[1] (Bad Name).name"),
        (line_of(text, "condition: x >"), "rules[1] (Bad Name).condition"),
    }
    assert {p.file for p in problems} == {"rules/bad.yaml"}


def test_problems_in_several_files_are_reported_together(config_dir: MakeDir) -> None:
    first = RULE.replace("severity: P1", "severity: P9")
    second = MODEL + "    escalation: nightly\n"

    problems = problems_of(config_dir(a=first, b=second))

    assert [(p.file, p.line) for p in problems] == [
        ("rules/a.yaml", line_of(first, "severity:")),
        ("rules/b.yaml", line_of(second, "escalation:")),
    ]


def test_the_error_text_is_one_line_per_problem_with_file_and_line(config_dir: MakeDir) -> None:
    text = RULE.replace("severity: P1", "severity: P9") + "    colour: red\n"

    with pytest.raises(ConfigError) as failed:
        load_config(config_dir(bad=text))

    lines = str(failed.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"rules/bad.yaml:{line_of(text, 'severity:')}: rules[0] (latency_spike).severity: ")
    assert lines[1].startswith(f"rules/bad.yaml:{line_of(text, 'colour:')}: rules[0] (latency_spike).colour: ")


@pytest.mark.parametrize("group_by", ["[model]", "[rule]", "[model, rule]", "[]"])
def test_group_by_takes_model_rule_both_or_neither(config_dir: MakeDir, group_by: str) -> None:
    config = load_config(config_dir(settings=f"settings:\n  group_by: {group_by}\n"))

    assert config.settings.group_by == [label.strip() for label in group_by.strip("[]").split(",") if label.strip()]


@pytest.mark.parametrize(
    ("group_by", "says"),
    [
        ("[team]", "settings.group_by[0]: Input should be 'model' or 'rule' (got 'team')"),
        ("[model, model]", "names a label twice"),
    ],
)
def test_a_bad_group_by_names_the_line_and_what_is_allowed(config_dir: MakeDir, group_by: str, says: str) -> None:
    problem = the_problem(config_dir(settings=f"settings:\n  storm_threshold: 5\n  group_by: {group_by}\n"))

    assert problem.line == 3
    assert says in problem.message


@pytest.mark.parametrize(
    ("text", "loads_as"),
    [
        ("settings:\n  default_channel: '#a'\t\n", None),  # a tab after a value: PyYAML refuses it
        ("settings: {group_wait:\t0s}\n", None),
        ("settings:\n  default_channel: !\n", {"settings": {"default_channel": None}}),  # an empty tag
        ("rules:\n  - {condition: x != 1, title: High!}\n", {"rules": [{"condition": "x != 1", "title": "High!"}]}),
    ],
    ids=["tab after a value", "tab after a colon", "empty tag", "no tag"],
)
def test_a_file_reads_as_pyyaml_reads_it_whether_or_not_libyaml_is_there(text: str, loads_as: object) -> None:
    """libyaml accepts a tab as spacing and reads ``!`` as ``''``; PyYAML's own parser refuses the
    one and reads ``None``. The bot reads such text as PyYAML does, so ``check`` agrees everywhere."""
    if loads_as is None:
        with pytest.raises(YamlProblem, match="tabs"):
            load_located(text)
    else:
        assert load_located(text).data == loads_as


@pytest.mark.parametrize(
    "text",
    [
        "",
        "---\n",
        "a:\n",
        "- \n- ~\n",
        "settings: {evaluation_interval: 30s, storm_threshold: 5}\n",
        "a: 2026-01-01\nb: yes\nc: ~\nd: 0x1f\ne: 1e3\nf: .inf\ng: '1'\nh: !!str 1\n",
        "1: a\n1.5: b\nfalse: c\n",
        "models:\n  - name: m\n    links: [{title: x, url: 'https://x'}]\n  - {name: n, team: t}\n",
        "base: &base {team: ml, channel: '#ml'}\nmodels: [*base, *base]\n",
    ],
)
def test_reading_the_parser_events_gives_what_composing_the_nodes_gave(text: str) -> None:
    """The configuration is built from the parser's events, not from a composed node tree (which
    for 10,000 models was the bot's peak memory): the objects are the same as the tree's."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    composed = {} if root is None else yaml_lines._build(root, (), None, yaml.SafeLoader(""))

    assert load_located(text).data == composed


def test_an_alias_is_read_as_a_copy_of_what_its_anchor_names() -> None:
    data = load_located("base: &base {team: ml}\nmodels: [*base, *base]\n").data

    assert data["models"] == [{"team": "ml"}, {"team": "ml"}]
    data["models"][0]["team"] = "changed"
    assert data["models"][1] == {"team": "ml"} and data["base"] == {"team": "ml"}


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("settings:\n  default_channel: !custom '#a'\n", 2, "tags (!name) and merge keys (<<) are not supported"),
        ("defaults: &d {team: ml}\nmodels:\n  - <<: *d\n    name: m\n", 3, "merge keys (<<) are not supported"),
        ("a: &a [1, *a]\n", 1, "found undefined alias 'a'"),
        ("a: &x 1\nb: &x 2\n", 2, "the anchor &x is defined twice (first on line 1); name each anchor once"),
        ("a: 1\n---\nb: 2\n", 2, "but found another document"),
        ("models:\n  ? [a, b]\n  : 1\n", 2, "mapping keys must be plain text"),
    ],
    ids=["custom tag", "merge key", "alias inside its own anchor", "anchor twice", "two documents", "list as a key"],
)
def test_yaml_the_loader_cannot_build_is_refused_with_its_line(text: str, line: int, says: str) -> None:
    """Before, a tag or a merge key escaped as PyYAML's ConstructorError, with no file or line, and
    an alias inside its own anchor recursed until Python gave up."""
    with pytest.raises(YamlProblem) as refused:
        load_located(text)

    assert refused.value.line == line
    assert says in str(refused.value)


def test_reading_a_fleet_sized_file_holds_little_more_than_what_it_reads() -> None:
    """The objects are built from the parser's events, one node at a time: composing the whole
    node tree first (a node and two marks per value) held about six times what the file reads as,
    the peak of a fleet process's memory (issue 16)."""
    text = "models:\n" + "".join(
        f"  - {{name: m-{n:04d}, team: t-{n % 7}, channel: '#fleet', limit: {n}, baseline: 0.{n}}}\n"
        for n in range(2000)
    )
    tracemalloc.start()
    try:
        data = load_located(text).data
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(data["models"]) == 2000 and data["models"][1999]["limit"] == 1999
    assert peak < 2 * kept, f"reading held {peak:,} bytes at its peak for {kept:,} kept"


def test_models_matching_the_same_rules_share_one_tuple_of_them() -> None:
    """A fleet's models mostly match the same rules: one tuple for them, not one per model."""
    config = load_config(REPO_ROOT)

    assert config.rules_for("fraud-detector-v2") != config.rules_for("support-bot")  # llm_cost_runaway
    assert config.rules_for("an-unknown-model") is config.rules_for("another-unknown-model")


def test_a_models_settings_are_its_scalar_fields_then_its_own_keys_without_lists_or_routing(
    config_dir: MakeDir,
) -> None:
    model = MODEL + (
        "    team: fraud\n    oncall: '@ml-oncall'\n    escalation: default\n    expected_per_hour: 1200\n"
        "    owner: ana\n    email: [fraud-team@example.com]\n"
        "    links: [{text: Dashboard, url: 'https://grafana.example.com/d/fraud'}]\n"
    )
    config = load_config(config_dir(rules=RULE, models=model))

    known = config.models["fraud-detector-v2"]
    assert known.settings == {
        "name": "fraud-detector-v2",
        "channel": "#ml-alerts",
        "team": "fraud",
        "oncall": "@ml-oncall",
        "baseline_accuracy": 0.95,
        "expected_per_hour": 1200,
        "owner": "ana",
    }
    dumped = known.model_dump(exclude={"escalation", "email", "links"})
    assert known.settings == {k: v for k, v in dumped.items() if v is not None}, "as pydantic dumps it"
