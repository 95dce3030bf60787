"""Windowed terms over pulled metrics become PromQL (issue 20, point 2): the text Prometheus is
asked, and which terms, for which models, it answers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config.loader import Config, load_config
from bot.config.promql_windows import has_promql_form, promql_duration, pulled_terms, term_promql, term_queries
from bot.config.windows import WindowTerm

QUERY = 'max by (model) (helpfulness_score{model=~"{shard}"})'
STEP = timedelta(seconds=30)
STALE = timedelta(minutes=15)


def term(function: str, window: timedelta, phi: float | None = None) -> WindowTerm:
    return WindowTerm(function, "helpfulness", window, f"{function}_helpfulness", phi)


@pytest.mark.parametrize(
    ("duration", "written"),
    [
        (timedelta(hours=1), "1h"),
        (timedelta(minutes=90), "90m"),
        (timedelta(days=1), "1d"),
        (timedelta(weeks=2), "2w"),
        (timedelta(seconds=30), "30s"),
        (timedelta(milliseconds=1500), "1500ms"),
    ],
)
def test_a_duration_is_written_in_the_largest_unit_that_divides_it(duration: timedelta, written: str) -> None:
    assert promql_duration(duration) == written


def test_a_zero_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than 0s"):
        promql_duration(timedelta(0))


@pytest.mark.parametrize("function", ["avg_over_time", "min_over_time", "max_over_time", "sum_over_time"])
def test_an_over_time_term_is_the_function_over_a_subquery_stepped_at_the_pull_interval(function: str) -> None:
    text = term_promql(term(function, timedelta(hours=1)), QUERY, step=STEP, stale_after=STALE)
    assert text == f'{function}((max by (model) (helpfulness_score{{model=~"{{shard}}"}}))[1h:30s])'


def test_count_rate_and_quantile_keep_their_promql_names() -> None:
    five = timedelta(minutes=5)
    assert term_promql(term("count_over_time", five), "up", step=STEP, stale_after=STALE) == (
        "count_over_time((up)[5m:30s])"
    )
    assert term_promql(term("rate", five), "errors", step=STEP, stale_after=STALE) == "rate((errors)[5m:30s])"
    assert term_promql(
        term("quantile_over_time", five, 0.95), "lat", step=timedelta(seconds=15), stale_after=STALE
    ) == ("quantile_over_time(0.95, (lat)[5m:15s])")


def test_ago_is_the_last_value_within_stale_after_of_that_long_ago() -> None:
    text = term_promql(term("ago", timedelta(days=1)), "predictions", step=STEP, stale_after=STALE)
    assert text == "last_over_time((predictions)[15m:30s] offset 1d)"


def test_delta_has_no_exact_promql_form() -> None:
    with pytest.raises(ValueError, match="stored samples"):
        term_promql(term("delta", timedelta(hours=1)), "x", step=STEP, stale_after=STALE)


def test_a_term_without_an_exact_promql_form_stays_on_stored_samples() -> None:
    long_name = WindowTerm("avg_over_time", "m" * 90, timedelta(hours=1), "avg_over_time_" + "m" * 90 + "_1h")

    assert not has_promql_form(term("delta", timedelta(hours=1)), stale_after=STALE)
    assert not has_promql_form(long_name, stale_after=STALE)  # metric_latest names hold 100 characters
    assert not has_promql_form(term("ago", timedelta(days=1)), stale_after=timedelta(0))
    assert has_promql_form(term("ago", timedelta(days=1)), stale_after=STALE)


def configured(tmp_path: Path, queries: str, conditions: list[str]) -> Config:
    """Three models, one rule per condition, and a ``prometheus:`` section of ``queries``."""
    root = tmp_path / "config"
    (root / "rules").mkdir(parents=True)
    (root / "runbooks").mkdir()
    (root / "runbooks" / "default.md").write_text("# {model}\n")
    rules = "".join(
        f"  - {{name: r{n}, condition: '{condition}', severity: P3, title: t}}\n"
        for n, condition in enumerate(conditions)
    )
    (root / "rules" / "all.yaml").write_text(
        "models:\n  - {name: alpha}\n  - {name: bravo}\n  - {name: charlie}\n"
        "metrics:\n  - {name: pushed}\n"
        f"rules:\n{rules}"
        f"prometheus:\n  interval: 30s\n  queries:\n{queries}",
        encoding="utf-8",
    )
    return load_config(root)


FLEET = "    - {model: '*', metric: lat, query: 'max by (model) (lat_ms)'}\n"
ONE_EACH = (
    "    - {model: alpha, metric: lat, query: 'max(lat_ms{model=\"alpha\"})'}\n"
    "    - {model: bravo, metric: lat, query: 'max(lat_ms{model=\"bravo\"})'}\n"
)


def test_a_fleet_query_answers_its_metrics_terms_for_every_model_but_delta(tmp_path: Path) -> None:
    config = configured(
        tmp_path,
        FLEET,
        [
            'avg_over_time(lat, "1h") > 1',
            'delta(lat, "1h") > 1',
            'ago(lat, "1d") > 1',
            'max_over_time(pushed, "5m") > 1',
        ],
    )
    pulled = pulled_terms(config)

    assert set(pulled.queries) == {"avg_over_time_lat_1h", "ago_lat_1d"}
    assert pulled.everywhere("avg_over_time_lat_1h") and not pulled.everywhere("delta_lat_1h")
    assert pulled.answered_for("charlie") == {"avg_over_time_lat_1h", "ago_lat_1d"}


def test_one_model_queries_answer_only_for_their_models(tmp_path: Path) -> None:
    pulled = pulled_terms(configured(tmp_path, ONE_EACH, ['avg_over_time(lat, "1h") > 1']))

    assert pulled.answered_for("alpha") == {"avg_over_time_lat_1h"}
    assert pulled.answered_for("charlie") == frozenset()  # it may push lat: its samples decide
    assert not pulled.everywhere("avg_over_time_lat_1h")


def test_a_model_with_its_own_query_also_gets_the_fleets_terms(tmp_path: Path) -> None:
    own = "    - {model: alpha, metric: cost, query: 'sum(cost_usd)'}\n"
    pulled = pulled_terms(
        configured(tmp_path, FLEET + own, ['avg_over_time(lat, "1h") > 1 or max_over_time(cost, "1d") > 9'])
    )

    assert pulled.answered_for("alpha") == {"avg_over_time_lat_1h", "max_over_time_cost_1d"}
    assert pulled.answered_for("bravo") == {"avg_over_time_lat_1h"}


def test_each_query_of_the_metric_becomes_a_term_query_stored_under_the_terms_name(tmp_path: Path) -> None:
    config = configured(tmp_path, ONE_EACH, ['avg_over_time(lat, "1h") > 1 and delta(lat, "1h") > 0'])

    asked = [(q.model, q.metric, q.query) for q in term_queries(config)]

    assert asked == [
        ("alpha", "avg_over_time_lat_1h", 'avg_over_time((max(lat_ms{model="alpha"}))[1h:30s])'),
        ("bravo", "avg_over_time_lat_1h", 'avg_over_time((max(lat_ms{model="bravo"}))[1h:30s])'),
    ]


def test_a_term_written_in_two_rules_is_asked_once(tmp_path: Path) -> None:
    config = configured(tmp_path, FLEET, ['avg_over_time(lat, "1h") > 1', 'avg_over_time(lat, "1h") < 0'])

    assert [q.query for q in term_queries(config)] == ["avg_over_time((max by (model) (lat_ms))[1h:30s])"]


def test_without_a_prometheus_section_nothing_is_asked(config: Config) -> None:
    assert config.prometheus is None
    assert pulled_terms(config).queries == {} and term_queries(config) == []
