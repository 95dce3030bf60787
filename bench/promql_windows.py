"""Benchmark: what Prometheus spends on a windowed term asked in PromQL (issue 20, point 2).

A pull asks Prometheus for ``avg_over_time((<query>)[1h:30s])``: a subquery that evaluates the
configured query at each of 120 steps. ``bench/pull.py`` runs minutes, so its Prometheus holds
minutes of data and most steps find nothing; this benchmark backfills a full hour (``promtool tsdb
create-blocks-from openmetrics``) of ``--models`` gauges scraped every 15 s, starts Debian's
Prometheus on it, and times, at the hour's end, the configured query, the term's PromQL and, for
reference, the raw-range form a person might write instead (not the same value: it averages raw
samples per series, then aggregates)::

    .venv/bin/python bench/promql_windows.py --models 10000
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench.harness import PROMETHEUS, free_port, start_prometheus
from bot.config.promql_windows import term_promql
from bot.config.windows import WindowTerm

PROMTOOL = Path("/usr/bin/promtool")
SCRAPE = 15
QUERY = "max by (model) (fleet_g00)"


def write_openmetrics(path: Path, models: int, end: int) -> int:
    """An hour and five minutes of one gauge per model, ending at ``end``; returns the samples written."""
    times = range(end - 3900, end + 1, SCRAPE)
    with path.open("w") as out:
        out.write("# TYPE fleet_g00 gauge\n")
        for n in range(models):
            series = f'fleet_g00{{model="m-{n:05d}"}}'
            out.writelines(f"{series} {(n + k) % 50} {t}\n" for k, t in enumerate(times))
        out.write("# EOF\n")
    return models * len(times)


def timed(url: str, query: str, at: int, repeat: int) -> tuple[float, float, int]:
    """Median and max seconds of ``repeat`` instant queries at ``at``, and the series returned."""
    seconds: list[float] = []
    series = 0
    for _ in range(repeat):
        began = time.perf_counter()
        answer = httpx.get(f"{url}/api/v1/query", params={"query": query, "time": str(at)}, timeout=120).json()
        seconds.append(time.perf_counter() - began)
        if answer.get("status") != "success":
            raise SystemExit(f"{query}: {answer}")
        series = len(answer["data"]["result"])
    return statistics.median(seconds), max(seconds), series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for binary in (PROMETHEUS, PROMTOOL):
        if not binary.is_file():
            raise SystemExit(f"{binary} is missing: apt-get install prometheus")
    end = int(time.time()) // 60 * 60 - 600
    term = WindowTerm("avg_over_time", "g00", timedelta(hours=1), "avg_over_time_g00_1h")
    queries = {
        "configured query": QUERY,
        "term in PromQL (this change)": term_promql(
            term, QUERY, step=timedelta(seconds=30), stale_after=timedelta(minutes=15)
        ),
        "raw range, for reference": "max by (model) (avg_over_time(fleet_g00[1h]))",
    }
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        began = time.perf_counter()
        samples = write_openmetrics(tmp / "fleet.om", args.models, end)
        backfill = [str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", "-q", str(tmp / "fleet.om")]
        subprocess.run([*backfill, str(tmp / "data")], check=True)
        print(f"backfilled {samples:,} samples ({args.models:,} series, 65 min at {SCRAPE} s) in "
              f"{time.perf_counter() - began:.0f} s")  # fmt: skip
        (tmp / "prometheus.yml").write_text("global: {scrape_interval: 15s}\nscrape_configs: []\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        prometheus = start_prometheus(tmp, port)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("Prometheus was not ready within 120 s")
                time.sleep(0.5)
            print(f"Prometheus 2.42 on the backfilled hour, {args.repeat} instant queries each at its end:")
            for name, text in queries.items():
                median, worst, series = timed(url, text, end, args.repeat)
                print(f"  {name:30} median {median * 1000:8.0f} ms   max {worst * 1000:8.0f} ms   "
                      f"{series:,} series   {text}")  # fmt: skip
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=30)


if __name__ == "__main__":
    main()
