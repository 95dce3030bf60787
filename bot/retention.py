"""Retention: stored samples are kept as long as something reads them, then deleted in batches.

What reads samples: windowed conditions evaluated here (their longest window, or ``ago``'s reach
plus ``stale_after``; not those Prometheus evaluates), SLOs (their window plus ``stale_after``),
the evaluation's own lookup of a value at its tick (``stale_after``), and
``settings.sample_retention`` when set. Past the longest of those plus :data:`MARGIN`, a scheduled
job deletes samples :data:`BATCH` rows at a time, each batch its own short transaction, so ingest
and evaluation are never held up behind one long DELETE. The newest value of each metric
(``metric_latest``) is never deleted.

Known cost: ``at`` has no index of its own (the samples' index leads with model and name), so a
batch finds its rows by scanning from the oldest row, and the last batch of a run, finding fewer
than :data:`BATCH`, scans the whole table once: 0.1–0.3 s for 840,000 rows on SQLite (measured),
so about a second every 10 minutes at a few million rows; a large fleet would want an index on
``at`` (some 40 bytes more a sample).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from bot.config.loader import Config
from bot.config.promql_windows import pulled_terms
from bot.evaluation.evaluate import window_needs
from bot.metrics import store
from bot.slo.spec import spec_from_config
from bot.storage.database import session as open_session

log = logging.getLogger(__name__)

MARGIN = timedelta(hours=1)
"""Kept beyond the longest need: a pass or an SLO query at the edge of its window still finds the
sample that held into it, whatever the job's timing."""
BATCH = 5_000
EVERY = timedelta(minutes=10)
"""How often the job runs; a day's samples of 1,000 models × 15 metrics at 30 s is 43 million rows,
which it deletes in about 300 batches a run."""


def kept_for(config: Config) -> timedelta:
    """How long stored samples are kept under ``config``."""
    settings = config.settings
    windows = window_needs(config, pulled=pulled_terms(config)).longest
    needs = [settings.stale_after, windows, settings.sample_retention or timedelta(0)]
    for slo in config.slos:
        spec = spec_from_config(slo, stale_after=settings.stale_after)
        needs += [spec.history_needed(), spec.absent_after]
    return max(needs) + MARGIN


def history_metrics(config: Config) -> frozenset[str]:
    """The metrics whose samples something reads: windowed terms evaluated here and SLOs. A pulled
    metric outside these is stored as its newest value only (:func:`bot.metrics.store.record`'s
    ``history``): its windowed terms that Prometheus evaluates (:mod:`bot.config.promql_windows`)
    read Prometheus' history, not ours."""
    settings = config.settings
    pulled = pulled_terms(config)
    terms = (term for rule in config.rules for term in rule.condition.windows)
    windowed = {term.metric for term in terms if term.name not in pulled.queries}
    slos = {name for slo in config.slos for name in spec_from_config(slo, stale_after=settings.stale_after).metrics}
    return frozenset(windowed | slos)


def prune_samples(engine: Engine, config: Config, now: datetime, *, batch: int = BATCH) -> int:
    """Delete the samples older than :func:`kept_for`, ``batch`` rows per transaction; return how many."""
    cut = now - kept_for(config)
    deleted = 0
    while True:
        with open_session(engine) as s, s.begin():
            gone = store.prune(s, before=cut, limit=batch)
        deleted += gone
        if gone < batch:
            break
    if deleted:
        log.info("deleted %d samples stored before %s (kept: %s)", deleted, cut.isoformat(), kept_for(config))
    return deleted
