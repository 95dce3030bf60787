"""Windowed conditions compute what PromQL computes, with ``promtool test rules`` as the oracle.

Seeded series (gauges with gaps, counters with resets) are written in promtool's notation; at
every minute incident-bot's pure window functions (:func:`bot.evaluation.windows.term_value`)
give each term's value, and those values become ``promql_expr_test`` expectations of the PromQL
that means the same: ``avg_over_time(m, "150s")`` is ``avg_over_time(x[150s])``, ``rate(m, "270s")``
is ``rate(x[270s])``, ``ago(m, "2m")`` is ``x offset 2m``. One promtool run over all of them says
where Prometheus disagrees. No value is no data on both sides (an empty result).

Windows are not whole multiples of the sample interval: Prometheus 2.x (Debian's) takes a range as
``[t - w, t]`` and 3.x as ``(t - w, t]``, as incident-bot does, and the two differ only for a sample
exactly on the range's start. ``delta`` is left out: Prometheus extrapolates it, incident-bot does
not (the README says so).
"""

from __future__ import annotations

import math
import random
import re
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import yaml

from bot.config.windows import AGO, QUANTILE, WindowTerm
from bot.evaluation.windows import term_value
from bot.metrics.samples import Points
from tests.rule_tests.differential import PROMTOOL
from tests.rule_tests.generate import LOOKBACK, number
from tests.sources.helpers import require_binary

SEED = 14
SERIES = 24
STEPS = 40
"""Samples per series, one a minute (some of them gaps)."""
STEP = 60


@dataclass(frozen=True)
class Function:
    term: WindowTerm
    promql: str
    """The same in PromQL, with ``{s}`` for the series selector."""
    counters: bool = False
    """Run over the counter series (``rate``), else over the gauges."""


FUNCTIONS = (
    Function(WindowTerm("avg_over_time", "x", timedelta(seconds=150), "a"), "avg_over_time({s}[150s])"),
    Function(WindowTerm("min_over_time", "x", timedelta(seconds=270), "b"), "min_over_time({s}[270s])"),
    Function(WindowTerm("max_over_time", "x", timedelta(seconds=150), "c"), "max_over_time({s}[150s])"),
    Function(WindowTerm("sum_over_time", "x", timedelta(seconds=270), "d"), "sum_over_time({s}[270s])"),
    Function(WindowTerm("count_over_time", "x", timedelta(seconds=330), "e"), "count_over_time({s}[330s])"),
    Function(
        WindowTerm(QUANTILE, "x", timedelta(seconds=390), "f", phi=0.9), "quantile_over_time(0.9, {s}[390s])"
    ),
    Function(WindowTerm("rate", "x", timedelta(seconds=270), "g"), "rate({s}[270s])", counters=True),
    Function(WindowTerm("rate", "x", timedelta(seconds=630), "h"), "rate({s}[630s])", counters=True),
    Function(WindowTerm(AGO, "x", timedelta(minutes=2), "i"), "{s} offset 2m"),
    Function(WindowTerm(AGO, "x", timedelta(minutes=7), "j"), "{s} offset 7m"),
)


def gauge(rng: random.Random) -> list[float | None]:
    """Small integers and halves (exact in binary), with single gaps and runs of gaps longer than
    the 5m lookback."""
    values: list[float | None] = []
    while len(values) < STEPS:
        if rng.random() < 0.08:
            values += [None] * rng.choice((1, 2, 7))
        else:
            values.append(rng.randint(-4, 20) / 2)
    return values[:STEPS]


def counter(rng: random.Random) -> list[float | None]:
    """A counter that climbs by whole steps, restarts from a small value now and then, and
    sometimes misses a scrape."""
    values: list[float | None] = []
    total = float(rng.randint(0, 50))
    for _ in range(STEPS):
        roll = rng.random()
        if roll < 0.06:
            total = float(rng.randint(0, 3))  # the process restarted
        elif roll < 0.12:
            values.append(None)
            continue
        else:
            total += rng.randint(0, 9)
        values.append(total)
    return values


def notation(values: list[float | None]) -> str:
    return " ".join("_" if v is None else number(v) for v in values)


def points(values: list[float | None]) -> Points:
    kept = [(i * STEP, v) for i, v in enumerate(values) if v is not None]
    return Points([float(t) for t, _ in kept], [v for _, v in kept])


