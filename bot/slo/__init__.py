"""Service level objectives: SLIs from stored samples, error budgets, burn-rate alerts, the dashboard.

The core is pure: samples and ``now`` come in, numbers and text go out. Only the edge modules at
the end of this list do I/O (the database, the PNG, the command line).

- :mod:`bot.slo.spec` — :class:`SloSpec`, one SLO as the maths needs it, built from ``rules/``.
- :mod:`bot.slo.sli` — time-weighted threshold SLIs, event-ratio SLIs, the current value and status.
- :mod:`bot.slo.budget` — error budget remaining (fraction and time), burn rate, time to exhaustion.
- :mod:`bot.slo.burn_rate` — the SRE workbook's multiwindow, multi-burn-rate alert, scaled to the window.
- :mod:`bot.slo.dashboard` — the rows and the monospace table of ``/slo status``.
- :mod:`bot.slo.chart` — the error-budget burndown (pure) and its PNG (matplotlib, Agg).
- :mod:`bot.slo.service` — the edge: series from the database, dashboards, charts, and burn-rate
  findings as observations for the alert pipeline (``AlertService.evaluate_slos_once``).
- :mod:`bot.slo.cli` — ``incident-bot slo status`` and ``incident-bot alerts review``.
"""
