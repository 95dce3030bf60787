"""The push-ingest parser: every rejection names the item and field, every happy path yields points."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.errors import IncidentBotError
from bot.metrics.ingest import IngestError, parse_batch

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
KNOWN = ("fraud-detector-v2", "support-bot")


def parse(body: bytes | str | Any, *, accept_unknown: bool = False, max_items: int = 10_000) -> list[Any]:
    if isinstance(body, str):
        raw = body.encode()
    elif isinstance(body, bytes):
        raw = body
    else:
        raw = json.dumps(body).encode()
    return parse_batch(raw, known_models=KNOWN, accept_unknown=accept_unknown, now=NOW, max_items=max_items)


def rejected(body: bytes | str | Any, **kwargs: Any) -> str:
    with pytest.raises(IngestError) as info:
        parse(body, **kwargs)
    assert info.value.status == 422
    return info.value.message


def item(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": "fraud-detector-v2", "metrics": {"p99_latency_ms": 6100}}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


# --- happy paths -------------------------------------------------------------------------------


def test_single_object_defaults_timestamp_to_now() -> None:
    assert parse(item()) == [("fraud-detector-v2", "p99_latency_ms", NOW, 6100.0)]


def test_list_of_objects_gives_one_point_per_metric() -> None:
    points = parse(
        [
            item(metrics={"p99_latency_ms": 6100, "current_accuracy": 0.93}),
            item(model="support-bot", metrics={"daily_cost_usd": 12.5}),
        ]
    )
    assert points == [
        ("fraud-detector-v2", "p99_latency_ms", NOW, 6100.0),
        ("fraud-detector-v2", "current_accuracy", NOW, 0.93),
        ("support-bot", "daily_cost_usd", NOW, 12.5),
    ]
    assert all(isinstance(p[3], float) for p in points)


def test_labels_become_text_points() -> None:
    points = parse(item(labels={"top_drifted_features": "age,income"}))
    assert ("fraud-detector-v2", "top_drifted_features", NOW, "age,income") in points
    assert len(points) == 2


def test_explicit_timestamp_with_offset_is_converted_to_utc() -> None:
    [(_, _, at, _)] = parse(item(timestamp="2026-01-05T10:30:00+02:00"))
    assert at == datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    assert at.utcoffset() == timedelta(0)


def test_timestamp_with_z_suffix_and_small_future_skew_is_accepted() -> None:
    [(_, _, at, _)] = parse(item(timestamp="2026-01-05T09:04:59Z"))
    assert at == NOW + timedelta(minutes=4, seconds=59)


def test_unknown_model_is_accepted_when_configured() -> None:
    [(model, *_)] = parse(item(model="new-model.v3"), accept_unknown=True)
    assert model == "new-model.v3"


def test_negative_zero_and_large_finite_numbers_are_fine() -> None:
    points = parse(item(metrics={"a": -1, "b": 0, "c": 1.5e300, "d": 10**300}))
    assert [p[3] for p in points] == [-1.0, 0.0, 1.5e300, 1e300]


def test_leading_bom_is_tolerated() -> None:
    assert parse(b"\xef\xbb\xbf" + json.dumps(item()).encode())


def test_error_is_an_incident_bot_error() -> None:
    assert issubclass(IngestError, IncidentBotError)
    err = IngestError(422, "nope")
    assert (err.status, err.message, str(err)) == (422, "nope", "nope")


# --- body-level rejections ---------------------------------------------------------------------


def test_invalid_json_names_line_and_column() -> None:
    message = rejected('{\n  "model": "fraud-detector-v2",\n  "metrics": {"x": }\n}')
    assert "invalid JSON" in message
    assert "line 3" in message
    assert "column 20" in message  # the "}" where a value belongs


def test_not_utf8() -> None:
    assert "UTF-8" in rejected(b'{"model": "\xff"}')


def test_empty_body() -> None:
    assert "empty body" in rejected(b"  ")


@pytest.mark.parametrize("body", ["42", '"text"', "null", "true"])
def test_not_an_object_or_list(body: str) -> None:
    assert "must be a JSON object or a list of objects" in rejected(body)


def test_empty_list() -> None:
    assert "empty list" in rejected("[]")


def test_too_many_items() -> None:
    message = rejected([item()] * 4, max_items=3)
    assert "too many items: 4" in message
    assert "limit is 3" in message


def test_list_entry_not_an_object() -> None:
    assert "item 1: must be an object" in rejected([item(), 7])


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals(literal: str) -> None:
    message = rejected('{"model": "fraud-detector-v2", "metrics": {"x": ' + literal + "}}")
    assert literal in message
    assert "not a number" in message


def test_finite_overflow_is_rejected() -> None:
    message = rejected('{"model": "fraud-detector-v2", "metrics": {"x": 1e999}}')
    assert "item 0: field 'metrics.x'" in message
    assert "too large" in message


def test_huge_integer_is_rejected_without_python_advice() -> None:
    message = rejected('{"model": "fraud-detector-v2", "metrics": {"x": ' + "9" * 5000 + "}}")
    assert "5000 digits" in message
    assert "sys." not in message
    assert "too large" in rejected(item(metrics={"x": 10**400}))


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deep_nesting_does_not_crash(depth: int) -> None:
    assert "nested too deeply" in rejected("[" * depth + "]" * depth)
    assert "nested too deeply" in rejected('{"a":' * depth + "1" + "}" * depth)


def test_duplicate_keys_are_rejected() -> None:
    message = rejected('{"model": "fraud-detector-v2", "model": "support-bot", "metrics": {"x": 1}}')
    assert "duplicate key" in message
    assert '"model"' in message


# --- item-level rejections ---------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_right_one() -> None:
    message = rejected(item(metircs={"x": 1}))
    assert 'item 0: unknown key "metircs"' in message
    assert "did you mean 'metrics'" in message


def test_unknown_top_level_key_lists_allowed_keys() -> None:
    assert "allowed keys: model, metrics, labels, timestamp" in rejected(item(zzz=1))


def test_missing_model() -> None:
    assert "item 0: field 'model' is missing" in rejected(item(model=...))


@pytest.mark.parametrize("model", ["", "   "])
def test_empty_model(model: str) -> None:
    assert "item 0: field 'model' is empty" in rejected(item(model=model))


@pytest.mark.parametrize(("model", "kind"), [(3, "number"), (None, "null"), (["a"], "list"), (True, "boolean")])
def test_model_not_a_string(model: Any, kind: str) -> None:
    assert f"item 0: field 'model' must be a string, got {kind}" in rejected(item(model=model))


def test_unknown_model_lists_known_models_and_the_way_out() -> None:
    message = rejected([item(), item(model="fraud-detector-v3")])
    assert "item 1: field 'model': unknown model \"fraud-detector-v3\"" in message
    assert "known models: fraud-detector-v2, support-bot" in message
    assert "did you mean 'fraud-detector-v2'" in message
    assert "accept_unknown_models" in message


def test_an_unknown_model_in_a_fleet_lists_some_known_models_and_how_many_more() -> None:
    fleet = {f"model-{i:05d}": None for i in range(10_000)}
    body = json.dumps([{"model": "model-1234", "metrics": {"x": 1}}] * 10_000)

    with pytest.raises(IngestError) as refused:
        parse_batch(body.encode(), known_models=fleet.keys(), accept_unknown=False, now=NOW)

    message = str(refused.value)
    assert "item 0: field 'model': unknown model \"model-1234\"; did you mean 'model-01234'?" in message
    assert "known models: model-00000, model-00001," in message
    assert "model-00019 and 9,980 more (add it under models:" in message
    assert "model-00020" not in message
    assert "and 9990 more problems" in message


@pytest.mark.parametrize("model", ["-leading-dash", "has space", "x" * 101, "emoji🙂"])
def test_accepted_unknown_model_must_still_be_a_valid_name(model: str) -> None:
    assert "is not a valid model name" in rejected(item(model=model), accept_unknown=True)


def test_metrics_missing() -> None:
    assert "item 0: field 'metrics' is missing" in rejected(item(metrics=...))


def test_metrics_empty() -> None:
    assert "item 0: field 'metrics' is empty" in rejected(item(metrics={}))


@pytest.mark.parametrize(("metrics", "kind"), [([1, 2], "list"), ("x", "string"), (None, "null"), (5, "number")])
def test_metrics_not_an_object(metrics: Any, kind: str) -> None:
    assert f"item 0: field 'metrics' must be an object of name → number, got {kind}" in rejected(item(metrics=metrics))


@pytest.mark.parametrize("name", ["P99", "1abc", "_x", "with-dash", "a.b", "", "x" * 101, "ünicode"])
def test_bad_metric_names(name: str) -> None:
    message = rejected(item(metrics={name: 1}))
    assert "item 0: field 'metrics': invalid metric name" in message
    assert "lower-case letters" in message


def test_metric_name_of_100_characters_is_fine() -> None:
    assert parse(item(metrics={"x" * 100: 1}))


@pytest.mark.parametrize(
    ("value", "kind"),
    [(True, "boolean"), (False, "boolean"), ("6100", "string"), (None, "null"), ([1], "list"), ({"v": 1}, "object")],
)
def test_metric_values_must_be_numbers(value: Any, kind: str) -> None:
    assert f"item 0: field 'metrics.p99_latency_ms' must be a number, got {kind}" in rejected(
        item(metrics={"p99_latency_ms": value})
    )


def test_labels_not_an_object() -> None:
    assert "item 0: field 'labels' must be an object" in rejected(item(labels=["a"]))


@pytest.mark.parametrize(("value", "kind"), [(1, "number"), (True, "boolean"), (None, "null"), (["a"], "list")])
def test_label_values_must_be_strings(value: Any, kind: str) -> None:
    message = rejected(item(labels={"top_drifted_features": value}))
    assert f"item 0: field 'labels.top_drifted_features' must be a string, got {kind}" in message


def test_label_value_length_limit() -> None:
    assert parse(item(labels={"l": "x" * 1000}))
    message = rejected(item(labels={"l": "x" * 1001}))
    assert "item 0: field 'labels.l' is 1001 characters long; the limit is 1000" in message


def test_label_names_follow_the_metric_name_rule() -> None:
    assert 'invalid label name "Bad Name"' in rejected(item(labels={"Bad Name": "x"}))


def test_a_name_cannot_be_both_metric_and_label() -> None:
    assert "'p99_latency_ms' is both a metric and a label" in rejected(item(labels={"p99_latency_ms": "x"}))


@pytest.mark.parametrize("stamp", ["yesterday", "2026-13-01T00:00:00Z", "", "2026-01-05 09:00:00 UTC"])
def test_unparsable_timestamp(stamp: str) -> None:
    message = rejected(item(timestamp=stamp))
    assert "item 0: field 'timestamp'" in message
    assert "is not an ISO-8601 date-time" in message


@pytest.mark.parametrize("stamp", [1767600000, None, ["2026-01-05T09:00:00Z"]])
def test_timestamp_not_a_string(stamp: Any) -> None:
    assert "item 0: field 'timestamp' must be an ISO-8601 string" in rejected(item(timestamp=stamp))


@pytest.mark.parametrize("stamp", ["2026-01-05T09:00:00", "2026-01-05"])
def test_timestamp_without_timezone_says_so(stamp: str) -> None:
    message = rejected(item(timestamp=stamp))
    assert "item 0: field 'timestamp'" in message
    assert "has no timezone" in message


def test_timestamp_more_than_five_minutes_in_the_future() -> None:
    message = rejected(item(timestamp="2026-01-05T09:05:01Z"))
    assert "item 0: field 'timestamp'" in message
    assert "more than 5 min in the future" in message


def test_timestamp_out_of_range_after_conversion() -> None:
    assert "out of range" in rejected(item(timestamp="0001-01-01T00:00:00+01:00"))


def test_one_bad_item_rejects_the_batch_and_all_problems_are_listed() -> None:
    message = rejected([item(), item(metrics={"x": "1"}), item(), item(model=5)])
    assert "item 1: field 'metrics.x' must be a number" in message
    assert "item 3: field 'model' must be a string" in message
    assert "item 0" not in message


def test_problem_list_is_capped() -> None:
    message = rejected([item(metrics={"x": True})] * 15)
    assert "item 9:" in message
    assert "item 10:" not in message
    assert "and 5 more problems" in message


def test_huge_values_are_not_echoed_in_full() -> None:
    message = rejected(item(metrics={"x": "y" * 100_000}))
    assert len(message) < 300
