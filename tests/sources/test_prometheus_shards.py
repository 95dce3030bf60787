"""A fleet-wide query too big for one answer is asked again in shards of model names (issue 20,
point 5): over ``prometheus.max_series`` series, or refused by the store, then merged."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.clock import FrozenClock
from bot.config.loader import ConfigError, load_config
from bot.sources.prometheus import PrometheusPuller, Pulled
from bot.sources.prometheus_shards import SHARDS, WHOLE, splits, with_shard
from tests.sources.helpers import (
    NOW,
    PROMETHEUS,
    Exporter,
    require_binary,
    running_prometheus,
    wait_until,
)
from tests.sources.test_prometheus_client import FakePrometheus, Recorder, failure, vector
from tests.sources.test_prometheus_real import _series

TEMPLATE = 'max by (model) (lat{model=~"{shard}"})'
MODELS = ["alpha", "Avalon", "bravo", "charlie", "delta", "echo", "foxtrot", "9lives"]


def section(max_series: str = "  max_series: 5\n", template: str = TEMPLATE) -> str:
    return (
        "settings:\n  accept_unknown_models: true\n"
        "prometheus:\n  interval: 5s\n  timeout: 2s\n" + max_series
        + f"  queries:\n    - {{model: '*', metric: p99_latency_ms, query: '{template}'}}\n"
    )  # fmt: skip


def answers_by_shard(models: list[str]) -> dict[str, tuple[int, object, float]]:
    """What a store would answer for the whole query and for each shard."""
    answers: dict[str, tuple[int, object, float]] = {}
    for shard in (WHOLE, *SHARDS):
        matching = [m for m in models if re.fullmatch(shard, m)]
        answers[with_shard(TEMPLATE, shard)] = (200, vector(*(({"model": m}, str(len(m))) for m in matching)), 0)
    return answers


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    server = FakePrometheus({})
    yield server
    server.close()


def own_config(root: Path, text: str) -> Path:
    """A configuration of this section alone (the models come from the answers)."""
    (root / "rules").mkdir(parents=True)
    (root / "runbooks").mkdir()
    (root / "rules" / "sources.yaml").write_text(text, encoding="utf-8")
    return root


def pull(fake: FakePrometheus, tmp_path: Path, text: str) -> tuple[Pulled, list[str]]:
    config = load_config(own_config(tmp_path / "config", text))
    recorder = Recorder()
    [outcome] = PrometheusPuller(fake.url, lambda: config, recorder, FrozenClock(NOW)).run_once()
    return outcome, [request["query"][0] for request in fake.requests]


def test_shards_cover_every_model_name_once() -> None:
    names = ["0x", "9lives", "alpha", "Alpha", "zulu", "Zed", "m-00042", "q.1"]
    for name in names:
        assert sum(bool(re.fullmatch(shard, name)) for shard in SHARDS) == 1, name


def test_an_answer_over_max_series_is_asked_again_in_shards_and_merged(fake: FakePrometheus, tmp_path: Path) -> None:
    fake.answers.update(answers_by_shard(MODELS))

    outcome, asked = pull(fake, tmp_path, section())

    assert outcome.error is None
    assert outcome.values == {m: float(len(m)) for m in MODELS}
    assert outcome.notes[0] == "asked in 27 shards: 8 series, over max_series 5"
    assert asked[0] == 'max by (model) (lat{model=~".*"})' and len(asked) == 1 + len(SHARDS)
    assert 'max by (model) (lat{model=~"[aA].*"})' in asked


def test_a_refused_whole_answer_is_asked_in_shards(fake: FakePrometheus, tmp_path: Path) -> None:
    fake.answers.update(answers_by_shard(MODELS))
    fake.answers[with_shard(TEMPLATE, WHOLE)] = (422, failure("execution", "too many samples"), 0)

    outcome, _ = pull(fake, tmp_path, section())

    assert outcome.error is None and len(outcome.values) == len(MODELS)
    assert "too many samples" in outcome.notes[0]


def test_a_failing_shard_fails_the_query_rather_than_lose_part_of_the_fleet(
    fake: FakePrometheus, tmp_path: Path
) -> None:
    fake.answers.update(answers_by_shard(MODELS))
    fake.answers[with_shard(TEMPLATE, "[dD].*")] = (503, failure("timeout", "query timed out"), 0)

    outcome, _ = pull(fake, tmp_path, section())

    assert outcome.values == {}
    assert outcome.error is not None and "a shard failed" in outcome.error and "query timed out" in outcome.error


def test_without_max_series_a_big_answer_is_kept_whole(fake: FakePrometheus, tmp_path: Path) -> None:
    fake.answers.update(answers_by_shard(MODELS))

    outcome, asked = pull(fake, tmp_path, section(max_series=""))

    assert len(outcome.values) == len(MODELS) and asked == ['max by (model) (lat{model=~".*"})']
    assert not splits(TEMPLATE.replace("{shard}", ".*"), max_series=5, series=99, error=None), "no placeholder"


@pytest.mark.parametrize(
    ("error", "split"),
    [
        ("Prometheus refused the query (execution): query processing would load too many samples", True),
        ("Prometheus refused the query (execution): the query exceeded the maximum number of series", True),
        ("Prometheus refused the query (bad_data): 1:6: parse error: unexpected <EOF>", False),
        ("no answer within 10 s (the section's timeout); no data this time", False),
        ("Prometheus refused the query (HTTP 401): unauthorized", False),
    ],
)
def test_only_a_refusal_for_size_is_asked_again_in_shards(error: str, split: bool) -> None:
    assert splits(TEMPLATE, max_series=5, series=0, error=error) is split


def test_a_shard_placeholder_needs_a_query_over_every_model(tmp_path: Path) -> None:
    text = section().replace("model: '*'", "model: support-bot")
    with pytest.raises(ConfigError, match=r'\{shard\} splits a query over many models; it needs model: "\*"'):
        load_config(own_config(tmp_path, text))


def test_a_real_prometheus_refusing_the_whole_query_answers_its_shards(tmp_path: Path) -> None:
    """``--query.max-samples=40`` makes Prometheus refuse a query over 60 series; each shard reads fewer."""
    require_binary(PROMETHEUS)
    models = [f"{letter}{n}" for letter in "abcdefghijkl" for n in range(5)]
    with Exporter() as exporter:
        for n, model in enumerate(models):
            exporter.set(f'lat{{model="{model}"}}', float(n))
        with running_prometheus(tmp_path, exporter, flags=("--query.max-samples=40",)) as url:
            # a scrape is atomic: once one model's series is there, all are (asking for all 60 would be refused)
            wait_until(lambda: _series(url, 'lat{model="l4"}') == 1, timeout=20, what="the first scrape")
            config = load_config(own_config(tmp_path / "config", section(max_series="  max_series: 1000\n")))
            recorder = Recorder()
            [outcome] = PrometheusPuller(url, lambda: config, recorder, FrozenClock(NOW)).run_once()

    assert outcome.error is None, outcome.error
    assert "too many samples" in outcome.notes[0]
    assert outcome.values == {model: float(n) for n, model in enumerate(models)}
