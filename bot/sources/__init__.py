"""Metric and alert sources beyond the push API (SPEC §2): a Prometheus server pulled with PromQL
(:mod:`bot.sources.prometheus`) and the Alertmanager webhook (:mod:`bot.sources.alertmanager`,
served by :mod:`bot.sources.alertmanager_api`). Their ``rules/*.yaml`` sections are in
:mod:`bot.config.source_schema`.
"""
