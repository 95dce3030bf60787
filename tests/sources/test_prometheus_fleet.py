"""10,000 models × 20 metrics pulled from a real Prometheus (200,000 series): every value is
stored, and exactly the breaching set fires (issue 20, point 1: a pull has no size limit).

The exporter serves one gauge per model and metric; 1% of the models breach one metric each.
Before bounded chunks, such a pull failed whole (``too many SQL variables`` on SQLite, a
parameter count over 65,535 on PostgreSQL) and nothing alerted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.alerts import store as alert_store
from bot.clock import SystemClock
from bot.config.loader import load_config
from bot.metrics import store as metric_store
from bot.service import AlertService, every_channel
from bot.sources.prometheus import PrometheusPuller
from bot.storage.database import session as open_session
from tests.sources.helpers import PROMETHEUS, Exporter, require_binary, running_prometheus, wait_until
from tests.sources.test_prometheus_real import _series

MODELS = [f"m-{n:05d}" for n in range(10_000)]
METRICS = [f"g{k:02d}" for k in range(20)]
BREACHING = {(model, METRICS[n % 20]) for n, model in enumerate(MODELS) if n % 100 == 7}  # 1%: 100 models


def fleet_config(root: Path) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "runbooks").mkdir()
    (root / "runbooks" / "default.md").write_text("# {model}\n")
    rules = "".join(
        f"  - {{name: high_{m}, condition: {m} > 100, severity: P3, title: '{m} on {{model}}', cooldown: 0s}}\n"
        for m in METRICS
    )
    queries = "".join(f"    - {{model: '*', metric: {m}, query: 'max by (model) (fleet_{m})'}}\n" for m in METRICS)
    (root / "rules" / "fleet.yaml").write_text(
        "settings:\n  accept_unknown_models: true\n  storm_threshold: 1000\n"
        "metrics:\n" + "".join(f"  - {{name: {m}}}\n" for m in METRICS) + "rules:\n" + rules
        + "prometheus:\n  interval: 30s\n  timeout: 20s\n  queries:\n" + queries
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_binary(PROMETHEUS)
    tmp = tmp_path_factory.mktemp("fleet")
    with Exporter() as exporter:
        for n, model in enumerate(MODELS):
            for metric in METRICS:
                exporter.set(f'fleet_{metric}{{model="{model}"}}', 500.0 if (model, metric) in BREACHING else n % 50)
        with running_prometheus(tmp, exporter, scrape="5s", job="fleet") as url:
            wait_until(lambda: _series(url, "fleet_g19") == len(MODELS), timeout=60, what="the first full scrape")
            yield url


def test_a_pull_of_200_000_series_is_stored_whole_and_fires_exactly_the_breaching_set(
    prometheus: str, engine: Engine, tmp_path: Path
) -> None:
    config = load_config(fleet_config(tmp_path / "config"))
    clock = SystemClock()
    service = AlertService(engine, clock, lambda: config, every_channel(["recording"]))
    puller = PrometheusPuller(prometheus, lambda: config, service.ingest, clock)

    outcomes = puller.run_once()

    assert [o.error for o in outcomes if o.error] == []
    assert sum(len(o.values) for o in outcomes) == 200_000
    with open_session(engine) as s:
        latest = metric_store.latest(s)
    assert sum(len(metrics) for metrics in latest.values()) == 200_000
    service.evaluate_once()
    with open_session(engine) as s:
        fired = {(a.model, a.rule.removeprefix("high_")) for a in alert_store.open_alerts(s).values()}
    assert fired == BREACHING
