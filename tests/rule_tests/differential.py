"""Run generated cases through incident-bot's rule tests and through ``promtool test rules``.

incident-bot's side: each case becomes a rule test (``bot.rule_tests``, in-process) against a
configuration holding one model and the case's rule, with ``stale_after: 5m`` and ``cooldown: 0``.
Every evaluation time is checked against "no alert", so the report names each evaluation at which
the bot had the alert firing. Those firing times become promtool's expectations (``exp_alerts`` at
every evaluation time) and one ``promtool test rules`` run over all cases says whether Prometheus
agrees; where it does not, each failing case is run again alone, so its diff is its own.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy.engine import Engine

from bot.alerts import store as alert_store
from bot.alerts.lifecycle import AlertState, dedup_key
from bot.clock import FrozenClock
from bot.config.loader import Config, load_config
from bot.config.schema import Model, Rule
from bot.rule_tests.simulation import _Simulation
from bot.rule_tests.spec import CaseSpec
from bot.service import AlertService, every_channel
from bot.storage.database import session as open_session
from tests.rule_tests.generate import LOOKBACK, OPERATORS, Case, duration, number

PROMTOOL = Path("/usr/bin/promtool")
MODEL = "m"
RULE = "r"
ISOLATE_AT_MOST = 40
"""Failing cases re-run one by one; past that the batch's own diff is precise enough per case."""

JITTER = 0.9
"""A pass may start this fraction of an interval after its tick (or a few ms before it)."""

Firing = frozenset[int]
"""The evaluation times (seconds) at which a case's alert is firing."""


# --- incident-bot ------------------------------------------------------------------------------


def bot_config(workdir: Path, *, no_data: str) -> Config:
    """The configuration every case runs against: one model, ``stale_after: 5m``, ``no_data`` as
    given, loaded from files the way ``serve`` loads them; each case swaps in its own rule."""
    directory = workdir / f"bot-{no_data}"
    _write_config(directory, no_data, _bot_rule(">", 0, 0, 0), 60)
    return load_config(directory)


def _write_config(directory: Path, no_data: str, rule: dict[str, object], eval_interval: int) -> None:
    (directory / "rules").mkdir(parents=True, exist_ok=True)
    settings = {"evaluation_interval": duration(eval_interval), "stale_after": duration(LOOKBACK), "no_data": no_data}
    document = {
        "settings": settings,
        "models": [{"name": MODEL}],
        "metrics": [{"name": "x", "description": "the generated series"}],
        "rules": [rule],
    }
    (directory / "rules" / "case.yaml").write_text(json.dumps(document, indent=1))


def _bot_rule(op: str, threshold: float, for_seconds: int, keep_seconds: int) -> dict[str, object]:
    return {
        "name": RULE,
        "condition": f"x {op} {number(threshold)}",
        "for": duration(for_seconds),
        "keep_firing_for": duration(keep_seconds),
        "severity": "P2",
        "title": "x is {x}",
        "cooldown": "0s",
    }


def bot_firing(cases: Iterable[Case], workdir: Path, *, no_data: str, jitter: float = 0.0) -> dict[int, Firing]:
    """incident-bot's firing times per case number with ``no_data`` as given. Where each key is
    written varies, so the defaults and the overrides are both tried: ``no_data`` is in
    ``settings:`` for even-numbered cases and on the rule (over a ``settings:`` saying the
    opposite) for odd ones; ``keep_firing_for`` is in ``settings:`` for every other pair of cases,
    else on the rule (even ``0s``, over a ``settings:`` default of 1h). With ``jitter`` each pass
    starts off its tick as ``test-rules --jitter`` makes it (seeded by case).

    Each case is a rule test run in-process (the parsed form of a test file, without the YAML,
    which would cost more than the runs) that expects no alert at every evaluation time, so each
    failed check is an evaluation with the alert firing."""
    other = "keep" if no_data == "resolve" else "resolve"
    configs = (bot_config(workdir, no_data=no_data), bot_config(workdir, no_data=other))
    firing: dict[int, Firing] = {}
    for case in cases:
        rule = _bot_rule(case.op, case.threshold, case.for_seconds, case.keep_seconds)
        if case.number % 2:
            rule["no_data"] = no_data
        keep_firing_for = timedelta(hours=1)
        if case.number % 4 >= 2:
            keep_firing_for = timedelta(seconds=case.keep_seconds)
            del rule["keep_firing_for"]
        base = configs[case.number % 2]
        settings = base.settings.model_copy(update={"keep_firing_for": keep_firing_for})
        config = replace(base, settings=settings, rules=(Rule.model_validate(rule),))
        spec = CaseSpec.model_validate(_bot_case(case, frozenset()))
        every = timedelta(seconds=case.eval_interval)
        result = _Simulation(spec, config, every, jitter=jitter, seed=case.number).run()
        firing[case.number] = _firing_times(case.name, result.messages)
    return firing


