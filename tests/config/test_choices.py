"""The one choice of channel and runbook (:mod:`bot.config.choices`), on the shipped configuration."""

from __future__ import annotations

from dataclasses import replace

from bot.config.choices import alert_channel, alert_runbook, model_channel, model_runbook, silence_channels
from bot.config.loader import Config

SUPPORT = "support-bot"


def test_an_alert_goes_to_its_rules_channel_else_its_models_else_the_default(config: Config) -> None:
    assert alert_channel(config, "llm_cost_runaway", SUPPORT) == "#llm-alerts"
    assert alert_channel(config, "slo:availability", SUPPORT) == "#llm-alerts"  # no configured rule: the model's
    assert model_channel(config, "shadow-model") == config.settings.default_channel


def test_the_rules_runbook_wins_over_the_models_and_the_default_comes_last(config: Config) -> None:
    assert (alert_runbook(config, SUPPORT, "llm_cost_runaway") or "").name == "llm-cost"
    assert alert_runbook(config, "shadow-model") == model_runbook(config, "shadow-model") == config.runbooks["default"]
    assert alert_runbook(replace(config, runbooks={}), SUPPORT, "llm_cost_runaway") is None


def test_a_silence_of_one_models_rule_reaches_that_models_channel(config: Config) -> None:
    assert silence_channels(config, "llm_cost_runaway", SUPPORT) == {"#llm-alerts"}
