"""Where an alert is told and which runbook it opens: the one place that chooses, from the rule,
the model and the defaults, so the notifier, the incident grouping, the silence notes and the
Runbook button never disagree.

Channels: the rule's ``channel:``, else the model's, else ``settings.default_channel``; an alert of
no configured rule (an SLO's, Alertmanager's, a rule a reload removed) takes the model's.
Runbooks: the rule's ``runbook:`` (written for that problem), else the model's, else
``runbooks/default.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config.alert_names import slo_rule

if TYPE_CHECKING:
    from bot.config.loader import Config
    from bot.config.runbooks import Runbook
    from bot.config.schema import Rule

DEFAULT_RUNBOOK = "default"


def model_channel(config: Config, model: str) -> str:
    """The model's channel, else the default: where alerts of no configured rule go."""
    known = config.models.get(model)
    return (known.channel if known else None) or config.settings.default_channel


def rule_channel(config: Config, rule: Rule, model: str) -> str:
    """Where an alert of the configured ``rule`` on ``model`` goes."""
    return rule.channel or model_channel(config, model)


def alert_channel(config: Config, rule: str, model: str) -> str:
    """Where an alert of ``rule`` (perhaps not a configured rule: an SLO's, Alertmanager's) is told."""
    configured = config.rule(rule)
    return rule_channel(config, configured, model) if configured is not None else model_channel(config, model)


def silence_channels(config: Config, rule: str | None, model: str | None) -> set[str]:
    """The channels the alerts a silence of ``rule`` and ``model`` covers are posted to (either may
    be None: every rule, every model)."""
    configured = config.rule(rule) if rule is not None else None
    if model is not None:
        models = [model]
    elif configured is None:  # an SLO's rule: its models
        models = sorted({slo.model for slo in config.slos if slo_rule(slo.name or slo.metric) == rule})
    else:
        models = sorted({*config.models, *(slo.model for slo in config.slos)})
    rules = [configured] if configured is not None else (list(config.rules) if rule is None else [])
    channels = {rule_channel(config, r, m) for r in rules for m in models if r.applies_to(m)}
    if configured is None:  # SLO alerts go to the model's channel
        channels |= {model_channel(config, m) for m in models}
    elif not channels:
        channels.add(configured.channel or config.settings.default_channel)
    return channels


def model_runbook(config: Config, model: str) -> Runbook | None:
    """The model's ``runbook:``, else ``runbooks/default.md``, if it exists."""
    known = config.models.get(model)
    return config.runbooks.get(known.runbook if known and known.runbook else DEFAULT_RUNBOOK)


def alert_runbook(config: Config, model: str, rule: str | None = None) -> Runbook | None:
    """The runbook an alert of ``rule`` on ``model`` opens: the rule's own first, then the model's."""
    named = config.rule(rule) if rule else None
    own = config.runbooks.get(named.runbook) if named is not None and named.runbook else None
    return own or model_runbook(config, model)
