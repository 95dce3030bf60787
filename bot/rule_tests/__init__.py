"""Rule unit tests, like ``promtool test rules``: metric series in, expected alerts at given times.

A rule that never fires, or fires on every blip, is found by an on-call engineer at 3 a.m.;
a rule test finds it before the rule ships. ``incident-bot test-rules FILE`` runs a YAML file::

    config_dir: ..              # optional, relative to this file; else the --config-dir argument,
                                # else the default configuration directory
    evaluation_interval: 30s    # optional; default: the configuration's settings.evaluation_interval
    tests:
      - name: latency spike fires after 2m and auto-resolves
        interval: 1m            # spacing of input values; default: evaluation_interval
        input_series:
          - model: support-bot
            metric: p99_latency_ms
            values: "100 6100x5 200"
          - model: support-bot
            metric: top_drifted_features
            labels: ["age,income", "_", "zip"]     # text (label) values: one per interval
        actions:                # optional: what people do (``acknowledge`` or ``resolve``)
          - at: 5m
            action: acknowledge
            rule: latency_spike
            model: support-bot
            by: "@ana"          # optional
        alert_rule_test:
          - eval_time: 4m
            alerts:             # every open alert people were told about at that time; [] = none
              - rule: latency_spike
                model: support-bot
                severity: P1
                state: firing                              # optional: firing | acknowledged
                title: "P99 latency >5s for support-bot"   # optional, exact
                description: "..."                         # optional, exact
                values: {p99_latency_ms: 6100}             # optional, each one exact
            incidents:          # optional: every open incident, named by the open alerts it holds
              - alerts: [latency_spike:support-bot]        # rule:model keys
                severity: P1                               # optional: the worst of its alerts
                state: firing                              # optional: firing | acknowledged
                storm: false                               # optional: a fleet-wide storm incident?

Series values use promtool's expanding notation, one value per ``interval`` from time 0:

* ``a+bxn`` and ``a-bxn``: ``a``, then ``n`` more values stepping by ``b`` (``n+1`` values):
  ``-2+4x3`` is ``-2 2 6 10``; ``axn`` is ``a`` ``n+1`` times (``1x4`` is ``1 1 1 1 1``);
* ``_`` is a missing sample and ``_xn`` is ``n`` missing samples (not ``n+1``: a gap cannot step);
* a YAML list works too: numbers, ``null`` or ``"_"`` for missing, or notation strings.

Unlike Prometheus there are no stale markers (``stale`` is refused): as in the running bot, a
metric's last sample is its value until ``settings.stale_after`` has passed, then it is no data.
``NaN`` and ``Inf`` are refused as the ingest API refuses them.

Time starts at 0 (a fixed instant) and rules are evaluated every ``evaluation_interval`` with the
same pure core the service runs (:func:`bot.evaluation.evaluate.evaluate`), keeping open alerts
and cooldowns exactly as the service does, without a database. At each ``eval_time`` (after any
evaluation and actions at that instant) the firing and acknowledged alerts are compared with the
expected ones; pending alerts are not listed, as in promtool. Incidents are grouped as the service
groups them (``settings.group_by``, storms); escalation and notifications are not simulated, so an
incident's severity is its alerts' worst. An ``eval_time`` checks ``alerts:``, ``incidents:`` or both.
A malformed file raises :class:`~bot.errors.ConfigError` naming file and line.
"""

from __future__ import annotations

from bot.rule_tests.notation import MAX_VALUES, expand_series
from bot.rule_tests.results import CaseResult, RuleTestReport
from bot.rule_tests.runner import run_rule_tests

__all__ = ["MAX_VALUES", "CaseResult", "RuleTestReport", "expand_series", "run_rule_tests"]
