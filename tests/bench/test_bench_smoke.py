"""Every benchmark in ``bench/`` still runs, at a tiny size: benchmarks are not run by the suite
otherwise, and a change to the bot broke them unnoticed before (``delivery_latency.py`` matched
PagerDuty triggers by a dedup key the bot no longer sends, so every trial failed).

Each script runs as a subprocess, as a person runs it, and must exit 0 having printed its
figures (a line it always prints with them). The figures themselves are not checked: at these
sizes, on a shared machine, they say nothing. Scripts whose exit status is their verdict may
instead exit 1 for a missed target, but only with the lines that show the run itself was sound
(no errors, nothing lost or left due): a target missed by a tiny run is noise, a request refused
is rot. Scripts that start Debian's Prometheus, promtool or Pushgateway are skipped, with the
reason, where those are missing (``REQUIRE_PROMETHEUS=1`` makes that a failure, as in
``tests/sources``). All of them but ``replicas`` use a SQLite file; ``replicas`` (several
processes on one database) needs PostgreSQL and is skipped, as the suite's PostgreSQL tests are,
where none is reachable (``TEST_DATABASE_URL``; ``REQUIRE_POSTGRES=1`` makes that a failure).
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.harness import PROMETHEUS, REPO
from bench.ingest import PUSHGATEWAY
from bench.promql_windows import PROMTOOL
from tests.conftest import _postgres_unavailable
from tests.sources.helpers import require_binary

BENCH = REPO / "bench"


@dataclass(frozen=True)
class Script:
    name: str
    args: str
    """Its command-line arguments for a run of a few seconds."""
    report: str
    """A regular expression matching a line the script prints with its figures."""
    sound: tuple[str, ...] = ()
    """With these, exit 1 (a missed target) is accepted when every one of them matches the output."""
    needs: tuple[tuple[Path, str], ...] = ()
    """Binaries the script starts, with the Debian package of each."""
    postgres: bool = False
    """Run with ``--database-url`` on the test PostgreSQL server (the script makes its own databases)."""


SCRIPTS = [
    Script("evaluate", "--models 50 --runs 1", r"verdict: PASS — steady pass"),
    Script("sample_disk", "--samples 2000", r"^SQLite: \d+ bytes per sample"),
    Script("ingest_store", "--pushes 20 --models 50", r"20 pushes of 100 samples .* per push"),
    Script(
        "escalation",
        "--alerts 200 --spread 2 --lead 5 --tail 1",
        r"lateness, committed \(sweep end\)\s+p50",
        sound=(r"run twice: 0; still due: 0",),
    ),
    Script("delivery_latency", "--trials 3", r"PagerDuty trigger − evaluation\s+p50"),
    Script(
        "ingest",
        "--seconds 0.2",
        r"^\s+200\s+32 \|",
        needs=((PUSHGATEWAY, "prometheus-pushgateway"),),
    ),
    Script(
        "soak",
        "--minutes 0.05 --models 9 --rate 5 --batch 3 --interactive-rate 2",
        r"^verdict: (PASS|FAIL)",
        sound=(r"req/s; errors 0$", r"nothing lost", r"0 tracebacks; the bot was still running"),
    ),
    Script(
        "interactions",
        "--mode think --clients 4 --think-seconds 2 --rounds 1 --pause 0.5",
        r"verdict \(think time \(headline\), incident-bot serve\): p99",
        sound=(r"errors 0: PASS",),
    ),
    Script(
        "promql_windows",
        "--models 10 --repeat 1",
        r"term in PromQL \(this change\)\s+median",
        needs=((PROMETHEUS, "prometheus"), (PROMTOOL, "prometheus")),
    ),
    Script(
        "pull",
        "--models 100 --pulls 3 --interval 1 --scrape 1",
        r"open alerts == breaching set\s+True",
        needs=((PROMETHEUS, "prometheus"),),
    ),
    Script("fatigue", "--scenario none --speed 1200 --tail 1", r"verdict \(none\): root messages"),
    Script(
        "fleet",
        "--models 200 --alerts 300 --seconds 3 --tail 1 --lead 10 --evaluation-interval 1 --push-interval 5 "
        "--click-rate 10 --split --halves",
        r"^\| escalation lateness p99",
        sound=(
            r"^\| errors \(bot: ingest \+ clicks\)\s+\| 0 ",
            r"^\| bot tracebacks in its log, bot alive\s+\| 0, yes",
        ),
    ),
    Script(
        "replicas",
        "--models 100 --seconds 1 --clients 8 --passes 1 --evaluation-interval 1",
        r"^\| evaluation, two processes / one",
        sound=(
            r"^\| exactly once: .*\| 0, 0 \(of [1-9]\d*\)\s+\| 0, 0\s+\| 0, 0 \(of [1-9]\d*\)",
            r"^\| errors \(ingest requests, mover requests\)\s+\| 0, 0\s+\| 0, 0\s+\| 0, 0 ",
            r"^\| tracebacks in the logs, processes alive\s+\| 0, yes",
        ),
        postgres=True,
    ),
]


def test_every_benchmark_is_covered() -> None:
    """A new benchmark joins this test (``harness.py`` is their plumbing, not a benchmark)."""
    assert {p.stem for p in BENCH.glob("*.py")} - {"harness"} == {s.name for s in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_benchmark_runs_small(script: Script, request: pytest.FixtureRequest) -> None:
    for binary, package in script.needs:
        require_binary(binary, package)
    database: list[str] = []
    if script.postgres:
        server = request.getfixturevalue("_postgres_server")
        if isinstance(server, str):
            _postgres_unavailable(server)
        database = ["--database-url", server.url.render_as_string(hide_password=False)]
    run = subprocess.run(
        [sys.executable, str(BENCH / f"{script.name}.py"), *script.args.split(), *database],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=BENCH.parent,
    )
    shown = f"exit {run.returncode}\n--- stdout\n{run.stdout[-4000:]}\n--- stderr\n{run.stderr[-4000:]}"
    assert re.search(script.report, run.stdout, re.MULTILINE), f"no figures printed: {shown}"
    missed_target = run.returncode == 1 and script.sound
    assert run.returncode == 0 or missed_target, shown
    for line in script.sound if missed_target else ():
        assert re.search(line, run.stdout, re.MULTILINE), f"missed a target and {line!r} did not hold: {shown}"
