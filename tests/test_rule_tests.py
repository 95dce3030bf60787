"""Rule unit tests (``incident-bot test-rules``): the shipped file passes, a wrong expectation
fails with a message that points at the cause, promtool's series notation expands exactly as
promtool does, and a malformed file is an error naming file and line."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.rule_tests import RuleTestReport, expand_series, run_rule_tests


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rules-test.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


LATENCY_SERIES = """
    input_series:
      - model: support-bot
        metric: p99_latency_ms
        values: "100 6100x5 200"
"""


def run(tmp_path: Path, repo_root: Path, *parts: str) -> RuleTestReport:
    """One case named "the case", its keys given as YAML snippets, against the shipped config."""
    case = "".join(textwrap.dedent(part).strip("\n") + "\n" for part in parts)
    body = "tests:\n  - name: the case\n    interval: 1m\n" + textwrap.indent(case, "    ")
    return run_rule_tests(write(tmp_path, body), config_dir=repo_root)


def test_the_shipped_default_rule_tests_pass(repo_root: Path) -> None:
    report = run_rule_tests(repo_root / "rule-tests" / "default-rules.yaml")

    assert report.ok, report.format()
    assert len(report.cases) >= 5
    assert report.format().splitlines()[-1] == f"{len(report.cases)} passed, 0 failed"


@pytest.mark.parametrize("seed", range(5))
def test_jittered_pass_start_times_change_no_answer(repo_root: Path, seed: int) -> None:
    """Passes that start early by milliseconds or late by most of an interval are judged as of their
    tick: every case answers as it does on time, failures included, word for word."""
    path = repo_root / "rule-tests" / "default-rules.yaml"
    on_time = run_rule_tests(path)
    jittered = run_rule_tests(path, jitter=0.9, seed=seed)

    assert jittered.ok, jittered.format()
    assert [r.messages for r in jittered.cases] == [r.messages for r in on_time.cases]


def test_jitter_keeps_a_failing_case_failing_with_the_same_message(tmp_path: Path, repo_root: Path) -> None:
    body = "tests:\n  - name: the case\n    interval: 1m\n" + textwrap.indent(
        textwrap.dedent(LATENCY_SERIES).strip("\n") + "\nalert_rule_test:\n  - eval_time: 2m\n    alerts:\n"
        "      - {rule: latency_spike, model: support-bot, severity: P1}\n",
        "    ",
    )
    path = write(tmp_path, body)

    on_time, jittered = run_rule_tests(path, config_dir=repo_root), run_rule_tests(
        path, config_dir=repo_root, jitter=0.9, seed=1
    )
    assert not on_time.ok and not jittered.ok
    assert jittered.cases[0].messages == on_time.cases[0].messages


def test_an_incident_expected_wrongly_fails_and_shows_the_incidents_there_are(tmp_path: Path, repo_root: Path) -> None:
    report = run(
        tmp_path,
        repo_root,
        """
        input_series:
          - {model: support-bot, metric: p99_latency_ms, values: "6100x10"}
          - {model: fraud-detector-v2, metric: p99_latency_ms, values: "6100x10"}
        """,
        """
        alert_rule_test:
          - eval_time: 5m
            incidents:
              - alerts: [latency_spike:fraud-detector-v2, latency_spike:support-bot]
        """,
    )

    assert not report.ok
    message = report.cases[0].messages[0]
    assert "open incidents differ from the expected ones" in message
    assert "P1 firing: latency_spike:fraud-detector-v2" in message and "P1 firing: latency_spike:support-bot" in message
    assert "missing an incident of latency_spike:fraud-detector-v2, latency_spike:support-bot" in message


def test_a_check_must_name_alerts_or_incidents(tmp_path: Path, repo_root: Path) -> None:
    with pytest.raises(ConfigError, match="give alerts: or incidents:"):
        run(tmp_path, repo_root, LATENCY_SERIES, "alert_rule_test:\n  - eval_time: 1m\n")


def test_the_shipped_file_covers_all_five_default_rules(repo_root: Path) -> None:
    text = (repo_root / "rule-tests" / "default-rules.yaml").read_text(encoding="utf-8")
    for rule in (
        "prediction_volume_drop",
        "significant_data_drift",
        "accuracy_degradation",
        "latency_spike",
        "llm_cost_runaway",
    ):
        assert f"rule: {rule}" in text


def test_a_pending_alert_expected_as_firing_fails_and_says_when_it_fires(tmp_path: Path, repo_root: Path) -> None:
    report = run(
        tmp_path,
        repo_root,
        LATENCY_SERIES,
        """
        alert_rule_test:
          - eval_time: 2m
            alerts:
              - {rule: latency_spike, model: support-bot, severity: P1}
        """,
    )

    assert not report.ok
    out = report.format()
    assert out.splitlines()[0] == "FAIL the case"
    assert "at 2m: open alerts differ from the expected ones" in out
    assert "missing latency_spike:support-bot: pending since 1m, fires at 3m" in out
    assert out.splitlines()[-1] == "0 passed, 1 failed"


def test_a_wrong_title_and_an_unexpected_alert_show_expected_and_got(tmp_path: Path, repo_root: Path) -> None:
    report = run(
        tmp_path,
        repo_root,
        """
        input_series:
          - model: support-bot
            metric: p99_latency_ms
            values: "100 6100x5 200"
          - model: fraud-detector-v2
            metric: current_accuracy
            values: "0.80"
        alert_rule_test:
          - eval_time: 4m
            alerts:
              - rule: latency_spike
                model: support-bot
                severity: P1
                title: "P99 latency >5s for fraud-detector-v2"
        """,
    )

    [case] = report.cases
    assert not case.passed
    out = report.format()
    assert "expected:" in out and "got:" in out
    assert "title expected 'P99 latency >5s for fraud-detector-v2', got 'P99 latency >5s for support-bot'" in out
    assert "unexpected accuracy_degradation:fraud-detector-v2" in out
    assert 'accuracy_degradation:fraud-detector-v2 P1 firing since 0s: "Model accuracy dropped >5%' in out


def test_a_missing_alert_names_the_missing_metric_or_the_cooldown(tmp_path: Path, repo_root: Path) -> None:
    report = run(
        tmp_path,
        repo_root,
        """
        input_series:
          - model: support-bot
            metric: p99_latency_ms
            values: "6100x3 100x5 6100x30"
        alert_rule_test:
          - eval_time: 12m
            alerts:
              - {rule: latency_spike, model: support-bot, severity: P1}
              - {rule: significant_data_drift, model: support-bot, severity: P2}
        """,
    )

    out = report.format()
    assert "missing latency_spike:support-bot: auto-resolved at 9m; in cooldown until 24m" in out
    assert "missing significant_data_drift:support-bot: no data for drifted_feature_count, total_features" in out


def test_actions_acknowledge_and_a_refused_action_fails_the_case(tmp_path: Path, repo_root: Path) -> None:
    report = run(
        tmp_path,
        repo_root,
        LATENCY_SERIES,
        """
        actions:
          - {at: 30s, action: resolve, rule: latency_spike, model: support-bot}
          - {at: 2m, action: acknowledge, rule: latency_spike, model: support-bot}
          - {at: 4m, action: acknowledge, rule: latency_spike, model: support-bot, by: "@ana"}
        alert_rule_test:
          - eval_time: 5m
            alerts:
              - {rule: latency_spike, model: support-bot, severity: P1, state: acknowledged}
        """,
    )

    [case] = report.cases
    assert case.messages == [
        "at 30s: cannot resolve latency_spike:support-bot: no open alert",
        "at 2m: cannot acknowledge latency_spike:support-bot: Cannot acknowledge an alert that is pending.",
    ]


def test_the_config_dir_argument_serves_a_file_that_names_none(tmp_path: Path, repo_root: Path) -> None:
    report = run(tmp_path, repo_root, LATENCY_SERIES, "alert_rule_test: [{eval_time: 12m, alerts: []}]")

    assert report.ok, report.format()
    assert report.format() == "PASS the case\n1 passed, 0 failed"


@pytest.mark.parametrize(
    ("notation", "expected"),
    [
        ("-2+4x3", [-2, 2, 6, 10]),  # promtool's own examples
        (" 1-2x4", [1, -1, -3, -5, -7]),
        (" 1x4", [1, 1, 1, 1, 1]),
        ("1 _x3", [1, None, None, None]),  # a gap cannot step: _x3 is three gaps, not four
        ("_", [None]),
        ("100 6100x5 200", [100, *[6100] * 6, 200]),
        ("1e3 2.5 .5 +3", [1000, 2.5, 0.5, 3]),
        ("0x0", [0]),
        ("1.5+0.5x2 _ 7", [1.5, 2.0, 2.5, None, 7]),
        ("", []),
    ],
)
def test_series_notation_expands_like_promtool(notation: str, expected: list[float | None]) -> None:
    assert expand_series(notation) == expected


@pytest.mark.parametrize(
    ("notation", "says"),
    [
        ("1 stale", "no stale markers"),
        ("1+2", r"a step needs a count, e\.g\. 1\+2x5"),
        ("NaN", "NaN and Inf are refused"),
        ("ten", "'ten' is not a value"),
        ("1x", "'1x' is not a value"),
        ("1x1000000", "more than 100,000 values"),
    ],
)
def test_bad_series_notation_says_what_to_write(notation: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        expand_series(notation)


def test_a_malformed_test_file_names_file_line_and_fix(tmp_path: Path, repo_root: Path) -> None:
    path = write(
        tmp_path,
        """\
        tests:
          - name: typos
            interval: 1minute
            input_series:
              - model: support-bot
                metric: p99_latency_ms
                valus: "100 6100x5"
              - model: support-bot
                metric: current_accuracy
                values: "0.9 stale"
            alert_rule_test:
              - eval_time: 3m
                alerts:
                  - {rule: latency_spike, model: support-bot, severity: P9}
        """,
    )

    with pytest.raises(ConfigError) as caught:
        run_rule_tests(path, config_dir=repo_root)

    lines = str(caught.value).splitlines()
    assert f"{path}:3: tests[0].interval: '1minute' is not a duration" in lines[0]
    assert f"{path}:7: tests[0].input_series[0].valus: unknown key; did you mean 'values'?" in lines
    assert any(line.startswith(f"{path}:10: tests[0].input_series[1].values: 'stale'") for line in lines)
    assert any(line.startswith(f"{path}:14: ") and "unknown severity 'P9'" in line for line in lines)


def test_unknown_rule_and_model_names_are_errors_with_suggestions(tmp_path: Path, repo_root: Path) -> None:
    path = write(
        tmp_path,
        """\
        tests:
          - name: names
            input_series:
              - {model: support-bots, metric: p99_latency_ms, values: "1"}
            alert_rule_test:
              - eval_time: 1m
                alerts:
                  - {rule: latency_spik, model: support-bot, severity: P1}
        """,
    )

    with pytest.raises(ConfigError) as caught:
        run_rule_tests(path, config_dir=repo_root)

    assert [str(p) for p in caught.value.problems] == [
        f"{path}:4: tests[0].input_series[0].model: model 'support-bots' is unknown; did you mean 'support-bot'?",
        f"{path}:8: tests[0].alert_rule_test[0].alerts[0].rule: rule 'latency_spik' is unknown; "
        "did you mean 'latency_spike'?",
    ]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("tests:\n  - name: x\n   bad: [\n", ":3: not valid YAML"),
        ("- just a list\n", ":1: the top level must be a mapping"),
        ("evaluation_interval: 30s\n", ":1: tests: required key is missing"),
        ("tests:\n  - name: x\n", r":2: tests\[0\]\.alert_rule_test: required key is missing"),
        (
            "tests:\n  - name: x\n    input_series:\n      - model: m\n        metric: x\n        values: '1'\n"
            "        alert_rule_test: []\n",
            r":7: tests\[0\]\.input_series\[0\]\.alert_rule_test: unknown key; it does not belong here; check its "
            "indentation",
        ),
        (
            "tests:\n  - name: x\n    alert_rule_test: [{eval_time: 1m, alerts: [{rule: a, model: b, "
            "severity: P1, state: pending}]}]\n",
            "pending alerts are not listed",
        ),
    ],
)
def test_structural_problems_are_reported_with_a_line(tmp_path: Path, repo_root: Path, body: str, says: str) -> None:
    path = write(tmp_path, body)

    with pytest.raises(ConfigError, match=says):
        run_rule_tests(path, config_dir=repo_root)


def test_a_config_dir_that_does_not_load_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "config_dir: nowhere\ntests: [{name: x, alert_rule_test: [{eval_time: 1m, alerts: []}]}]\n")

    with pytest.raises(ConfigError, match=r"rules-test\.yaml:1: the configuration in .*nowhere does not load"):
        run_rule_tests(path)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read test file"):
        run_rule_tests(tmp_path / "absent.yaml")


# --- windowed conditions ----------------------------------------------------------------------

WINDOWED_RULES = """
  - name: traffic_halved_since_yesterday
    models: ["support-bot"]
    condition: predictions_last_hour < 0.5 * ago(predictions_last_hour, "1d")
    severity: P2
    title: "Traffic halved since yesterday for {model}"
    description: "{predictions_last_hour:,.0f}/hr now, {ago_predictions_last_hour_1d:,.0f}/hr a day ago."
    cooldown: 5m
  - name: error_rate
    models: ["support-bot"]
    condition: rate(errors_total, 5m) > 0.9
    severity: P3
    title: "{rate_errors_total_5m:.2f} errors/s for {model}"
    cooldown: 5m
