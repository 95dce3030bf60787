"""Parsing a change push, and telling which changes came shortly before a breach (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.changes.events import Change, ChangeKind, before, how_long_before, parse_changes
from bot.errors import RequestRefused

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MODELS = ["support-bot", "fraud-detector-v2"]


def parse(body: object) -> list[Change]:
    return parse_changes(json.dumps(body).encode(), known_models=MODELS, accept_unknown=False, now=NOW)


def refused(body: object) -> str:
    with pytest.raises(RequestRefused) as caught:
        parse(body)
    assert caught.value.status == 422
    return caught.value.message


def test_one_change_with_every_field() -> None:
    [change] = parse(
        {
            "model": "support-bot",
            "kind": "prompt",
            "version": "v42",
            "author": "dana",
            "link": "https://git.internal/prompts/pull/42",
            "description": "shorter system prompt",
            "timestamp": "2026-01-05T08:56:00Z",
        }
    )
    assert change == Change(
        "support-bot",
        ChangeKind.PROMPT,
        "v42",
        datetime(2026, 1, 5, 8, 56, tzinfo=UTC),
        "dana",
        "https://git.internal/prompts/pull/42",
        "shorter system prompt",
    )
    assert change.said() == "prompt v42"


def test_a_list_and_the_default_time_of_arrival() -> None:
    changes = parse(
        [
            {"model": "support-bot", "kind": "model_version", "version": "2.4.0"},
            {"model": "fraud-detector-v2", "kind": "feature_pipeline", "version": "r17"},
        ]
    )
    assert [(c.model, c.said(), c.at) for c in changes] == [
        ("support-bot", "model version 2.4.0", NOW),
        ("fraud-detector-v2", "feature pipeline r17", NOW),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "support-bot", "version": "v1"}, "item 0: field 'kind' is missing; one of model_version, prompt"),
        ({"model": "support-bot", "kind": "hotfix", "version": "v1"}, '"hotfix" is not a kind of change'),
        ({"model": "support-bot", "kind": "prompt"}, "field 'version' is missing"),
        ({"model": "support-bot", "kind": "prompt", "version": 42}, "field 'version' must be a non-empty string"),
        ({"model": "support-bot", "kind": "prompt", "version": "v1", "link": "ftp://x"}, "must be an http(s) URL"),
        ({"model": "support-bot", "kind": "prompt", "version": "v1", "commit": "abc"}, 'unknown key "commit"'),
        ({"model": "suport-bot", "kind": "prompt", "version": "v1"}, "did you mean 'support-bot'?"),
        ({"kind": "prompt", "version": "v1"}, "field 'model' is missing"),
        (
            {"model": "support-bot", "kind": "prompt", "version": "v1", "timestamp": "2026-01-05T10:00:00Z"},
            "in the future",
        ),
        ([], "empty list"),
        ({"model": "support-bot", "kind": "prompt", "version": "x" * 201}, "the limit is 200"),
    ],
)
def test_bad_pushes_are_refused_naming_the_problem(body: object, message: str) -> None:
    assert message in refused(body)


def test_one_bad_item_refuses_the_whole_push_and_every_problem_is_named() -> None:
    message = refused(
        [
            {"model": "support-bot", "kind": "prompt", "version": "v1"},
            {"model": "support-bot", "kind": "nope", "version": "v2"},
            {"model": "support-bot", "kind": "dataset"},
        ]
    )
    assert "item 1: field 'kind'" in message and "item 2: field 'version' is missing" in message


def change(kind: ChangeKind, version: str, minutes_before: float) -> Change:
    return Change("support-bot", kind, version, NOW - timedelta(minutes=minutes_before))


def test_the_changes_of_the_window_before_a_breach_newest_first() -> None:
    changes = [
        change(ChangeKind.DATASET, "d9", 150),  # outside a 2 h window
        change(ChangeKind.MODEL_VERSION, "2.4.0", 90),
        change(ChangeKind.PROMPT, "v42", 4),
    ]
    after = Change("support-bot", ChangeKind.CONFIG, "c1", NOW + timedelta(minutes=1))  # after the breach
    found = before([*changes, after], NOW, timedelta(hours=2))
    assert [c.version for c in found] == ["v42", "2.4.0"]
    assert f"{found[0].said()}, {how_long_before(found[0], NOW)}" == "prompt v42, 4 min before"
    assert how_long_before(change(ChangeKind.DEPLOY, "b77", 0.2), NOW) == "at the same time"
