"""Service level objectives: SLIs from stored samples, error budgets, burn-rate alerts, the dashboard.

Everything here is pure: samples and ``now`` come in, numbers and text go out. The service fetches
the series (``bot.metrics.store.series``) and posts the results; nothing in this package does I/O.

- :mod:`bot.slo.spec` — :class:`SloSpec`, one SLO as the maths needs it, built from ``rules/``.
- :mod:`bot.slo.sli` — time-weighted threshold SLIs, event-ratio SLIs, the current value and status.
- :mod:`bot.slo.budget` — error budget remaining (fraction and time), burn rate, time to exhaustion.
- :mod:`bot.slo.burn_rate` — the SRE workbook's multiwindow, multi-burn-rate alert, scaled to the window.
- :mod:`bot.slo.dashboard` — the rows and the monospace table of ``/slo status``.
"""
