"""Seeded generator of threshold-rule cases in promtool's notation, for the differential tests.

Each :class:`Case` is one alerting rule (``x{case="17"} > 3`` with a ``for:`` of 0 to 5 evaluation
intervals, sometimes a ``keep_firing_for:`` of 1 to 3) and one input series, written the way
``promtool test rules`` reads them. The shapes are the ones where an engine can disagree with
Prometheus: breaches of every length from one sample to ``for`` + 3, gaps shorter than, exactly as
long as and longer than the 5m lookback, flapping, values exactly at the threshold, ``a+bxn`` steps
summed in floats, samples as often as and rarer than the evaluations (and not on the evaluation
grid), and series that stop. The same seed gives the same cases, so a failing case number found
in CI is the same case on a laptop.

Times are whole seconds from the start of the test (promtool's time 0).
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import groupby

LOOKBACK = 300
"""Prometheus' default lookback delta (5m); incident-bot's ``stale_after`` is set to the same."""

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_OPERATOR_WEIGHTS = {">": 4, ">=": 3, "<": 3, "<=": 3, "==": 1, "!=": 1}

SCHEDULES: tuple[tuple[int, int], ...] = (
    (60, 60),
    (60, 120),
    (60, 240),
    (60, 90),
    (60, 30),
    (120, 120),
    (120, 240),
    (120, 60),
    (30, 60),
    (15, 15),
    (300, 300),
)
"""(evaluation interval, sample interval) in seconds: samples as often as the evaluations, rarer,
more often, and off the evaluation grid (every 90s against every 60s); evaluations from 15s to 5m
(at 5m the previous tick's sample is exactly at the edge of the lookback)."""

KINDS = ("breach", "gap", "flap", "threshold", "stop", "random", "ramp")

Value = float | None
"""One sample; ``None`` is promtool's ``_`` (no sample at that step)."""


@dataclass(frozen=True)
class Case:
    number: int
    kind: str
    op: str
    threshold: float
    for_steps: int
    """``for:`` in evaluation intervals (0 to 5)."""
    keep_steps: int
    """``keep_firing_for:`` in evaluation intervals (0 to 3)."""
    eval_interval: int
    sample_interval: int
    values: tuple[Value, ...]
    end: int
    """The last evaluation time checked: long enough after the last sample for it to go stale."""
    text: str = ""
    """The series as written, where it is not just ``values`` folded (``0.1+0.1x5`` steps in floats)."""

    @property
    def name(self) -> str:
        return f"case_{self.number}"

    @property
    def for_seconds(self) -> int:
        return self.for_steps * self.eval_interval

    @property
    def keep_seconds(self) -> int:
        return self.keep_steps * self.eval_interval

    @property
    def series(self) -> str:
        return f'x{{case="{self.number}"}}'

    @property
    def expr(self) -> str:
        return f"{self.series} {self.op} {number(self.threshold)}"

    @property
    def notation(self) -> str:
        return self.text or notation(self.values)

    def eval_times(self) -> range:
        return range(0, self.end + 1, self.eval_interval)

    def seen_at(self, t: int) -> Value:
        """What Prometheus' instant selector returns at ``t``: the newest sample at or before ``t``
        and no older than the lookback (both ends inclusive in Prometheus 2.x), else no data."""
        for i in range(min(len(self.values) - 1, t // self.sample_interval), -1, -1):
            at = i * self.sample_interval
            if at < t - LOOKBACK:
                return None
            if self.values[i] is not None:
                return self.values[i]
        return None

    def describe(self) -> str:
        keep = f", keep_firing_for: {duration(self.keep_seconds)}" if self.keep_steps else ""
        return (
            f"{self.name} ({self.kind}): alert expr {self.expr}, for: {duration(self.for_seconds)}{keep}, "
            f"evaluation_interval: {duration(self.eval_interval)}, input interval: {duration(self.sample_interval)}\n"
            f'  input_series: {self.series} values: "{self.notation}"'
        )


def duration(seconds: int) -> str:
    """``0s``, ``90s``, ``4m``, ``1h30m``: promtool and incident-bot both read these."""
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")


def number(value: float) -> str:
    """``3``, ``-0.25``, ``0.30000000000000004``: exact, and read back as the same float by both sides."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def notation(values: tuple[Value, ...]) -> str:
    """promtool's expanding notation, runs folded: ``0 5x3 _x2 5`` (``vxn`` is n+1 values, ``_xn`` n gaps)."""
    tokens: list[str] = []
    for value, run in groupby(values):
        count = len(list(run))
        if value is None:
            tokens.append("_" if count == 1 else f"_x{count}")
        else:
            text = number(value)
            tokens.append(text if count == 1 else f"{text}x{count - 1}")
    return " ".join(tokens)


# --- generation --------------------------------------------------------------------------------


def generate(seed: int, count: int) -> list[Case]:
    """``count`` cases from ``seed``: first the systematic sweep (every ``for`` of 0-5 intervals
    against every breach length 1 to ``for`` + 3, on every schedule, as long as ``count`` allows),
    then random cases of every kind."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for case in _sweep(rng):
        if len(cases) == count:
            return cases
        cases.append(replace(case, number=len(cases)))
    while len(cases) < count:
        kind = KINDS[len(cases) % len(KINDS)]
        cases.append(replace(_random_case(rng, kind), number=len(cases)))
    return cases


def _sweep(rng: random.Random) -> Iterator[Case]:
    schedules = list(SCHEDULES)
    rng.shuffle(schedules)
    for for_steps in range(6):
        for length in range(1, for_steps + 4):
            for eval_interval, sample_interval in schedules:
                shape = _Shape(rng, _pick_op(rng), rng.randint(-2, 5))
                values = shape.ok(rng.randint(0, 2)) + shape.breach(length) + shape.ok(rng.randint(1, 3))
                yield shape.case("breach", (for_steps, 0), (eval_interval, sample_interval), values)


def _random_case(rng: random.Random, kind: str) -> Case:
    eval_interval, sample_interval = rng.choice(SCHEDULES)
    steps = (rng.randint(0, 5), rng.choice((0, 0, 0, 1, 2, 3)))  # for:, keep_firing_for:
    if kind == "ramp":
        return _ramp(rng, kind, steps, (eval_interval, sample_interval))
    shape = _Shape(rng, _pick_op(rng), rng.randint(-2, 5))
    longest = steps[0] * eval_interval // sample_interval + 4  # in samples: enough to outlast for:
    if kind == "breach":
        values = shape.ok(rng.randint(0, 2)) + shape.breach(rng.randint(1, longest)) + shape.ok(rng.randint(0, 3))
    elif kind == "gap":
        values = shape.ok(rng.randint(0, 1)) + shape.breach(rng.randint(1, longest)) + _gap(rng, sample_interval)
        values += shape.breach(rng.randint(0, longest)) + shape.ok(rng.randint(0, 2))
    elif kind == "flap":
        values = ()
        for i in range(rng.randint(4, 10)):
            values += shape.breach(rng.randint(1, 3)) if i % 2 == 0 else shape.ok(rng.randint(1, 2))
    elif kind == "threshold":
        values = tuple(float(shape.threshold + rng.choice((0, 0, 0, -1, 1))) for _ in range(rng.randint(4, 14)))
    elif kind == "stop":
        values = shape.ok(rng.randint(0, 2)) + shape.breach(rng.randint(1, longest))
    else:  # random
        values = ()
        for _ in range(rng.randint(3, 8)):
            part = rng.choice(("ok", "breach", "breach", "gap"))
            values += _gap(rng, sample_interval) if part == "gap" else getattr(shape, part)(rng.randint(1, longest))
    if all(v is None for v in values):
        values += shape.breach(1)
    return shape.case(kind, steps, (eval_interval, sample_interval), values)


def _ramp(rng: random.Random, kind: str, steps: tuple[int, int], schedule: tuple[int, int]) -> Case:
    """``a+bxn`` steps with decimal fractions, summed in floats as promtool sums them, against a
    threshold written as the decimal the sum only nearly reaches (``0.1+0.1x3`` against ``0.3``)."""
    tokens: list[str] = []
    values: list[Value] = []
    for _ in range(rng.randint(1, 2)):
        start, step = rng.choice((0.1, 0.2, 0.7, -0.3, 1.1)), rng.choice((0.1, -0.1, 0.2, 0.3))
        times = rng.randint(3, 9)
        tokens.append(f"{number(start)}{'+' if step > 0 else '-'}{number(abs(step))}x{times}")
        value = start
        for _ in range(times + 1):
            values.append(value)
            value += step
    threshold = round(rng.choice([v for v in values if v is not None]), 6)
    shape = _Shape(rng, _pick_op(rng), threshold)
    return shape.case(kind, steps, schedule, tuple(values), " ".join(tokens))


def _pick_op(rng: random.Random) -> str:
    return rng.choices(list(_OPERATOR_WEIGHTS), weights=list(_OPERATOR_WEIGHTS.values()))[0]


def _gap(rng: random.Random, sample_interval: int) -> tuple[Value, ...]:
    """Missing samples: the silence they leave (gap + 1 intervals) shorter than, exactly as long
    as, or longer than the lookback."""
    fits = LOOKBACK // sample_interval - 1  # longest gap whose silence is still within the lookback
    choice = rng.choice(("short", "exact", "long"))
    if choice == "short" and fits >= 1:
        return (None,) * rng.randint(1, fits)
    if choice == "exact" and LOOKBACK % sample_interval == 0 and fits >= 1:
        return (None,) * fits
    return (None,) * (fits + rng.randint(1, 3))


class _Shape:
    """Values that breach or do not breach one rule, with the threshold itself where it counts."""

    def __init__(self, rng: random.Random, op: str, threshold: float) -> None:
        self.rng = rng
        self.op = op
        self.threshold = threshold
        compare = OPERATORS[op]
        near = [threshold + d for d in (-3, -2, -1, 0, 1, 2, 3, 40, -40)]
        self.breaching = [float(v) for v in near if compare(v, threshold)]
        self.clear = [float(v) for v in near if not compare(v, threshold)]

    def _pick(self, pool: list[float]) -> float:
        at = float(self.threshold)
        return at if at in pool and self.rng.random() < 0.3 else self.rng.choice(pool)

    def breach(self, n: int) -> tuple[Value, ...]:
        return tuple(self._pick(self.breaching) for _ in range(n))

    def ok(self, n: int) -> tuple[Value, ...]:
        return tuple(self._pick(self.clear) for _ in range(n))

    def case(
        self, kind: str, steps: tuple[int, int], schedule: tuple[int, int], values: tuple[Value, ...], text: str = ""
    ) -> Case:
        """The case, checked until its series has gone stale and any ``keep_firing_for`` is over."""
        (for_steps, keep_steps), (eval_interval, sample_interval) = steps, schedule
        last = max(i for i, v in enumerate(values) if v is not None) * sample_interval
        end = last + LOOKBACK + (keep_steps + 2) * eval_interval
        end = -(-end // eval_interval) * eval_interval
        rule = (self.op, self.threshold, for_steps, keep_steps)
        return Case(-1, kind, *rule, eval_interval, sample_interval, values, end, text)