"""


@pytest.fixture
def windowed_config(tmp_path: Path, repo_root: Path) -> Path:
    root = tmp_path / "config"
    shutil.copytree(repo_root / "rules", root / "rules")
    shutil.copytree(repo_root / "runbooks", root / "runbooks")
    with (root / "rules" / "ml.yaml").open("a", encoding="utf-8") as rules:
        rules.write(WINDOWED_RULES)
    models = root / "rules" / "models.yaml"
    models.write_text(models.read_text().replace("metrics:\n", "metrics:\n  - {name: errors_total}\n"))
    return root


def test_ago_compares_with_the_same_time_yesterday(tmp_path: Path, windowed_config: Path) -> None:
    body = """
        tests:
          - name: yesterday
            interval: 1h
            input_series:
              - {model: support-bot, metric: predictions_last_hour, values: "4000x23 1800"}
            alert_rule_test:
              - eval_time: 23h
                alerts: []
              - eval_time: 1d
                alerts:
                  - rule: traffic_halved_since_yesterday
                    model: support-bot
                    severity: P2
                    description: "1,800/hr now, 4,000/hr a day ago."
                    values: {predictions_last_hour: 1800, ago_predictions_last_hour_1d: 4000}
    """
    report = run_rule_tests(write(tmp_path, body), config_dir=windowed_config)

    assert report.ok, report.format()


def test_rate_counts_a_counter_reset_as_a_restart(tmp_path: Path, windowed_config: Path) -> None:
    body = """
        tests:
          - name: errors
            interval: 1m
            input_series:
              - {model: support-bot, metric: errors_total, values: "0+60x5 60+60x5"}  # restarts at 6m
            alert_rule_test:
              - eval_time: 4m
                alerts: []
              - eval_time: 5m
                alerts:
                  - {rule: error_rate, model: support-bot, severity: P3, title: "1.00 errors/s for support-bot"}
              - eval_time: 8m
                alerts:
                  - {rule: error_rate, model: support-bot, severity: P3}
    """
    report = run_rule_tests(write(tmp_path, body), config_dir=windowed_config)

    assert report.ok, report.format()


def test_a_missing_windowed_alert_says_what_the_window_held(tmp_path: Path, windowed_config: Path) -> None:
    body = """
        tests:
          - name: errors
            interval: 1m
            input_series:
              - {model: support-bot, metric: errors_total, values: "0+6x10"}
            alert_rule_test:
              - eval_time: 10m
                alerts:
                  - {rule: error_rate, model: support-bot, severity: P3}
    """
    [case] = run_rule_tests(write(tmp_path, body), config_dir=windowed_config).cases

    assert "condition 'rate(errors_total, 5m) > 0.9' is false (rate_errors_total_5m=0.1)" in case.messages[0]
