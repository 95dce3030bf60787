"""Metric and alert sources beyond the push API (SPEC §2): a Prometheus server pulled with PromQL
(:mod:`bot.sources.prometheus`) and the Alertmanager webhook (:mod:`bot.sources.alertmanager`,
served by :mod:`bot.sources.alertmanager_api`). Their ``rules/*.yaml`` sections are in
:mod:`bot.sources.schema`.

This package's ``__init__`` imports nothing: :mod:`bot.config.schema` imports the section
models, and an import here would make that a cycle.
"""