def _bot_case(case: Case, firing: Firing) -> dict[str, object]:
    """The case as an incident-bot rule test expecting the alert firing exactly at ``firing``."""
    alert = {"rule": RULE, "model": MODEL, "severity": "P2"}
    return {
        "name": case.name,
        "interval": duration(case.sample_interval),
        "input_series": [{"model": MODEL, "metric": "x", "values": case.notation}],
        "alert_rule_test": [
            {"eval_time": duration(t), "alerts": [alert] if t in firing else []} for t in case.eval_times()
        ],
    }


def rule_test_file(case: Case, firing: Firing, directory: Path) -> Path:
    """What a user runs with ``incident-bot test-rules``: a configuration holding the case's rule
    (``no_data: resolve``) and a rule test file expecting the alert firing exactly at ``firing``."""
    rule = _bot_rule(case.op, case.threshold, case.for_seconds, case.keep_seconds)
    _write_config(directory, "resolve", rule, case.eval_interval)
    path = directory / "rule-tests.yaml"
    path.write_text(yaml.safe_dump({"config_dir": ".", "tests": [_bot_case(case, firing)]}, sort_keys=False))
    return path


_BOT_DIFF = re.compile(r"^at (?P<at>\S+): open alerts differ from the expected ones$")


def _firing_times(name: str, messages: list[str]) -> Firing:
    """The evaluation times of the failed checks. Anything else in the report is a harness error,
    said loudly rather than read as "not firing"."""
    times: set[int] = set()
    for message in messages:
        head, *rest = message.splitlines()
        match = _BOT_DIFF.match(head)
        if match is None or f"  - unexpected {RULE}:{MODEL}" not in rest:
            raise AssertionError(f"{name}: incident-bot's rule test said something unexpected:\n{message}")
        times.add(parse_offset(match["at"]))
    return frozenset(times)


def parse_offset(text: str) -> int:
    """``2m30s`` (as incident-bot and promtool print durations) in whole seconds."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if match is None or not text:
        raise ValueError(f"not a duration: {text!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def service_firing(cases: Iterable[Case], engine: Engine, workdir: Path) -> dict[int, Firing]:
    """The production path for the same cases: samples stored with their timestamps, then
    :meth:`AlertService.evaluate_once` at each tick and the open alerts read back from the
    database (``no_data: resolve``). Each case watches its own model, so one database serves all."""
    base = bot_config(workdir, no_data="resolve")
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)  # a tick of every schedule
    clock = FrozenClock(start)
    firing: dict[int, Firing] = {}
    for case in cases:
        model = f"{MODEL}-{case.number}"
        rule = {**_bot_rule(case.op, case.threshold, case.for_seconds, case.keep_seconds), "models": [model]}
        config = replace(base, rules=(Rule.model_validate(rule),), models={model: Model(name=model)})
        service = AlertService(engine, clock, lambda config=config: config, every_channel(["recording"]))
        every = timedelta(seconds=case.sample_interval)
        service.ingest([(model, "x", start + every * i, v) for i, v in enumerate(case.values) if v is not None])
        times: set[int] = set()
        for t in case.eval_times():
            tick = start + timedelta(seconds=t)
            clock.set(tick)
            service.evaluate_once(at=tick)
            with open_session(engine) as session:
                alert = alert_store.open_alerts(session).get(dedup_key(RULE, model))
            if alert is not None and alert.state is AlertState.FIRING:
                times.add(t)
        firing[case.number] = frozenset(times)
    return firing


# --- promtool ----------------------------------------------------------------------------------


def promtool_files(cases: Iterable[Case], expected: dict[int, Firing], workdir: Path) -> list[Path]:
    """A rule file and a test file per schedule (evaluation and input interval): promtool evaluates
    every rule of a test file in each of its test groups, so a rule never runs where its series is
    absent. Each case's alert is expected firing exactly at its ``expected`` times."""
    by_schedule: dict[tuple[int, int], list[Case]] = defaultdict(list)
    for case in cases:
        by_schedule[(case.eval_interval, case.sample_interval)].append(case)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for (eval_interval, sample_interval), group in sorted(by_schedule.items()):
        stem = f"{duration(eval_interval)}-{duration(sample_interval)}"
        rules = workdir / f"rules-{stem}.yml"
        rules.write_text(json.dumps({"groups": [{"name": "cases", "rules": [_alert(c) for c in group]}]}))
        document = {
            "rule_files": [rules.name],
            "evaluation_interval": duration(eval_interval),
            "tests": [_promtool_test(sample_interval, group, expected)],
        }
        path = workdir / f"test-{stem}.yml"
        path.write_text(json.dumps(document))  # JSON is YAML, and far quicker to write
        paths.append(path)
    return paths