def test_window_functions_agree_with_promql(tmp_path: Path) -> None:
    require_binary(PROMTOOL, "prometheus")
    rng = random.Random(SEED)
    series = {n: (counter(rng) if n % 2 else gauge(rng)) for n in range(SERIES)}
    expectations = []
    compared = with_value = 0
    for n, values in series.items():
        selector = f'x{{case="{n}"}}'
        for function in FUNCTIONS:
            if function.counters != bool(n % 2):
                continue
            for minute in range(1, STEPS + 6):
                t = minute * STEP
                ours = term_value(function.term, points(values), now=float(t), stale_after=float(LOOKBACK))
                labels = selector if function.term.function == AGO else f'{{case="{n}"}}'
                expectations.append(
                    {
                        "expr": function.promql.format(s=selector),
                        "eval_time": f"{minute}m",
                        "exp_samples": [] if ours is None else [{"labels": labels, "value": ours}],
                    }
                )
                compared += 1
                with_value += ours is not None
    (tmp_path / "none.yaml").write_text("groups: []\n")
    test = {
        "rule_files": ["none.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": f'x{{case="{n}"}}', "values": notation(v)} for n, v in series.items()],
                "promql_expr_test": expectations,
            }
        ],
    }
    (tmp_path / "windows.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    assert compared > 1000 and with_value > compared // 2, (compared, with_value)  # the comparison has substance

    done = subprocess.run(
        [str(PROMTOOL), "test", "rules", "windows.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    output = (done.stdout + done.stderr).strip()
    differences = real_differences(output)
    assert not differences, (
        f"Prometheus disagrees on {len(differences)} of {compared} ({tmp_path / 'windows.yaml'} reproduces it):\n"
        + "\n".join(differences[:40])
    )
    assert done.returncode == 0 or "exp:" in output, output[:3000]  # promtool failed for another reason


_DIFF = re.compile(r'expr: "(?P<expr>.*)", time: (?P<time>\S+),\n\s*exp:(?P<exp>.*)\n\s*got:(?P<got>.*)')
_SAMPLE = re.compile(r"(\S*\{[^}]*\}) (\S+)")


def real_differences(output: str) -> list[str]:
    """promtool's mismatches that are more than the last bits of a float: promtool compares
    exactly, and a mean summed in another order (Prometheus' Kahan sum against ``math.fsum``)
    can differ in the 16th digit."""
    found = []
    for match in _DIFF.finditer(output.replace('\\"', '"')):
        exp, got = _SAMPLE.findall(match["exp"]), _SAMPLE.findall(match["got"])
        same = len(exp) == len(got) and all(
            a_labels == b_labels and math.isclose(float(a_value), float(b_value), rel_tol=1e-12, abs_tol=1e-12)
            for (a_labels, a_value), (b_labels, b_value) in zip(sorted(exp), sorted(got), strict=True)
        )
        if not same:
            ours, theirs = exp or "no data", got or "no data"
            found.append(f"{match['expr']} at {match['time']}: incident-bot {ours}, Prometheus {theirs}")
    unread = output.count('expr: "') - len(_DIFF.findall(output.replace('\\"', '"')))
    if unread:
        found.append(f"{unread} mismatches promtool printed in a form this test cannot read")
    return found


def test_a_real_difference_is_told_from_the_last_digits_of_a_float() -> None:
    printed = (
        '  expr: "avg_over_time(x{case=\\"2\\"}[150s])", time: 2m,\n'
        '      exp: {case="2"} 3.3333333333333335E+00\n'
        '      got: {case="2"} 3.333333333333333E+00\n'
        '  expr: "rate(x{case=\\"3\\"}[270s])", time: 5m,\n'
        '      exp: {case="3"} 1.5E-01\n'
        '      got: {case="3"} 1.4E-01\n'
        '  expr: "x{case=\\"4\\"} offset 2m", time: 9m,\n'
        "      exp: \n"
        '      got: x{case="4"} 7E+00\n'
    )
    assert real_differences(printed) == [
        'rate(x{case="3"}[270s]) at 5m: incident-bot [(\'{case="3"}\', \'1.5E-01\')], '
        'Prometheus [(\'{case="3"}\', \'1.4E-01\')]',
        'x{case="4"} offset 2m at 9m: incident-bot no data, Prometheus [(\'x{case="4"}\', \'7E+00\')]',
    ]
