"""Storing pushes: CPU and wall time per push of ``metric_store.record`` on a SQLite file.

A push of ``--batch`` models × 5 metrics (default 20 × 5 = 100 samples), the batches going round a
fleet of ``--models`` models, ``--pushes`` times, each in its own transaction as the ingest API
stores it. Prints the CPU and wall milliseconds per push. Not a timed test; figures go to
``bench/RESULTS.md``.

    python bench/ingest_store.py [--pushes 300] [--models 1000] [--batch 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta

from bot.metrics import store
from bot.storage.database import make_engine, migrate, session

METRICS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=300)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        engine = make_engine(f"sqlite:///{directory}/bench.db")
        migrate(engine)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        cpu, wall = time.process_time(), time.perf_counter()
        for push in range(args.pushes):
            at = start + timedelta(seconds=push)
            models = [(push * args.batch + m) % args.models for m in range(args.batch)]
            points = [(f"model-{m:05d}", f"metric_{k}", at, float(push)) for m in models for k in range(METRICS)]
            with session(engine) as s, s.begin():
                store.record(s, points)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        engine.dispose()
    samples = args.batch * METRICS
    print(
        f"{args.pushes} pushes of {samples} samples over {args.models} models: "
        f"{cpu / args.pushes * 1000:.1f} ms CPU and {wall / args.pushes * 1000:.1f} ms wall per push"
    )


if __name__ == "__main__":
    main()
