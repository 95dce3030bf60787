"""Loading a rule test file and its configuration, then running every case."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config.defaults import default_config_dir
from bot.config.loader import Config, load_config
from bot.config.yaml_lines import LocatedDocument, YamlProblem, load_located
from bot.errors import ConfigError, ConfigProblem
from bot.rule_tests.results import RuleTestReport
from bot.rule_tests.simulation import _Simulation
from bot.rule_tests.spec import _KEYS, FileSpec
from bot.settings import Settings

# --- loading -----------------------------------------------------------------------------------


def run_rule_tests(
    path: Path, *, config_dir: Path | None = None, jitter: float = 0.0, seed: int = 0
) -> RuleTestReport:
    """Run every test of the file at ``path``. Raises :class:`ConfigError` if the file (or the
    configuration it tests) is malformed; a failing expectation is a failed case, not an error.

    ``jitter`` (0 to 0.9 of the interval) starts each pass late by a random amount (``seed``), as
    a busy machine would: the answers must be the same, because passes are judged as of their tick."""
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter is a fraction of the evaluation interval, from 0 up to (not including) 1")
    shown = str(path)
    try:
        doc = load_located(Path(path).read_text(encoding="utf-8"))
    except YamlProblem as exc:
        raise ConfigError([ConfigProblem(shown, exc.line, str(exc))]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(shown, None, f"cannot read test file: {exc}")]) from None
    if not isinstance(doc.data, dict):
        raise ConfigError([ConfigProblem(shown, 1, "the top level must be a mapping with a tests: list")])
    try:
        spec = FileSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError([_problem_from(error, shown, doc) for error in exc.errors()]) from None
    config = _load_tested_config(spec, Path(path), config_dir, shown, doc)
    problems = _check_names(spec, config, shown, doc)
    if problems:
        raise ConfigError(problems)
    interval = spec.evaluation_interval or config.settings.evaluation_interval
    results = [_Simulation(case, config, interval, jitter=jitter, seed=seed).run() for case in spec.tests]
    return RuleTestReport(Path(path), results)


def _load_tested_config(spec: FileSpec, path: Path, given: Path | None, shown: str, doc: LocatedDocument) -> Config:
    if spec.config_dir is not None:
        directory = (path.parent / spec.config_dir).resolve()
    elif given is not None:
        directory = given
    else:
        directory = default_config_dir(Settings())
    try:
        return load_config(directory)
    except ConfigError as exc:
        head = ConfigProblem(shown, doc.line_of(("config_dir",)), f"the configuration in {directory} does not load:")
        raise ConfigError([head, *exc.problems]) from None


def _problem_from(error: Mapping[str, Any], shown: str, doc: LocatedDocument) -> ConfigProblem:
    loc = tuple(error["loc"])
    line = doc.line_of(loc)
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), _KEYS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "remove it"
        if loc[-1] in _KEYS:
            hint = "it does not belong here; check its indentation"
        return ConfigProblem(shown, line, f"{_where(loc)}: unknown key; {hint}")
    if error["type"] == "missing":
        return ConfigProblem(shown, line, f"{_where(loc)}: required key is missing; add it")
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["type"].startswith("value_error"):
        message = f"{message} (got {error.get('input')!r})"
    return ConfigProblem(shown, line, f"{_where(loc)}: {message}")


def _where(loc: tuple[Any, ...]) -> str:
    """``tests[0].input_series[1].values``: the path a reader can follow in the file."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return text or "file"


def _check_names(spec: FileSpec, config: Config, shown: str, doc: LocatedDocument) -> list[ConfigProblem]:
    """Names the configuration does not know are mistakes in the test, not failures of a rule."""
    problems: list[ConfigProblem] = []
    rules = config.alert_rules()

    def unknown(kind: str, name: str, known: list[str], loc: tuple[Any, ...]) -> None:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known)) or 'none'}"
        problems.append(ConfigProblem(shown, doc.line_of(loc), f"{_where(loc)}: {kind} {name!r} is unknown; {hint}"))

    def check(model: str, rule: str | None, loc: tuple[Any, ...]) -> None:
        if model not in config.models and not config.settings.accept_unknown_models:
            unknown("model", model, list(config.models), (*loc, "model"))
        if rule is not None and rule not in rules:
            unknown("rule", rule, rules, (*loc, "rule"))

    for c, case in enumerate(spec.tests):
        seen: set[tuple[str, str]] = set()
        for i, series in enumerate(case.input_series):
            loc = ("tests", c, "input_series", i)
            check(series.model, None, loc)
            if (series.model, series.metric) in seen:
                message = f"{_where(loc)}: {series.metric} of {series.model} is given twice; merge the series"
                problems.append(ConfigProblem(shown, doc.line_of(loc), message))
            seen.add((series.model, series.metric))
        for i, action in enumerate(case.actions):
            check(action.model, action.rule, ("tests", c, "actions", i))
        for k, expect in enumerate(case.alert_rule_test):
            for i, alert in enumerate(expect.alerts or []):
                check(alert.model, alert.rule, ("tests", c, "alert_rule_test", k, "alerts", i))
    return problems