def _alert(case: Case) -> dict[str, str]:
    rule = {"alert": case.name, "expr": case.expr, "for": duration(case.for_seconds)}
    if case.keep_steps:
        rule["keep_firing_for"] = duration(case.keep_seconds)
    return rule


def _promtool_test(
    interval: int, cases: list[Case], expected: dict[int, Firing], shown: Callable[[int], bool] = lambda t: True
) -> dict[str, object]:
    """One promtool test group: the cases' series, and a check at each evaluation time ``shown`` keeps."""
    checks = [
        {
            "eval_time": duration(t),
            "alertname": case.name,
            "exp_alerts": [{"exp_labels": {"case": str(case.number)}}] if t in expected[case.number] else [],
        }
        for case in cases
        for t in case.eval_times()
        if shown(t)
    ]
    return {
        "interval": duration(interval),
        "input_series": [{"series": case.series, "values": case.notation} for case in cases],
        "alert_rule_test": sorted(checks, key=lambda check: parse_offset(str(check["eval_time"]))),
    }


@dataclass(frozen=True)
class PromtoolRun:
    passed: bool
    output: str
    differs: dict[str, dict[int, bool]] = field(default_factory=dict)
    """Per alert name, the evaluation times promtool disagreed at and whether it had the alert firing."""
    said: dict[str, str] = field(default_factory=dict)
    """Per alert name, promtool's own lines about it."""


_FAILED_CHECK = re.compile(r"^\s*alertname: (?P<name>\S+), time: (?P<at>\S+), ?$")


