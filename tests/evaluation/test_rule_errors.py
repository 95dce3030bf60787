"""A rule that raises while being evaluated is skipped, logged once, counted in ``/metrics`` and
named in ``/healthz``; every other rule still runs (issue 13).

The failing rule's condition raises ``RecursionError``, as a condition nested 950 deep (built
with the load-time limit lifted) did under the tree-walking evaluator conditions once ran through:
the case that used to end every pass. Compiled conditions no longer fail that way, so the test
makes one fail on purpose.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from bot.app import build_bot
from bot.clock import FrozenClock
from bot.config.conditions import Condition
from bot.config.loader import Config, load_config
from bot.config.templates import Template
from bot.evaluation.evaluate import PassInput, evaluate
from bot.evaluation.rule_errors import RuleErrors
from bot.metrics.samples import Sample
from bot.observability import Metrics
from bot.settings import Settings
from tests.support.recording import RecordingNotifier

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FRAUD = "fraud-detector-v2"
SUPPORT = "support-bot"
LATENCY = "p99_latency_ms > 5000"


@pytest.fixture(scope="module")
def shipped() -> Config:
    return load_config(REPO_ROOT)


def explode(_values: object) -> bool:
    raise RecursionError("maximum recursion depth exceeded")


def exploding(condition: Condition) -> Condition:
    """``condition``, made to raise whenever it runs."""
    condition._run = explode  # type: ignore[assignment]
    return condition


@pytest.fixture
def deep_condition() -> Condition:
    return exploding(Condition(LATENCY))


class ExplodingTemplate(Template):
    def render(self, values: object, **kwargs: object) -> str:  # type: ignore[override]
        raise KeyError("boom")


def with_rule(config: Config, name: str, **update: object) -> Config:
    base = config.rule("latency_spike")
    assert base is not None
    return replace(config, rules=(*config.rules, base.model_copy(update={"name": name, **update})))


def bad_pass(config: Config, errors: RuleErrors | None = None) -> list[str]:
    """Keys of one pass in which fraud-detector-v2's accuracy dropped (the seed rule fires)."""
    samples = {
        FRAUD: {"current_accuracy": Sample(0.80, NOW), "p99_latency_ms": Sample(6100.0, NOW)},
        SUPPORT: {"p99_latency_ms": Sample(240.0, NOW)},
    }
    return [t.alert.key for t in evaluate(PassInput(config, samples, {}, {}), now=NOW, errors=errors)]


def test_a_rule_that_raises_is_skipped_and_the_other_rules_still_fire(
    shipped: Config, deep_condition: Condition
) -> None:
    errors = RuleErrors()

    keys = bad_pass(with_rule(shipped, "deep_latency", condition=deep_condition), errors)

    assert "accuracy_degradation:fraud-detector-v2" in keys
    assert "latency_spike:fraud-detector-v2" in keys  # pending: for: 2m
    assert not any(key.startswith("deep_latency:") for key in keys)
    [(rule, detail)] = errors.failing().items()
    assert rule == "deep_latency"
    assert detail.startswith("2 model(s), e.g. fraud-detector-v2: RecursionError: maximum recursion depth exceeded")


def test_a_template_that_raises_is_isolated_too(shipped: Config) -> None:
    errors = RuleErrors()

    keys = bad_pass(with_rule(shipped, "loud_latency", title=ExplodingTemplate("{model}")), errors)

    assert "accuracy_degradation:fraud-detector-v2" in keys
    assert errors.failing() == {"loud_latency": "1 model(s), e.g. fraud-detector-v2: KeyError: 'boom'"}


def test_without_a_tracker_a_failing_rule_still_never_stops_the_pass(
    shipped: Config, deep_condition: Condition
) -> None:
    assert "accuracy_degradation:fraud-detector-v2" in bad_pass(with_rule(shipped, "deep", condition=deep_condition))


def test_a_failing_rule_is_logged_once_while_it_fails_and_once_when_it_recovers(
    shipped: Config, deep_condition: Condition, caplog: pytest.LogCaptureFixture
) -> None:
    errors = RuleErrors()
    broken = with_rule(shipped, "deep_latency", condition=deep_condition)
    caplog.set_level(logging.INFO, logger="bot.evaluation.rule_errors")

    for _ in range(5):
        bad_pass(broken, errors)
    bad_pass(shipped, errors)
    bad_pass(shipped, errors)

    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "bot.evaluation.rule_errors"]
    assert [level for level, _ in logged] == [logging.ERROR, logging.INFO]
    assert logged[0][1].startswith("rule deep_latency cannot be evaluated for 2 model(s), e.g. fraud-detector-v2: ")
    assert logged[0][1].endswith("it is skipped, the other rules run")
    assert logged[1][1] == "rule deep_latency evaluates again"
    assert caplog.records[0].exc_info is not None, "the first report carries the traceback"
    assert errors.failing() == {}


def test_a_rule_that_fails_differently_is_logged_again(
    shipped: Config, deep_condition: Condition, caplog: pytest.LogCaptureFixture
) -> None:
    errors = RuleErrors()
    caplog.set_level(logging.ERROR, logger="bot.evaluation.rule_errors")

    bad_pass(with_rule(shipped, "r", title=ExplodingTemplate("{model}")), errors)
    bad_pass(with_rule(shipped, "r", description=ExplodingTemplate("{model}")), errors)  # the same error text
    bad_pass(with_rule(shipped, "r", condition=deep_condition), errors)

    assert [r.getMessage().split(": ")[1] for r in caplog.records] == ["KeyError", "RecursionError"]


def test_each_failed_evaluation_is_counted_per_rule(shipped: Config, deep_condition: Condition) -> None:
    metrics = Metrics()
    errors = RuleErrors(metrics)
    broken = with_rule(shipped, "deep_latency", condition=deep_condition)

    bad_pass(broken, errors)
    bad_pass(broken, errors)

    assert metrics.rule_evaluation_errors_total.labels(rule="deep_latency")._value.get() == 4


def test_healthz_and_metrics_name_the_failing_rule(tmp_path: Path, clock: FrozenClock) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "rules", config_dir / "rules")
    shutil.copytree(REPO_ROOT / "runbooks", config_dir / "runbooks")
    (config_dir / "rules" / "deep.yaml").write_text(
        f'rules:\n  - name: deep_latency\n    condition: "{LATENCY}"\n    severity: P2\n    title: deep\n'
    )
    settings = Settings(database_url=f"sqlite:///{tmp_path}/bot.db", ingest_token="t0ken-for-healthz")  # type: ignore[arg-type]
    bot = build_bot(settings, clock=clock, notifiers={"recording": RecordingNotifier()}, config_dir=config_dir)
    try:
        deep = bot.service.config().rule("deep_latency")
        assert deep is not None
        exploding(deep.condition)
        web = TestClient(bot.app)
        assert web.get("/healthz").json() == {"status": "ok", "scheduler": False}
        bot.service.ingest([(FRAUD, "current_accuracy", clock.now(), 0.80)])

        result = bot.service.evaluate_once()

        assert [t.alert.key for t in result.transitions] == ["accuracy_degradation:fraud-detector-v2"]
        health = web.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert list(health.json()["rule_errors"]) == ["deep_latency"]
        assert "RecursionError" in health.json()["rule_errors"]["deep_latency"]
        families = {f.name: f for f in text_string_to_metric_families(web.get("/metrics").text)}
        [sample] = [s for s in families["incident_bot_rule_evaluation_errors"].samples if s.name.endswith("_total")]
        assert (sample.labels, sample.value) == ({"rule": "deep_latency"}, 2.0)
    finally:
        bot.engine.dispose()
