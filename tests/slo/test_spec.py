"""SloSpec: built from rules/, validated, and telling the service what to fetch."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config.loader import Config
from bot.config.slo_schema import Slo
from bot.slo.spec import SloSpec, spec_from_config
from tests.slo.helpers import DAY, MIN


def test_shipped_slos_adapt_with_defaults(config: Config) -> None:
    specs = [spec_from_config(slo, stale_after=config.settings.stale_after) for slo in config.slos]
    assert {(s.model, s.metric) for s in specs} >= {("support-bot", "response_time_p95_ms")}
    for spec in specs:
        assert spec.absent_after == spec.stale_after == config.settings.stale_after
        if spec.kind == "threshold":
            assert spec.allowed_bad_fraction == pytest.approx(0.01)  # default target_compliance 0.99
            assert spec.metrics == (spec.metric,)
    ratio = next(s for s in specs if s.kind == "ratio")
    assert (ratio.label, ratio.metrics) == ("availability", ("responses_ok", "responses_total"))
    assert ratio.allowed_bad_fraction == pytest.approx(0.005)


def test_the_schema_keys_are_read_when_present() -> None:
    slo = Slo.model_validate(
        {
            "model": "api",
            "kind": "ratio",
            "good_metric": "requests_ok",
            "total_metric": "requests_total",
            "objective": "above 0.995",
            "warning": 0.99,
            "critical": 0.95,
            "window": "28d",
            "min_events": 0,
            "absent_after": "1h",
        }
    )
    spec = spec_from_config(slo)
    assert (spec.kind, spec.metrics, spec.sli_metric) == ("ratio", ("requests_ok", "requests_total"), "requests_total")
    assert spec.metric == "requests_ok_ratio"  # a ratio SLO's label defaults from its good metric
    assert spec.window == 28 * DAY
    assert spec.allowed_bad_fraction == pytest.approx(0.005)  # 1 − 0.995
    assert spec.min_events == 0  # an explicit 0 is kept, not replaced by the default
    assert spec.absent_after == timedelta(hours=1)
    assert spec.key == "api:requests_ok_ratio"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "ratio"}, "needs total_metric and good_metric or bad_metric"),
        ({"kind": "ratio", "good_metric": "ok", "total_metric": "all", "direction": "below"}, "above <ratio>"),
        ({"kind": "ratio", "bad_metric": "err", "total_metric": "all", "direction": "above"}, "below <ratio>"),
        ({"kind": "quotient", "numerator_metric": "cost_usd"}, "needs numerator_metric and denominator_metric"),
        ({"target_compliance": 1.0}, "strictly between 0 and 1"),
        ({"window": timedelta(0)}, "window must be positive"),
    ],
)
def test_invalid_specs_are_refused(changes: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "model": "m",
        "metric": "x",
        "direction": "above",
        "target": 0.9,
        "warning": 0.8,
        "critical": 0.7,
    }
    with pytest.raises(ValueError, match=message):
        SloSpec(**{**base, **changes})  # type: ignore[arg-type]


def test_history_needed_adds_one_stale_after() -> None:
    # the sample current when the window opens may be up to stale_after (15 min) older than the window
    spec = SloSpec("m", "x", "below", 1, 2, 3)
    assert spec.history_needed() == 7 * DAY + 15 * MIN
    assert spec.history_needed(30 * DAY) == 30 * DAY + 15 * MIN
    assert spec.history_needed(DAY) == 7 * DAY + 15 * MIN