def run_promtool(paths: list[Path]) -> PromtoolRun:
    """``promtool test rules`` over ``paths`` (one invocation); its diff read back per alert and time."""
    done = subprocess.run(
        [str(PROMTOOL), "test", "rules", *(p.name for p in paths)],
        cwd=paths[0].parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = (done.stdout + done.stderr).strip()
    if done.returncode == 0:
        return PromtoolRun(True, output)
    differs: dict[str, dict[int, bool]] = defaultdict(dict)
    said: dict[str, list[str]] = defaultdict(list)
    name, at, in_got = "", 0, False
    for line in output.splitlines():
        match = _FAILED_CHECK.match(line)
        if match:
            name, at, in_got = match["name"], parse_offset(match["at"]), False
            differs[name][at] = False
        elif not name:
            continue
        elif line.strip().startswith("got:"):
            in_got = True
        elif in_got and "Labels:{" in line:
            differs[name][at] = True
        if name:
            said[name].append(line)
    if not differs:
        raise AssertionError(f"promtool failed without a per-alert diff (a malformed file?):\n{output}")
    return PromtoolRun(False, output, dict(differs), {k: "\n".join(v) for k, v in said.items()})


# --- both --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdicts:
    """Each side's firing times per case number, and promtool's diff for the cases it disputed."""

    bot: dict[int, Firing]
    """incident-bot with ``no_data: resolve``: what promtool was asked to confirm."""
    keep: dict[int, Firing]
    """incident-bot with ``no_data: keep``."""
    jittered: dict[int, Firing]
    """incident-bot with ``no_data: resolve``, each pass starting up to :data:`JITTER` of an interval late."""
    prometheus: dict[int, Firing]
    said: dict[int, str]


def differential(cases: list[Case], workdir: Path) -> Verdicts:
    """Both sides over all ``cases``: one promtool run for the lot, then each disputed case alone."""
    bot = bot_firing(cases, workdir, no_data="resolve")
    keep = bot_firing(cases, workdir, no_data="keep")
    jittered = bot_firing(cases, workdir, no_data="resolve", jitter=JITTER)
    batch = run_promtool(promtool_files(cases, bot, workdir / "promtool"))
    prometheus = dict(bot)
    said: dict[int, str] = {}
    disputed = [case for case in cases if case.name in batch.differs]
    for i, case in enumerate(disputed):
        differs, said[case.number] = batch.differs[case.name], batch.said[case.name]
        if i < ISOLATE_AT_MOST:
            alone = run_promtool(promtool_files([case], bot, workdir / "alone" / case.name))
            if alone.passed:
                raise AssertionError(f"{case.name} fails in the batch but passes alone:\n{batch.said[case.name]}")
            differs, said[case.number] = alone.differs[case.name], alone.said[case.name]
        prometheus[case.number] = frozenset(
            t for t in case.eval_times() if (differs[t] if t in differs else t in bot[case.number])
        )
    return Verdicts(bot, keep, jittered, prometheus, said)


def keep_problems(case: Case, keep: Firing, prometheus: Firing) -> list[str]:
    """With ``no_data: keep`` the one allowed difference from Prometheus is a firing alert that
    outlives its silent series: incident-bot may have the alert firing where Prometheus does not
    only once that firing has lasted through an evaluation with no data, and only until the data
    has said "clear" for ``keep_firing_for`` (counted from the first clear value; silence is not
    clear under ``keep``). Prometheus firing while incident-bot is not is never allowed."""
    problems: list[str] = []
    outlived = False  # the current firing of incident-bot's alert has lasted through silence
    clear_since: int | None = None
    for t in case.eval_times():
        seen = case.seen_at(t)
        outlived = t in keep and (outlived or seen is None)
        if seen is not None:
            holds = OPERATORS[case.op](seen, case.threshold)
            clear_since = None if holds else t if clear_since is None else clear_since
        if t in prometheus and t not in keep:
            problems.append(f"at {duration(t)}: Prometheus has the alert firing, incident-bot (keep) does not")
        elif t in keep and t not in prometheus and not outlived:
            problems.append(f"at {duration(t)}: incident-bot (keep) fires, Prometheus does not, no silence explains it")
        elif t in keep and t not in prometheus and clear_since is not None and t - clear_since >= case.keep_seconds:
            problems.append(
                f"at {duration(t)}: incident-bot (keep) still fires, the data said clear at {duration(clear_since)}"
                + (f" and keep_firing_for ({duration(case.keep_seconds)}) is over" if case.keep_steps else "")
            )
    return problems


def explain(case: Case, ours: Firing, theirs: Firing, ours_label: str = "incident-bot") -> str:
    """The case in promtool notation and, per evaluation, the value seen and each side's answer;
    then a rule file and a test file that pass under promtool (Prometheus' answer), to paste."""
    lines = [case.describe(), f"  {'eval_time':>9}  {'x':>6}  {'prometheus':<10}  {ours_label}"]
    for t in case.eval_times():
        seen = case.seen_at(t)
        mark = "   <- differs" if (t in ours) != (t in theirs) else ""
        lines.append(
            f"  {duration(t):>9}  {'-' if seen is None else number(seen):>6}  "
            f"{'firing' if t in theirs else '.':<10}  {'firing' if t in ours else '.'}{mark}"
        )
    times = list(case.eval_times())
    telling = {t for i, t in enumerate(times) if i == 0 or (t in theirs) != (times[i - 1] in theirs)}
    telling |= {t for t in times if (t in ours) != (t in theirs)}
    rules = {"groups": [{"name": "case", "rules": [_alert(case)]}]}
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": duration(case.eval_interval),
        "tests": [_promtool_test(case.sample_interval, [case], {case.number: theirs}, telling.__contains__)],
    }
    lines += ["  # rules.yml", *_indented(rules)]
    lines += ["  # test.yml: passes under promtool (checked where its answer changes and where the two differ)"]
    lines += _indented(test)
    return "\n".join(lines)


def _indented(document: dict[str, object]) -> list[str]:
    return ["    " + line for line in yaml.safe_dump(document, sort_keys=False, width=200).splitlines()]


def main() -> int:
    """``python -m tests.rule_tests.differential --seed 7 --count 5000``: explore past CI's cases;
    prints each disagreement as the tests would and exits 1 if there is any."""
    import argparse
    import tempfile

    from tests.rule_tests.generate import generate

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    cases = generate(args.seed, args.count)
    with tempfile.TemporaryDirectory() as workdir:
        verdicts = differential(cases, Path(workdir))
    sides = {"no_data: resolve": verdicts.bot, "no_data: keep": verdicts.keep, "jittered": verdicts.jittered}
    found = 0
    for case in cases:
        theirs = verdicts.prometheus[case.number]
        for what, side in sides.items():
            ours = side[case.number]
            if keep_problems(case, ours, theirs) if what == "no_data: keep" else ours != theirs:
                found += 1
                print(f"--- {what}\n{explain(case, ours, theirs, f'incident-bot ({what})')}\n")
    print(f"{len(cases)} cases (seed {args.seed}): {found} disagreements")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
