"""The email keys of ``rules/*.yaml``: ``routing.email``, ``email:`` on models and rules, and
``routing.reports.email``; a bad address is refused at load with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config.loader import load_config
from bot.severity import Severity
from tests.config.test_loader import MODEL, RULE, MakeDir, config_dir, line_of, the_problem

__all__ = ["config_dir"]  # the fixture, imported for these tests

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_email_keys_load_with_seed_001s_default_of_p3(config_dir: MakeDir) -> None:
    rule = RULE + "    email: [ml-oncall@example.com]\n"
    model = MODEL + "    email: [fraud-team@example.com, Ana.Lee+alerts@sub.example.co.uk]\n"
    routing = "routing:\n  reports:\n    email: [ml-leads@example.com]\n"

    config = load_config(config_dir(rules=rule, models=model, settings=routing))

    assert config.routing.email == [Severity.P3]
    assert config.routing.reports.email == ["ml-leads@example.com"]
    assert config.models["fraud-detector-v2"].email == ["fraud-team@example.com", "Ana.Lee+alerts@sub.example.co.uk"]
    latency = config.rule("latency_spike")
    assert latency is not None and latency.email == ["ml-oncall@example.com"]
    assert "email" not in config.models["fraud-detector-v2"].settings  # not a template field


def test_routing_email_takes_the_severities_given(config_dir: MakeDir) -> None:
    config = load_config(config_dir(rules=RULE, settings="routing:\n  email: [p2, P3]\n"))

    assert config.routing.email == [Severity.P2, Severity.P3]


@pytest.mark.parametrize(
    "address",
    ["ml-oncall", "ml-oncall@localhost", "ML Oncall <ml-oncall@example.com>", "a@example.com, b@example.com"],
)
def test_a_model_recipient_that_is_no_address_is_refused_with_its_line(config_dir: MakeDir, address: str) -> None:
    text = MODEL + f'    email: [ok@example.com, "{address}"]\n'

    problem = the_problem(config_dir(rules=RULE, models=text))

    assert problem.file == "rules/models.yaml"
    assert problem.line == line_of(text, "email:")
    assert "models[0] (fraud-detector-v2).email[1]" in problem.message
    assert "is not an email address" in problem.message and "oncall@example.com" in problem.message


def test_a_rule_recipient_on_its_own_line_is_located_there(config_dir: MakeDir) -> None:
    text = RULE + "    email:\n      - ml-oncall@example.com\n      - not-an-address\n"

    problem = the_problem(config_dir(rules=text))

    assert problem.line == line_of(text, "not-an-address")
    assert "rules[0] (latency_spike).email[1]" in problem.message


def test_a_report_recipient_is_checked_too(config_dir: MakeDir) -> None:
    text = "routing:\n  reports:\n    email: [leads at example.com]\n"

    problem = the_problem(config_dir(rules=RULE, settings=text))

    assert problem.line == line_of(text, "leads at")
    assert problem.message.startswith("routing.reports.email[0]: 'leads at example.com' is not an email address")


def test_a_misspelt_email_key_gets_a_suggestion(config_dir: MakeDir) -> None:
    text = MODEL + "    emails: [a@example.com]\n"

    problem = the_problem(config_dir(rules=RULE, models=text))

    assert "did you mean 'email'?" in problem.message


def test_the_shipped_configuration_still_loads() -> None:
    config = load_config(REPO_ROOT)

    assert config.routing.email == [Severity.P3]
