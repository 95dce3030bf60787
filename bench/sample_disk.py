"""Disk use of stored samples: bytes per sample on SQLite (and PostgreSQL), and so per model and
metric per day, for the README's retention figures. Not a timed test.

    python bench/sample_disk.py [--samples 200000] [--database-url postgresql://…]

Samples go in through the ingest path's store (``metric_samples`` with its index, and
``metric_latest``), one model and metric name as long as the shipped ones, one sample every 30 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from harness import scratch_database
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bot.metrics import store
from bot.storage.database import make_engine, migrate
from bot.storage.database import session as open_session

EVERY = timedelta(seconds=30)
PER_DAY = timedelta(days=1) / EVERY
MODELS = ["fraud-detector-v2", "support-bot", "churn-model-v3", "search-ranker"]
METRICS = ["p99_latency_ms", "current_accuracy", "predictions_last_hour", "helpfulness", "daily_cost_usd"]


def fill(engine: Engine, samples: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    series = [(m, n) for m in MODELS for n in METRICS]
    steps = samples // len(series)
    for first in range(0, steps, 1000):
        points = [
            (model, name, start + EVERY * k, 1000.0 + k * 0.37)
            for k in range(first, min(first + 1000, steps))
            for model, name in series
        ]
        with open_session(engine) as s, s.begin():
            store.record(s, points)


def measure(url: str | None, sqlite_file: Path, samples: int) -> float:
    """Bytes per sample in a scratch database: the SQLite file's growth, or PostgreSQL's
    ``pg_total_relation_size`` of the sample table (with its index)."""
    with scratch_database(url, sqlite_file, prefix="ib_disk") as database:
        engine = make_engine(database)
        try:
            migrate(engine)
            before = _size(engine, sqlite_file)
            fill(engine, samples)
            return (_size(engine, sqlite_file) - before) / samples
        finally:
            engine.dispose()


def _size(engine: Engine, sqlite_file: Path) -> int:
    with engine.connect() as c:
        if engine.dialect.name == "sqlite":
            c.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))  # the WAL's pages into the file
            return sqlite_file.stat().st_size
        return int(c.execute(text("SELECT pg_total_relation_size('metric_samples')")).scalar() or 0)


def report(backend: str, per_sample: float) -> None:
    per_day = per_sample * PER_DAY
    print(
        f"{backend}: {per_sample:.0f} bytes per sample (table and index); one model × metric at 30 s "
        f"= {PER_DAY:,.0f} samples/day = {per_day / 1024:,.0f} KiB/day; 1,000 models × 15 metrics "
        f"kept 7 days = {per_day * 15_000 * 7 / 1024**3:,.1f} GiB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--database-url", default=None, help="also measure on this PostgreSQL server (fresh database)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ib-disk-") as tmp:
        report("SQLite", measure(None, Path(tmp) / "disk.db", args.samples))
        if args.database_url:
            report("PostgreSQL", measure(args.database_url, Path(tmp) / "unused.db", args.samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
